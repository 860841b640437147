//! Host keys, trusted on first use: `state/<spec>/known_hosts`, in OpenSSH's format.
//!
//! The first connection to a host records its key; later connections must present the same
//! key, or fail with [`KnownHostsError::Changed`] naming the file and line, unless the caller
//! accepts rotations (`--accept-changed-host-keys`), in which case the old line is replaced.
//! The file is OpenSSH's (`[ip]:port ssh-ed25519 AAAA...`, plain `ip` for port 22), so
//! `ssh -o UserKnownHostsFile=state/<spec>/known_hosts` checks the same keys.
//!
//! The file is read once and indexed; every check is a map lookup, and every change is made
//! under one lock (whole lines appended, or the file rewritten to a temp name and renamed), so
//! 10,000 concurrent first connections cost 10,000 appends and nothing quadratic.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

/// A loaded known-hosts file.
pub struct KnownHosts {
    file: PathBuf,
    /// Replace a recorded key that no longer matches instead of refusing the host.
    accept_changed: bool,
    /// The file's lines and the index over them. The lock also serializes every write to the
    /// file, so concurrent handshakes never interleave partial lines.
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    lines: Vec<Line>,
    /// Host name (as written in the file, e.g. `[127.0.0.1]:2222`) → indices into `lines`.
    index: HashMap<String, Vec<usize>>,
}

enum Line {
    Key {
        hosts: String,
        key: PublicKey,
    },
    /// Comments, markers (`@revoked`), hashed names and anything unparsed: kept verbatim.
    Other(String),
}

/// The outcome of a successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key matches the recorded one.
    Known,
    /// First use: the key was recorded.
    Learned,
    /// The key differed and was replaced (rotations accepted); `previous` is the old fingerprint.
    Replaced { previous: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error(
        "host key changed: `{file}` line {line} records {recorded}, the server presents {offered}"
    )]
    Changed {
        file: PathBuf,
        line: usize,
        recorded: String,
        offered: String,
    },
    #[error("`{file}`: {cause}")]
    Io {
        file: PathBuf,
        cause: std::io::Error,
    },
}

