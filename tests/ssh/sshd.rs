//! A real OpenSSH server for tests: throwaway host and user keys in a temp dir, a generated
//! sshd_config (no system file is read or touched), 127.0.0.1 on a free high port, stopped by
//! pid when dropped. Also used by `benches/ssh.rs`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The login user (whoever runs the tests; sshd as non-root can only log in as itself).
    pub user: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

/// Generates a key with `ssh-keygen` (`kind`: `ed25519` or `rsa`; `format`: `OpenSSH`, `PEM`
/// or `PKCS8`). Returns the private key path; the public key is beside it with `.pub`.
pub fn keygen(dir: &Path, name: &str, kind: &str, format: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", name]);
    // OpenSSH's own format is the default; `-m` names the others.
    if format != "OpenSSH" {
        cmd.args(["-m", format]);
    }
    cmd.arg("-f").arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().expect("ssh-keygen runs (run scripts/test)");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    path
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// sshd on 127.0.0.1 with one authorized ed25519 user key (`user_key()`).
    pub fn start() -> Sshd {
        Sshd::start_with(&["127.0.0.1"], "")
    }

    /// sshd listening on each of `addrs` (all loopback, e.g. `127.0.0.2`: several "hosts" on
    /// one server), with `extra` appended to its config.
    pub fn start_with(addrs: &[&str], extra: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/test (it installs openssh-server)"
        );
        // Privilege separation directory; harmless if it exists or we are not root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), "host_ed25519", "ed25519", "OpenSSH");
        let user_key = keygen(dir.path(), "user_ed25519", "ed25519", "OpenSSH");
        std::fs::copy(
            user_key.with_extension("pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let user = whoami();
        // Others run tests at the same time: a free port can be taken before sshd binds it.
        for _ in 0..10 {
            let port = free_port();
            let listen: String = addrs
                .iter()
                .map(|a| format!("ListenAddress {a}:{port}\n"))
                .collect();
            let d = dir.path().display();
            // `SetEnv SHLVL=1`: Debian's bash sources ~/.bashrc for commands run by sshd unless
            // it is a nested shell; this keeps the tester's dotfiles (here root's runs `pyenv
            // init`, 0.2 s per session) out of every session.
            let config = format!(
                "{listen}HostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\nSetEnv SHLVL=1\nSubsystem sftp internal-sftp\n{extra}\n"
            );
            let cfg = dir.path().join("sshd_config");
            std::fs::write(&cfg, config).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sshd starts");
            let log = Arc::new(Mutex::new(String::new()));
            let (ready_tx, ready_rx) = mpsc::channel();
            let stderr = child.stderr.take().unwrap();
            let log2 = log.clone();
            let want = addrs.len();
            std::thread::spawn(move || {
                let mut listening = 0;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("Server listening on") {
                        listening += 1;
                        if listening == want {
                            let _ = ready_tx.send(true);
                        }
                    }
                    let mut l = log2.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                let _ = ready_tx.send(false);
            });
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(true) => {
                    return Sshd {
                        dir,
                        port,
                        user,
                        child,
                        log,
                    };
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = log.lock().unwrap().clone();
                    if text.contains("Address already in use") {
                        continue;
                    }
                    panic!("sshd did not start:\n{text}");
                }
            }
        }
        panic!("sshd found no free port in 10 tries");
    }

    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_ed25519")
    }

    pub fn host_key_pub(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap()
    }

    /// Generates a key and authorizes it (sshd reads `authorized_keys` at each login).
    pub fn authorize_new_key(&self, name: &str, kind: &str, format: &str) -> PathBuf {
        use std::io::Write;
        let key = keygen(self.dir.path(), name, kind, format);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap()
            .write_all(public.as_bytes())
            .unwrap();
        key
    }

    /// A scratch directory for remote files (absolute: relative paths would land in the
    /// login user's real home).
    pub fn remote_dir(&self) -> PathBuf {
        let d = self.dir.path().join("remote");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Everything sshd logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Successful logins so far (one per connection).
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Processes sshd forked (one per connection).
    pub fn children(&self) -> Vec<i32> {
        let me = self.child.id().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    // Fields after the `(comm)`: state, ppid, ...
                    stat.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().nth(1))
                        == Some(me.as_str())
                })
            })
            .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
