//! Reaching hosts: running commands on them and moving files to and from them.
//!
//! One trait, [`Transport`], with two implementations:
//! - [`SshTransport`] (`session`): russh in-process, one connection per host reused for many
//!   channels, keys from the spec or inventory, host keys trusted on first use and checked after
//!   ([`KnownHosts`]). Concurrency is bounded by the shared [`SshPool`]. No subprocess is ever
//!   started on this machine.
//! - [`LocalTransport`] (`local`): local processes in a host slot directory, for the local cloud.
//!
//! Both also open TCP streams to a port on the host ([`Transport::connect_tcp`]): over SSH a
//! `direct-tcpip` channel on the host's one connection, locally a socket to the slot's
//! loopback address. The experiment stages drive the nodes' JSON-RPC through them, so no node
//! port is ever opened to the operator's network (DESIGN §6).
//!
//! On top of them: [`hosts`] (which hosts a spec has and how to reach each) and [`fanout`] (one
//! action on many hosts with bounded parallelism, reported as events; `cfxm exec` and the
//! experiment stages use it).
//!
//! Invariants every transport keeps:
//! - output and file contents are streamed, never buffered whole;
//! - `put` and `get` write to a temporary name beside the destination and rename it only after
//!   the whole content arrived, so an interrupted transfer never leaves a corrupt destination
//!   and can simply be retried;
//! - every error names the host ([`TransportError`]); a non-zero exit is not an error of the
//!   transport but an [`ExitStatus`] the caller judges.

mod error;
pub mod fanout;
pub mod hosts;
mod keys;
mod known_hosts;
mod local;
mod session;
mod transfer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use error::TransportError;
pub use known_hosts::{HostKeyCheck, KnownHosts, KnownHostsError};
pub use local::LocalTransport;
pub use session::{SshOptions, SshPool, SshStats, SshTarget, SshTransport};

/// A boxed future, so [`Transport`] can be used as `dyn Transport` (hosts of one spec may mix
/// kinds, and stage code keeps `Arc<dyn Transport>` per host). The box costs nothing next to a
/// network round trip.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs commands on one host and moves files to and from it.
///
/// Remote paths: for SSH, relative paths are relative to the login user's home and `~/` means
/// the home; for the local transport both mean the host's slot directory (which is also `$HOME`
/// for its commands), so the same stage script works on both.
pub trait Transport: Send + Sync {
    /// How messages name this host, e.g. `i-t4n1 (root@47.236.1.2:22)`.
    fn host(&self) -> &str;

    /// Runs `req.command` through the remote user's login shell (it must be POSIX: sh, dash,
    /// bash, zsh), streaming stdin in and stdout/stderr out, and returns how it ended. A
    /// non-zero exit is `Ok`; see [`ExitStatus::check`].
    fn exec<'a>(&'a self, req: Exec<'a>) -> BoxFuture<'a, Result<ExitStatus, TransportError>>;

    /// Writes `src` to `remote` with permission bits `mode`, atomically (temp name, then
    /// rename); creates missing parent directories. Returns the bytes written.
    fn put<'a>(
        &'a self,
        src: PutSource<'a>,
        remote: &'a str,
        mode: u32,
    ) -> BoxFuture<'a, Result<u64, TransportError>>;

    /// Copies the remote file `remote` to the local file `local`, atomically; creates missing
    /// local parent directories. Returns the bytes copied.
    fn get<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<u64, TransportError>>;

    /// Opens a TCP stream to `port` on the host, as the host itself would connect to it: over
    /// SSH to `127.0.0.1:port` through a `direct-tcpip` channel on the host's (reused)
    /// connection; on a local slot to the slot's loopback address. Nothing but SSH needs to be
    /// reachable from this machine. The stream closes when dropped.
    fn connect_tcp(&self, port: u16) -> BoxFuture<'_, Result<HostStream, TransportError>>;

    /// Releases what the transport holds open (an SSH connection); the next call reopens it.
    /// One-shot fan-outs call this when a host is done, so 10,000 hosts never hold 10,000
    /// connections at once.
    fn disconnect(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A byte stream to a port on a host ([`Transport::connect_tcp`]).
pub type HostStream = Box<dyn StreamIo>;

/// What a [`HostStream`] is: both directions of a TCP connection, however it is carried.
pub trait StreamIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> StreamIo for T {}

/// What `put` sends.
#[derive(Debug, Clone, Copy)]
pub enum PutSource<'a> {
    Bytes(&'a [u8]),
    /// A local file, streamed.
    File(&'a Path),
}

/// Something to read a command's input from.
pub type Input<'a> = &'a mut (dyn AsyncRead + Send + Unpin);
/// Somewhere to write a command's output to (a file, a `Vec<u8>`, a line splitter, `sink()`).
pub type OutputSink<'a> = &'a mut (dyn AsyncWrite + Send + Unpin);

/// One command to run.
pub struct Exec<'a> {
    /// A shell command line.
    pub command: &'a str,
    /// Streamed to the command's stdin, then end-of-file. `None`: stdin is empty.
    pub stdin: Option<Input<'a>>,
    pub stdout: OutputSink<'a>,
    pub stderr: OutputSink<'a>,
    /// Stop the command and fail with [`TransportError::Timeout`] after this long. Connecting
    /// counts; waiting for a free session on a busy host does not.
    pub timeout: Option<Duration>,
}

impl<'a> Exec<'a> {
    pub fn new(command: &'a str, stdout: OutputSink<'a>, stderr: OutputSink<'a>) -> Self {
        Exec {
            command,
            stdin: None,
            stdout,
            stderr,
            timeout: None,
        }
    }

    pub fn stdin(mut self, input: Input<'a>) -> Self {
        self.stdin = Some(input);
        self
    }

    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(u32),
    /// Killed by a signal (its name without `SIG`, e.g. `KILL`).
    Signal(String),
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    /// `Ok` for exit 0, else [`TransportError::RemoteExit`] naming the host and command.
    pub fn check(self, host: &str, command: &str, stderr: &[u8]) -> Result<(), TransportError> {
        if self.success() {
            Ok(())
        } else {
            Err(TransportError::RemoteExit {
                host: host.to_string(),
                command: error::shorten(command),
                status: self,
                stderr: error::tail(stderr),
            })
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// A finished small command's output, collected in memory.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl dyn Transport + '_ {
    /// Runs a command with no input and collects its output in memory. For small outputs
    /// (status checks, `cat` of a config); stream anything large through [`Transport::exec`].
    pub async fn output(
        &self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<Output, TransportError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .exec(Exec::new(command, &mut stdout, &mut stderr).timeout(timeout))
            .await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs a command and fails unless it exits 0; returns its stdout.
    pub async fn run(
        &self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, TransportError> {
        let out = self.output(command, timeout).await?;
        out.status.check(self.host(), command, &out.stderr)?;
        Ok(out.stdout)
    }
}

/// Quotes `s` for a POSIX shell: `it's` → `'it'\''s'`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_the_shell() {
        for s in [
            "plain",
            "with space",
            "it's",
            "",
            "$HOME",
            "`x`",
            "a\nb",
            "'",
            "\\",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn exit_status_reads_like_the_summary() {
        assert_eq!(ExitStatus::Code(2).to_string(), "exit 2");
        assert_eq!(ExitStatus::Signal("KILL".into()).to_string(), "signal KILL");
        assert!(ExitStatus::Code(0).success());
        let err = ExitStatus::Code(3)
            .check("h1", "false", b"line1\nboom\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "h1: `false` failed with exit 3: boom");
    }
}
