//! The local transport: a host slot on this machine, reached by local processes.
//!
//! The local cloud backs each instance with a slot directory, `state/<spec>/slots/<instance>/`
//! ([`crate::state::SpecState::slot`]). Commands run as `/bin/sh -c COMMAND` with the
//! slot as working directory and as `$HOME`, in their own process group; relative remote paths
//! (and `~/`) mean the slot, so stage scripts written for SSH hosts (`$HOME/log0`,
//! `~/config.toml`) work unchanged. Absolute paths are taken as they are: a slot is a
//! directory, not a sandbox.
//!
//! [`Transport::connect_tcp`] connects to the slot's own loopback address (the local cloud
//! gives each slot one, `127.x.y.z`, and its nodes bind it); 127.0.0.1 unless set with
//! [`LocalTransport::with_address`].
//!
//! On timeout or cancellation the whole process group is killed. Like sshd, a command counts
//! as finished when it exited and closed its output, so a daemon must redirect its output.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{human, shorten};
use super::transfer::{RemoveOnDrop, temp_beside};
use super::{BoxFuture, Exec, ExitStatus, HostStream, PutSource, Transport, TransportError};

/// One host slot.
pub struct LocalTransport {
    label: String,
    dir: PathBuf,
    /// The slot's address: where its services listen.
    addr: IpAddr,
}

impl LocalTransport {
    /// A transport into slot directory `dir`, named `label` in messages. The directory must
    /// exist when the transport is used.
    pub fn new(label: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let label = format!("{} (local {})", label.into(), dir.display());
        LocalTransport {
            label,
            dir,
            addr: Ipv4Addr::LOCALHOST.into(),
        }
    }

    /// The slot's loopback address, which [`Transport::connect_tcp`] connects to.
    pub fn with_address(mut self, addr: IpAddr) -> Self {
        self.addr = addr;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A remote path on this host: relative and `~/` paths are inside the slot.
    pub fn resolve(&self, remote: &str) -> PathBuf {
        let rel = remote
            .strip_prefix("~/")
            .or_else(|| (remote == "~").then_some(""))
            .unwrap_or(remote);
        self.dir.join(rel)
    }

    fn check_slot(&self) -> Result<(), TransportError> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(TransportError::NoSlot {
                host: self.label.clone(),
                dir: self.dir.clone(),
            })
        }
    }

    fn local_err(&self, path: &Path, cause: std::io::Error) -> TransportError {
        TransportError::LocalIo {
            host: self.label.clone(),
            path: path.to_path_buf(),
            cause,
        }
    }

    async fn exec_inner(&self, req: Exec<'_>) -> Result<ExitStatus, TransportError> {
        self.check_slot()?;
        let Exec {
            command,
            stdin,
            stdout,
            stderr,
            timeout,
        } = req;
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a timeout kills the command's children too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            // The slot may have gone since it was checked: that is a host down, not a local
            // error.
            .map_err(|e| match self.check_slot() {
                Ok(()) => self.local_err(Path::new("/bin/sh"), e),
                Err(gone) => gone,
            })?;
        let guard = KillGroupOnDrop(child.id());
        let mut child_in = child.stdin.take();
        let mut child_out = child.stdout.take().expect("piped");
        let mut child_err = child.stderr.take().expect("piped");

        let run = async {
            let pump = async {
                if let (Some(input), Some(w)) = (stdin, child_in.as_mut()) {
                    // The command may exit without reading everything; that is its business.
                    let _ = tokio::io::copy(input, w).await;
                }
                drop(child_in.take());
            };
            let out = copy_out(&mut child_out, stdout);
            let err = copy_out(&mut child_err, stderr);
            let ((), out, err) = tokio::join!(pump, out, err);
            out.and(err).map_err(|e| TransportError::LocalIo {
                host: self.label.clone(),
                path: PathBuf::from("<output>"),
                cause: e,
            })?;
            let status = child
                .wait()
                .await
                .map_err(|e| self.local_err(Path::new("/bin/sh"), e))?;
            Ok(exit_status(status))
        };
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, run).await.unwrap_or_else(|_| {
                Err(TransportError::Timeout {
                    host: self.label.clone(),
                    command: shorten(command),
                    after: human(t),
                })
            }),
            None => run.await,
        };
        if result.is_ok() {
            guard.disarm();
        }
        result
    }

    async fn put_inner(
        &self,
        src: PutSource<'_>,
        remote: &str,
        mode: u32,
    ) -> Result<u64, TransportError> {
        self.check_slot()?;
        let dest = self.resolve(remote);
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| self.local_err(dir, e))?;
        }
        let tmp = temp_beside(&dest);
        let cleanup = RemoveOnDrop(Some(tmp.clone()));
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(|e| self.local_err(&tmp, e))?;
        let written = match src {
            PutSource::Bytes(b) => {
                out.write_all(b)
                    .await
                    .map_err(|e| self.local_err(&tmp, e))?;
                b.len() as u64
            }
            PutSource::File(path) => {
                let mut f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| self.local_err(path, e))?;
                tokio::io::copy(&mut f, &mut out)
                    .await
                    .map_err(|e| self.local_err(path, e))?
            }
        };
        out.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .await
            .map_err(|e| self.local_err(&tmp, e))?;
        out.sync_all().await.map_err(|e| self.local_err(&tmp, e))?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| self.local_err(&dest, e))?;
        cleanup.disarm();
        Ok(written)
    }

    async fn get_inner(&self, remote: &str, local: &Path) -> Result<u64, TransportError> {
        self.check_slot()?;
        let src = self.resolve(remote);
        let mut f = tokio::fs::File::open(&src)
            .await
            .map_err(|e| TransportError::Transfer {
                host: self.label.clone(),
                path: remote.to_string(),
                cause: e.to_string(),
            })?;
        if let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| self.local_err(dir, e))?;
        }
        let tmp = temp_beside(local);
        let cleanup = RemoveOnDrop(Some(tmp.clone()));
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| self.local_err(&tmp, e))?;
        let n = tokio::io::copy(&mut f, &mut out)
            .await
            .map_err(|e| self.local_err(&tmp, e))?;
        out.sync_all().await.map_err(|e| self.local_err(&tmp, e))?;
        tokio::fs::rename(&tmp, local)
            .await
            .map_err(|e| self.local_err(local, e))?;
        cleanup.disarm();
        Ok(n)
    }
}

