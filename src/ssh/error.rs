//! Transport errors: one line naming the host and the cause, and a `help` line with the fix.
//!
//! The variants are what an operator can act on, not what the library happened to fail in:
//! [`TransportError::is_unreachable`] separates "could not run anything on the host" from
//! "ran and failed", which is what `cfxm exec`'s summary and the stages' thresholds count.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

use super::ExitStatus;

#[derive(Debug, Error, Diagnostic)]
pub enum TransportError {
    /// Nothing answered as an SSH server within the bounded time.
    #[error("{host}: unreachable after {attempts} attempt{s} in {elapsed}: {cause}", s = if *attempts == 1 { "" } else { "s" })]
    #[diagnostic(
        code(cfxm::ssh::unreachable),
        help(
            "check that the host is running, that port {port} is open to this machine (the security group's `ssh_from`), and that sshd is up; `--connect-timeout` bounds each attempt"
        )
    )]
    Unreachable {
        host: String,
        port: u16,
        attempts: u32,
        elapsed: String,
        cause: String,
    },

    /// The server does not accept this key for this user.
    #[error("{host}: the server refused key `{key}` for user `{user}`")]
    #[diagnostic(
        code(cfxm::ssh::auth_refused),
        help(
            "put the key's public half in `~{user}/.ssh/authorized_keys` on the host, or point `ssh_key` (spec) / `ssh_key_path` (inventory) at the right key"
        )
    )]
    AuthRefused {
        host: String,
        user: String,
        key: PathBuf,
    },

    /// The private key cannot be used (missing, encrypted, unsupported format).
    #[error("{host}: cannot use private key `{key}`: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::key),
        help(
            "cfxm reads unencrypted RSA and ed25519 keys in OpenSSH or PEM format; decrypt one with `ssh-keygen -p -N '' -f KEY`"
        )
    )]
    Key {
        host: String,
        key: PathBuf,
        cause: String,
    },

    /// The host presents a different key than the one recorded on first use.
    #[error(
        "{host}: host key changed: the server presents {offered}, but `{file}` line {line} records {recorded}"
    )]
    #[diagnostic(
        code(cfxm::ssh::host_key_changed),
        help(
            "if the host was rebuilt or its address reused, re-run with `--accept-changed-host-keys` (or delete line {line} of `{file}`); otherwise someone may be intercepting the connection"
        )
    )]
    HostKeyChanged {
        host: String,
        /// The known-hosts file, as a display string (it appears in the help line).
        file: String,
        line: usize,
        offered: String,
        recorded: String,
    },

    /// The known-hosts file cannot be read or written.
    #[error("{host}: known-hosts file `{file}`: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::known_hosts),
        help("check the state directory's permissions; each line is `[ip]:port key-type base64`")
    )]
    KnownHosts {
        host: String,
        file: PathBuf,
        cause: String,
    },

    /// The command did not finish in time; it was killed.
    #[error("{host}: `{command}` timed out after {after}")]
    #[diagnostic(
        code(cfxm::ssh::timeout),
        help("raise `--timeout`, or check what the command waits for on the host")
    )]
    Timeout {
        host: String,
        command: String,
        after: String,
    },

    /// The command ran and failed (only from [`ExitStatus::check`] and transfers).
    #[error("{host}: `{command}` failed with {status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    #[diagnostic(
        code(cfxm::ssh::remote_exit),
        help("run it by hand on the host to see why")
    )]
    RemoteExit {
        host: String,
        command: String,
        status: ExitStatus,
        /// The last line of its stderr.
        stderr: String,
    },

    /// The connection died while a command or transfer was in flight; safe to retry a transfer,
    /// a command only if it is idempotent.
    #[error("{host}: connection lost: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::disconnected),
        help("the host went away or the network dropped; retry, and check the host if it repeats")
    )]
    Disconnected { host: String, cause: String },

    /// A transfer did not complete; the destination was left untouched.
    #[error("{host}: copying `{path}` failed: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::transfer),
        help("the destination is unchanged; fix the cause and retry")
    )]
    Transfer {
        host: String,
        path: String,
        cause: String,
    },

    /// A local file (the source of a put, the destination of a get) failed.
    #[error("{host}: local file `{path}`: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::local_io),
        help("check the local path and its permissions")
    )]
    LocalIo {
        host: String,
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A local-cloud host whose slot is not a directory (never made, removed or replaced):
    /// the local cloud's way for a host to be down.
    #[error(
        "{host}: local host slot `{dir}` is not a directory (missing or replaced): the host is down"
    )]
    #[diagnostic(
        code(cfxm::ssh::no_slot),
        help(
            "`cfxm apply` makes the slots of new hosts and replaces a host whose slot is gone; check `--state-dir`"
        )
    )]
    NoSlot { host: String, dir: PathBuf },

    /// The server refused to run anything (channel or exec request denied).
    #[error("{host}: the server refused to start `{command}`: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::refused),
        help(
            "sshd may allow fewer sessions per connection (`MaxSessions`) than cfxm uses (8), or forbid commands for this user; check the host's sshd_config"
        )
    )]
    Refused {
        host: String,
        command: String,
        cause: String,
    },

    /// The server will not forward a TCP connection to a port on the host (`direct-tcpip`
    /// refused): sshd's `AllowTcpForwarding no`, `DisableForwarding yes` or a `PermitOpen`
    /// that leaves the port out.
    #[error(
        "{host}: the SSH server refused to forward a connection to 127.0.0.1:{port} ({reason})"
    )]
    #[diagnostic(
        code(cfxm::ssh::forwarding_refused),
        help(
            "cfxm reaches the nodes' JSON-RPC through the SSH connection: set `AllowTcpForwarding yes` (or `local`) in the host's sshd_config, check `DisableForwarding` and `PermitOpen`, and reload sshd"
        )
    )]
    ForwardingRefused {
        host: String,
        port: u16,
        reason: String,
    },

    /// The host is reachable, but nothing there accepts connections on the port.
    #[error("{host}: nothing accepts connections on port {port} there: {cause}")]
    #[diagnostic(
        code(cfxm::ssh::port_closed),
        help(
            "is the service that listens on that port running on the host (and bound to its loopback or all addresses)?"
        )
    )]
    PortClosed {
        host: String,
        port: u16,
        cause: String,
    },
}