/// `[host]:port`, or bare `host` for port 22, as OpenSSH writes names.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Loads `file` (a missing file is an empty one; it is created on the first new host).
    pub fn open(file: impl Into<PathBuf>, accept_changed: bool) -> Result<Self, KnownHostsError> {
        let file = file.into();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(cause) => return Err(KnownHostsError::Io { file, cause }),
        };
        let mut table = Table::default();
        for raw in text.lines() {
            table.push(parse_line(raw));
        }
        Ok(KnownHosts {
            file,
            accept_changed,
            table: Mutex::new(table),
        })
    }

    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Checks `key` for `host:port`, recording it on first use.
    pub fn check(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<HostKeyCheck, KnownHostsError> {
        let name = host_name(host, port);
        let mut table = self.table.lock().expect("known_hosts lock");
        let recorded: Vec<usize> = table.index.get(&name).cloned().unwrap_or_default();
        let mut first_mismatch = None;
        for &i in &recorded {
            if let Line::Key { key: k, .. } = &table.lines[i] {
                if k.key_data() == key.key_data() {
                    return Ok(HostKeyCheck::Known);
                }
                first_mismatch.get_or_insert((i, fingerprint(k)));
            }
        }
        let new_line = Line::Key {
            hosts: name.clone(),
            key: key.clone(),
        };
        match first_mismatch {
            None => {
                self.append(&new_line)?;
                table.push(new_line);
                Ok(HostKeyCheck::Learned)
            }
            Some((line, recorded)) if !self.accept_changed => Err(KnownHostsError::Changed {
                file: self.file.clone(),
                line: line + 1,
                recorded,
                offered: fingerprint(key),
            }),
            Some((_, previous)) => {
                let mut next = Table::default();
                for (i, l) in std::mem::take(&mut table.lines).into_iter().enumerate() {
                    if !recorded.contains(&i) {
                        next.push(l);
                    }
                }
                next.push(new_line);
                self.rewrite(&next)?;
                *table = next;
                Ok(HostKeyCheck::Replaced { previous })
            }
        }
    }

    /// Drops every key recorded for `host:port` (after destroying a host, so a new server
    /// that gets the same address is trusted on first use again). Returns how many were dropped.
    pub fn forget(&self, host: &str, port: u16) -> Result<usize, KnownHostsError> {
        let name = host_name(host, port);
        let mut table = self.table.lock().expect("known_hosts lock");
        let Some(recorded) = table.index.get(&name).cloned() else {
            return Ok(0);
        };
        let mut next = Table::default();
        for (i, l) in std::mem::take(&mut table.lines).into_iter().enumerate() {
            if !recorded.contains(&i) {
                next.push(l);
            }
        }
        self.rewrite(&next)?;
        *table = next;
        Ok(recorded.len())
    }

    fn io(&self, cause: std::io::Error) -> KnownHostsError {
        KnownHostsError::Io {
            file: self.file.clone(),
            cause,
        }
    }

    fn append(&self, line: &Line) -> Result<(), KnownHostsError> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(|e| self.io(e))?;
        // One write per line: appends of whole lines cannot interleave even across processes.
        f.write_all(render(line).as_bytes()).map_err(|e| self.io(e))
    }

    fn rewrite(&self, table: &Table) -> Result<(), KnownHostsError> {
        let text: String = table.lines.iter().map(render).collect();
        let tmp = self
            .file
            .with_file_name(format!(".known_hosts.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.file).map_err(|e| self.io(e))
    }
}

impl Table {
    fn push(&mut self, line: Line) {
        if let Line::Key { hosts, .. } = &line {
            for name in hosts.split(',') {
                self.index
                    .entry(name.to_string())
                    .or_default()
                    .push(self.lines.len());
            }
        }
        self.lines.push(line);
    }
}

fn parse_line(raw: &str) -> Line {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('@') {
        return Line::Other(raw.to_string());
    }
    let mut fields = trimmed.split_whitespace();
    let (Some(hosts), Some(_kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
    else {
        return Line::Other(raw.to_string());
    };
    match russh::keys::parse_public_key_base64(blob) {
        Ok(key) => Line::Key {
            hosts: hosts.to_string(),
            key,
        },
        Err(e) => {
            tracing::warn!("ignoring an unreadable known_hosts line ({e}): {raw}");
            Line::Other(raw.to_string())
        }
    }
}

fn render(line: &Line) -> String {
    match line {
        Line::Other(raw) => format!("{raw}\n"),
        Line::Key { hosts, key } => {
            let mut key = key.clone();
            key.set_comment("");
            let text = key
                .to_openssh()
                .unwrap_or_else(|_| format!("{} ?", key.algorithm()));
            format!("{hosts} {}\n", text.trim_end())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPRgOd3/rYhVto80FmekQ5RBqttNrzDcZPnX6kXOQk5S";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ519UsAc4lcugCbjEdrxVymTMvxRzc6hoaZTmmsMVco";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn trusts_on_first_use_then_refuses_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec/known_hosts");
        let kh = KnownHosts::open(&file, false).unwrap();
        assert_eq!(
            kh.check("10.0.0.1", 2222, &key(ED_A)).unwrap(),
            HostKeyCheck::Learned
        );
        assert_eq!(
            kh.check("10.0.0.1", 2222, &key(ED_A)).unwrap(),
            HostKeyCheck::Known
        );
        assert_eq!(
            kh.check("10.0.0.2", 22, &key(ED_B)).unwrap(),
            HostKeyCheck::Learned
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            format!("[10.0.0.1]:2222 ssh-ed25519 {ED_A}\n10.0.0.2 ssh-ed25519 {ED_B}\n")
        );

        // A fresh load (next run) sees the same keys and refuses the change, naming the line.
        let kh = KnownHosts::open(&file, false).unwrap();
        match kh.check("10.0.0.2", 22, &key(ED_A)) {
            Err(KnownHostsError::Changed { line, file: f, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(f, file);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn accepts_a_rotation_when_asked_and_keeps_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!("# mine\n10.0.0.2 ssh-ed25519 {ED_B}\n[10.0.0.1]:2222 ssh-ed25519 {ED_A}\n"),
        )
        .unwrap();
        let kh = KnownHosts::open(&file, true).unwrap();
        let out = kh.check("10.0.0.2", 22, &key(ED_A)).unwrap();
        assert!(matches!(out, HostKeyCheck::Replaced { .. }));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# mine\n[10.0.0.1]:2222 ssh-ed25519 {ED_A}\n10.0.0.2 ssh-ed25519 {ED_A}\n")
        );
        assert_eq!(
            kh.check("10.0.0.2", 22, &key(ED_A)).unwrap(),
            HostKeyCheck::Known
        );
        assert_eq!(kh.forget("10.0.0.1", 2222).unwrap(), 1);
        assert_eq!(
            kh.check("10.0.0.1", 2222, &key(ED_B)).unwrap(),
            HostKeyCheck::Learned
        );
    }
}