async fn copy_out(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.flush().await;
        }
        to.write_all(&buf[..n]).await?;
    }
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitStatus::Code(c as u32),
        (None, Some(sig)) => ExitStatus::Signal(signal_name(sig)),
        (None, None) => ExitStatus::Code(255),
    }
}

/// The SSH protocol's signal names (RFC 4254 §6.10), so both transports report alike.
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGABRT => "ABRT",
        libc::SIGALRM => "ALRM",
        libc::SIGFPE => "FPE",
        libc::SIGHUP => "HUP",
        libc::SIGILL => "ILL",
        libc::SIGINT => "INT",
        libc::SIGKILL => "KILL",
        libc::SIGPIPE => "PIPE",
        libc::SIGQUIT => "QUIT",
        libc::SIGSEGV => "SEGV",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        other => return format!("{other}"),
    }
    .to_string()
}

/// Kills a process group unless disarmed.
struct KillGroupOnDrop(Option<u32>);

impl KillGroupOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: killpg has no memory-safety preconditions; the group id is the pid of a
            // child spawned with `process_group(0)` and not yet reaped (kill_on_drop reaps it
            // after this guard runs), so it cannot name an unrelated group.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.label
    }

    fn exec<'a>(&'a self, req: Exec<'a>) -> BoxFuture<'a, Result<ExitStatus, TransportError>> {
        Box::pin(self.exec_inner(req))
    }

    fn put<'a>(
        &'a self,
        src: PutSource<'a>,
        remote: &'a str,
        mode: u32,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(self.put_inner(src, remote, mode))
    }

    fn get<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(self.get_inner(remote, local))
    }

    fn connect_tcp(&self, port: u16) -> BoxFuture<'_, Result<HostStream, TransportError>> {
        Box::pin(async move {
            self.check_slot()?;
            let addr = SocketAddr::new(self.addr, port);
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
                TransportError::PortClosed {
                    host: self.label.clone(),
                    port,
                    cause: format!("{addr}: {e}"),
                }
            })?;
            // JSON-RPC is small request/reply exchanges: do not let Nagle hold the last packet.
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as HostStream)
        })
    }
}