impl TransportError {
    /// The host this error is about, as the transport names it.
    pub fn host(&self) -> &str {
        match self {
            TransportError::Unreachable { host, .. }
            | TransportError::AuthRefused { host, .. }
            | TransportError::Key { host, .. }
            | TransportError::HostKeyChanged { host, .. }
            | TransportError::KnownHosts { host, .. }
            | TransportError::Timeout { host, .. }
            | TransportError::RemoteExit { host, .. }
            | TransportError::Disconnected { host, .. }
            | TransportError::Transfer { host, .. }
            | TransportError::LocalIo { host, .. }
            | TransportError::NoSlot { host, .. }
            | TransportError::Refused { host, .. }
            | TransportError::ForwardingRefused { host, .. }
            | TransportError::PortClosed { host, .. } => host,
        }
    }

    /// Nothing could be run on the host: no connection, no login, or no slot.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. }
                | TransportError::AuthRefused { .. }
                | TransportError::Key { .. }
                | TransportError::HostKeyChanged { .. }
                | TransportError::KnownHosts { .. }
                | TransportError::NoSlot { .. }
        )
    }

    /// Retrying the same call may succeed (the network, not the request, failed; or the port
    /// is not open yet).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. }
                | TransportError::Disconnected { .. }
                | TransportError::PortClosed { .. }
        )
    }
}

/// A command as messages show it: one line, at most 80 characters.
pub(crate) fn shorten(command: &str) -> String {
    let one_line: String = command.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= 80 {
        one_line
    } else {
        let mut s: String = one_line.chars().take(77).collect();
        s.push_str("...");
        s
    }
}

/// The last non-empty line of some output, for a one-line message.
pub(crate) fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    shorten(line)
}

/// A duration as messages show it: `1.5s`, `2m 30s`.
pub(crate) fn human(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_host() {
        let e = TransportError::HostKeyChanged {
            host: "i-1 (root@10.0.0.1:22)".into(),
            file: "state/x/known_hosts".into(),
            line: 3,
            offered: "SHA256:aaa".into(),
            recorded: "SHA256:bbb".into(),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'));
        assert!(text.starts_with("i-1 (root@10.0.0.1:22): host key changed"));
        let help = e.help().unwrap().to_string();
        assert!(help.contains("--accept-changed-host-keys"));
        assert!(help.contains("line 3 of `state/x/known_hosts`"));
    }

    #[test]
    fn shorten_keeps_commands_on_one_line() {
        assert_eq!(shorten("echo a\n  echo b"), "echo a echo b");
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), 80);
        assert_eq!(tail(b"one\ntwo\n\n"), "two");
        assert_eq!(human(std::time::Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(std::time::Duration::from_secs(150)), "2m 30s");
    }
}
