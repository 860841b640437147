//! The SSH transport: russh in-process, one connection per host, many channels over it.
//!
//! [`SshPool`] is shared by every host of a run. It owns the client configuration, the key
//! cache, the known-hosts file and the global bounds (handshakes in flight, channels open, forwarded streams open).
//! [`SshTransport`] is one host: it connects lazily on first use, keeps the connection for
//! every later call, reconnects when it died, and bounds its own open channels to what sshd
//! allows per connection.
//!
//! Port forwarding: [`Transport::connect_tcp`] opens a `direct-tcpip` channel to
//! `127.0.0.1:PORT` on the same connection (what `ssh -L` does), so the stages reach a node's
//! JSON-RPC with only SSH open to this machine. These channels are not sessions (sshd's
//! `MaxSessions` does not count them), so they have their own global bound.
//!
//! Failure handling: connecting (TCP + key exchange + login) is retried with jittered
//! exponential backoff, each attempt bounded by `connect_timeout`; a refused key or a changed
//! host key is not retried. A command is never retried (it may not be idempotent); a
//! transfer can be, by the caller, because it publishes its result atomically.
//!
//! Cancellation: dropping an `exec` future (a timeout, Ctrl-C, a failed sibling) closes the
//! command's stdin, stops its process group (`TERM`, then `KILL` after a grace period; see
//! [`GROUP_MARKER`] for why not SSH `signal` requests) and closes the channel, so nothing is
//! left running on the host and the server's session slot is freed. Processes that left the
//! group (daemons started with `setsid`) are not touched, on purpose.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rand::RngExt;
use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, Semaphore};

use super::error::{human, shorten, tail};
use super::keys::KeyCache;
use super::known_hosts::{KnownHosts, KnownHostsError};
use super::transfer::{RemoveOnDrop, SizedReceiver, get_script, put_script, temp_beside};
use super::{BoxFuture, Exec, ExitStatus, HostStream, PutSource, Transport, TransportError};

/// Tuning for SSH connections. The defaults suit 10,000 hosts from one small machine.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Bound on one connection attempt: TCP connect, key exchange and login.
    pub connect_timeout: Duration,
    /// Attempts before a host is reported unreachable (1 = no retry).
    pub connect_attempts: u32,
    /// Wait before the second attempt; doubles after each, with ±50% jitter.
    pub retry_backoff: Duration,
    /// Send a keepalive after this much silence from the server...
    pub keepalive_interval: Duration,
    /// ...and drop the connection after this many unanswered ones.
    pub keepalive_max: usize,
    /// Handshakes in flight across all hosts (see [`SshPool`]).
    pub max_handshakes: usize,
    /// Channels open across all hosts (see [`SshPool`]).
    pub max_sessions: usize,
    /// Channels open at once on one host's connection; further calls wait for a free one.
    /// OpenSSH refuses more than its `MaxSessions` (default 10); the default, 8, leaves room
    /// for the channels that stop cancelled commands.
    pub sessions_per_host: usize,
    /// Forwarded TCP streams open across all hosts (see [`SshPool`]). Keep it well above the
    /// RPC client's idle connections (256), which hold streams for up to 10 s after use.
    pub max_tunnels: usize,
    /// Replace a recorded host key that changed instead of refusing the host.
    pub accept_changed_host_keys: bool,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            connect_timeout: Duration::from_secs(15),
            connect_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
            max_handshakes: 64,
            max_sessions: 2048,
            sessions_per_host: 8,
            max_tunnels: 1024,
            accept_changed_host_keys: false,
        }
    }
}

/// What the pool has done so far, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshStats {
    /// Logged-in connections opened (reconnects included).
    pub connections: u64,
    /// Channels opened.
    pub sessions: u64,
    /// Forwarded TCP streams (`direct-tcpip` channels) opened.
    pub tunnels: u64,
}

/// Shared state of every SSH connection of a run.
pub struct SshPool {
    config: Arc<client::Config>,
    options: SshOptions,
    /// Bounds handshakes (TCP connect + key exchange + login) in flight across all hosts. A
    /// handshake costs asymmetric crypto on both ends and a file descriptor; sshd drops
    /// unauthenticated connections beyond its `MaxStartups` (10 by default, per server), and
    /// thousands of simultaneous SYNs from one machine trip rate limits on the path. Held for
    /// one attempt, released before any backoff sleep.
    handshakes: Semaphore,
    /// Bounds channels open across all hosts. Each open channel can hold up to a window (2 MiB)
    /// of unread output in memory and keeps a remote process alive; this caps both for a run
    /// over 10,000 hosts. Held from channel open to channel close.
    sessions: Semaphore,
    /// Bounds forwarded TCP streams (`direct-tcpip` channels) open across all hosts. Each is a
    /// socket on a host's sshd and up to a window of unread data here, and the RPC client keeps
    /// idle ones for reuse; this caps both for a run over 10,000 nodes. Held by the stream, from
    /// channel open until it is dropped, so a caller past the bound waits for one to close.
    tunnels: Arc<Semaphore>,
    known_hosts: KnownHosts,
    keys: KeyCache,
    connections: AtomicU64,
    channels: AtomicU64,
    forwards: AtomicU64,
}

impl SshPool {
    pub fn new(known_hosts: KnownHosts, options: SshOptions) -> Arc<SshPool> {
        let config = client::Config {
            keepalive_interval: Some(options.keepalive_interval),
            keepalive_max: options.keepalive_max,
            // Small commands dominate; do not let Nagle hold their last packet.
            nodelay: true,
            ..Default::default()
        };
        Arc::new(SshPool {
            config: Arc::new(config),
            handshakes: Semaphore::new(options.max_handshakes.max(1)),
            sessions: Semaphore::new(options.max_sessions.max(1)),
            tunnels: Arc::new(Semaphore::new(options.max_tunnels.max(1))),
            options,
            known_hosts,
            keys: KeyCache::default(),
            connections: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            forwards: AtomicU64::new(0),
        })
    }

    /// A transport to one host. Nothing connects until its first call.
    pub fn transport(self: &Arc<Self>, target: SshTarget) -> SshTransport {
        let display = format!(
            "{} ({}@{}:{})",
            target.label, target.user, target.host, target.port
        );
        SshTransport {
            channels: Semaphore::new(self.options.sessions_per_host.max(1)),
            pool: self.clone(),
            target,
            display,
            conn: Mutex::new(None),
            exec_seen: std::sync::Mutex::new(0),
        }
    }

    pub fn stats(&self) -> SshStats {
        SshStats {
            connections: self.connections.load(Ordering::Relaxed),
            sessions: self.channels.load(Ordering::Relaxed),
            tunnels: self.forwards.load(Ordering::Relaxed),
        }
    }

    pub fn known_hosts(&self) -> &KnownHosts {
        &self.known_hosts
    }
}

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// Short name for messages (an instance id, or the address).
    pub label: String,
    /// Address (an IP, or a name resolved at connect time).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file (already resolved to an absolute or working-directory path).
    pub key: PathBuf,
}

/// One host over SSH.
pub struct SshTransport {
    pool: Arc<SshPool>,
    target: SshTarget,
    display: String,
    /// The host's connection, opened on first use. The async lock makes concurrent first calls
    /// wait for one handshake instead of starting one each.
    conn: Mutex<Option<Arc<Handle<Client>>>>,
    /// Bounds channels open at once on this host's connection to sshd's `MaxSessions`.
    channels: Semaphore,
    /// The connection (its handle's address) that last started a command. sshd turns on
    /// `TCP_NODELAY` for a connection when its first session starts a command (OpenSSH
    /// `ssh_packet_set_interactive`); a connection used only for forwarding keeps Nagle's
    /// algorithm, and replies to concurrent forwarded calls then wait for delayed ACKs
    /// (`benches/rpc.rs` on loopback, 8 calls in flight: 589 calls/s unprimed, 6,116 primed). So
    /// [`Self::tunnel`] runs `true` once on a connection that has not run anything yet.
    exec_seen: std::sync::Mutex<usize>,
}

/// How one connection attempt failed.
enum Attempt {
    /// Worth another attempt (network, timeout, the server hung up).
    Retry(String),
    /// Will fail the same way again (key refused, host key changed).
    Fatal(TransportError),
}

impl SshTransport {
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Closes the connection politely (it also closes when the transport is dropped).
    async fn close(&self) {
        if let Some(h) = self.conn.lock().await.take() {
            let _ = h
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }

    /// The live connection, opening one if there is none or it died.
    async fn connection(&self) -> Result<Arc<Handle<Client>>, TransportError> {
        let mut slot = self.conn.lock().await;
        if let Some(h) = slot.as_ref()
            && !h.is_closed()
        {
            return Ok(h.clone());
        }
        *slot = None;
        let h = Arc::new(self.connect().await?);
        *slot = Some(h.clone());
        Ok(h)
    }

    async fn forget_connection(&self, dead: &Arc<Handle<Client>>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|h| Arc::ptr_eq(h, dead)) {
            *slot = None;
        }
    }

    async fn connect(&self) -> Result<Handle<Client>, TransportError> {
        let opts = &self.pool.options;
        let key = self
            .pool
            .keys
            .load(&self.target.key)
            .map_err(|cause| TransportError::Key {
                host: self.display.clone(),
                key: self.target.key.clone(),
                cause,
            })?;
        let start = Instant::now();
        let mut backoff = opts.retry_backoff;
        let attempts = opts.connect_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = self.pool.handshakes.acquire().await.expect("never closed");
                match tokio::time::timeout(opts.connect_timeout, self.handshake(&key)).await {
                    Ok(r) => r,
                    Err(_) => Err(Attempt::Retry(format!(
                        "no SSH login within {}",
                        human(opts.connect_timeout)
                    ))),
                }
            };
            match result {
                Ok(h) => {
                    self.pool.connections.fetch_add(1, Ordering::Relaxed);
                    return Ok(h);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(cause)) if attempt >= attempts => {
                    return Err(TransportError::Unreachable {
                        host: self.display.clone(),
                        port: self.target.port,
                        attempts: attempt,
                        elapsed: human(start.elapsed()),
                        cause,
                    });
                }
                Err(Attempt::Retry(cause)) => {
                    tracing::debug!(host = %self.display, attempt, %cause, "connect failed; retrying");
                    let jitter = rand::rng().random_range(0.5..1.5);
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }

    async fn handshake(&self, key: &Arc<PrivateKey>) -> Result<Handle<Client>, Attempt> {
        let handler = Client {
            pool: self.pool.clone(),
            host: self.target.host.clone(),
            port: self.target.port,
            display: self.display.clone(),
        };
        let addr = (self.target.host.as_str(), self.target.port);
        let mut h = client::connect(self.pool.config.clone(), addr, handler)
            .await
            .map_err(|e| match e {
                HandshakeError::Refused(e) => Attempt::Fatal(e),
                HandshakeError::Russh(e) => Attempt::Retry(russh_cause(&e)),
            })?;
        let hash = if key.algorithm().is_rsa() {
            h.best_supported_rsa_hash()
                .await
                .map_err(|e| Attempt::Retry(russh_cause(&e)))?
                .flatten()
        } else {
            None
        };
        let auth = h
            .authenticate_publickey(
                self.target.user.clone(),
                PrivateKeyWithHashAlg::new(key.clone(), hash),
            )
            .await
            .map_err(|e| Attempt::Retry(russh_cause(&e)))?;
        if !auth.success() {
            return Err(Attempt::Fatal(TransportError::AuthRefused {
                host: self.display.clone(),
                user: self.target.user.clone(),
                key: self.target.key.clone(),
            }));
        }
        Ok(h)
    }

    /// Opens a channel on the live connection; a connection found dead is replaced once.
    async fn open_channel(
        &self,
        command: &str,
    ) -> Result<(Arc<Handle<Client>>, russh::Channel<Msg>), TransportError> {
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            match open_session(&conn).await {
                Ok(ch) => {
                    self.pool.channels.fetch_add(1, Ordering::Relaxed);
                    return Ok((conn, ch));
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    return Err(TransportError::Refused {
                        host: self.display.clone(),
                        command: shorten(command),
                        cause: format!("channel open failed ({reason:?})"),
                    });
                }
                Err(e) if !retried => {
                    tracing::debug!(host = %self.display, error = %e, "connection died; reconnecting");
                    self.forget_connection(&conn).await;
                    retried = true;
                }
                Err(e) => {
                    return Err(TransportError::Disconnected {
                        host: self.display.clone(),
                        cause: russh_cause(&e),
                    });
                }
            }
        }
    }

    /// A `direct-tcpip` channel to `127.0.0.1:port` on the host, as a byte stream. Like
    /// [`Self::open_channel`], a connection found dead is replaced once; a refusal is not
    /// retried (the server's configuration will not change between attempts).
    async fn tunnel(&self, port: u16) -> Result<HostStream, TransportError> {
        let permit = self
            .pool
            .tunnels
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let mut retried = false;
        loop {
            let mut conn = self.connection().await?;
            if *self.exec_seen.lock().expect("not poisoned") != Arc::as_ptr(&conn) as usize {
                // See `exec_seen`. A failure here only costs speed; the forward may still work.
                let primed = self
                    .exec_inner(Exec::new(
                        "true",
                        &mut tokio::io::sink(),
                        &mut tokio::io::sink(),
                    ))
                    .await;
                if let Err(e) = primed {
                    tracing::debug!(host = %self.display, error = %e, "could not start a command before forwarding");
                }
                conn = self.connection().await?;
            }
            // The originator is informational (sshd logs it); this machine is not a listener.
            match conn
                .channel_open_direct_tcpip("127.0.0.1", u32::from(port), "127.0.0.1", 0)
                .await
            {
                Ok(ch) => {
                    self.pool.forwards.fetch_add(1, Ordering::Relaxed);
                    return Ok(Box::new(Tunnel {
                        io: ch.into_stream(),
                        _permit: permit,
                    }));
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    let host = self.display.clone();
                    return Err(match reason {
                        // sshd's connect() to the port failed: the node is not listening (yet).
                        russh::ChannelOpenFailure::ConnectFailed => TransportError::PortClosed {
                            host,
                            port,
                            cause: "the SSH server's connection to 127.0.0.1 failed".into(),
                        },
                        russh::ChannelOpenFailure::AdministrativelyProhibited => {
                            TransportError::ForwardingRefused {
                                host,
                                port,
                                reason: "administratively prohibited".into(),
                            }
                        }
                        other => TransportError::ForwardingRefused {
                            host,
                            port,
                            reason: format!("{other:?}"),
                        },
                    });
                }
                Err(e) if !retried => {
                    tracing::debug!(host = %self.display, error = %e, "connection died; reconnecting");
                    self.forget_connection(&conn).await;
                    retried = true;
                }
                Err(e) => return Err(self.disconnected(&e)),
            }
        }
    }

    async fn exec_inner(&self, req: Exec<'_>) -> Result<ExitStatus, TransportError> {
        let Exec {
            command,
            stdin,
            stdout,
            stderr,
            timeout,
        } = req;
        // Waiting for a free channel is queueing, not running: the timeout starts after it.
        let _host_permit = self.channels.acquire().await.expect("never closed");
        let _global_permit = self.pool.sessions.acquire().await.expect("never closed");
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let timed_out = || TransportError::Timeout {
            host: self.display.clone(),
            command: shorten(command),
            after: human(timeout.unwrap_or_default()),
        };

        let open = self.open_channel(command);
        let (conn, channel) = match deadline {
            Some(d) => tokio::time::timeout_at(d, open)
                .await
                .map_err(|_| timed_out())??,
            None => open.await?,
        };
        *self.exec_seen.lock().expect("not poisoned") = Arc::as_ptr(&conn) as usize;
        let (rx, tx) = channel.split();
        // From here on, leaving early in any way (error, timeout, the caller dropping us)
        // stops the remote command and closes the channel.
        let mut guard = KillOnDrop {
            tx: Some(tx),
            rx: Some(rx),
            conn,
            group: Arc::new(AtomicU32::new(0)),
        };
        let group = guard.group.clone();
        let mut marker = MarkerLine::new(&format!("{:08x}", rand::rng().random::<u32>()));
        let tx = guard.tx.as_ref().expect("set above");
        let rx = guard.rx.as_mut().expect("set above");

        let run = async {
            // The command's first stderr line names its process group (see `GROUP_MARKER`).
            let wrapped = format!("printf '{}%s\\n' \"$$\" >&2; {command}", marker.marker);
            tx.exec(true, wrapped)
                .await
                .map_err(|e| self.disconnected(&e))?;
            let pump = async {
                let Some(input) = stdin else {
                    return tx.eof().await.map_err(|e| self.disconnected(&e));
                };
                let mut writer = tx.make_writer();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = input
                        .read(&mut buf)
                        .await
                        .map_err(|e| TransportError::LocalIo {
                            host: self.display.clone(),
                            path: PathBuf::from("<stdin>"),
                            cause: e,
                        })?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .write_all(&buf[..n])
                        .await
                        .map_err(|e| self.lost(e.to_string()))?;
                }
                // Shutting the writer down sends end-of-file.
                writer
                    .shutdown()
                    .await
                    .map_err(|e| self.lost(e.to_string()))
            };
            let read = async {
                let mut status = None;
                while let Some(msg) = rx.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => {
                            stdout.write_all(&data).await.map_err(|e| self.sink(e))?
                        }
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            let rest = marker.feed(&data, &group);
                            stderr.write_all(&rest).await.map_err(|e| self.sink(e))?
                        }
                        ChannelMsg::ExitStatus { exit_status } => {
                            status = Some(ExitStatus::Code(exit_status))
                        }
                        ChannelMsg::ExitSignal { signal_name, .. } => {
                            status = Some(ExitStatus::Signal(signal_text(&signal_name)))
                        }
                        ChannelMsg::Failure => {
                            return Err(TransportError::Refused {
                                host: self.display.clone(),
                                command: shorten(command),
                                cause: "exec request denied".into(),
                            });
                        }
                        _ => {}
                    }
                }
                stderr
                    .write_all(&marker.finish())
                    .await
                    .map_err(|e| self.sink(e))?;
                stdout.flush().await.map_err(|e| self.sink(e))?;
                stderr.flush().await.map_err(|e| self.sink(e))?;
                status.ok_or_else(|| self.lost("the channel closed without an exit status".into()))
            };
            tokio::pin!(pump, read);
            let mut pumping = true;
            loop {
                tokio::select! {
                    // A command may exit without reading all its input; the read side decides.
                    r = &mut read => return r,
                    r = &mut pump, if pumping => { pumping = false; r?; }
                }
            }
        };
        let result = match deadline {
            Some(d) => tokio::time::timeout_at(d, run)
                .await
                .unwrap_or_else(|_| Err(timed_out())),
            None => run.await,
        };
        if result.is_ok() {
            guard.disarm();
        }
        result
    }

    fn disconnected(&self, e: &russh::Error) -> TransportError {
        self.lost(russh_cause(e))
    }

    fn lost(&self, cause: String) -> TransportError {
        TransportError::Disconnected {
            host: self.display.clone(),
            cause,
        }
    }

    fn sink(&self, e: std::io::Error) -> TransportError {
        TransportError::LocalIo {
            host: self.display.clone(),
            path: PathBuf::from("<output>"),
            cause: e,
        }
    }

    async fn put_inner(
        &self,
        src: PutSource<'_>,
        remote: &str,
        mode: u32,
    ) -> Result<u64, TransportError> {
        let local_err = |path: &Path, cause| TransportError::LocalIo {
            host: self.display.clone(),
            path: path.to_path_buf(),
            cause,
        };
        let (size, mut input): (u64, Box<dyn tokio::io::AsyncRead + Send + Unpin + '_>) = match src
        {
            PutSource::Bytes(b) => (b.len() as u64, Box::new(b)),
            PutSource::File(path) => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| local_err(path, e))?;
                let len = f.metadata().await.map_err(|e| local_err(path, e))?.len();
                (len, Box::new(f))
            }
        };
        let script = put_script(remote, size, mode);
        let mut stderr = Vec::new();
        let status = self
            .exec_inner(Exec::new(&script, &mut tokio::io::sink(), &mut stderr).stdin(&mut input))
            .await?;
        if !status.success() {
            return Err(TransportError::Transfer {
                host: self.display.clone(),
                path: remote.to_string(),
                cause: format!("{status}: {}", tail(&stderr)),
            });
        }
        Ok(size)
    }

    async fn get_inner(&self, remote: &str, local: &Path) -> Result<u64, TransportError> {
        let local_err = |cause| TransportError::LocalIo {
            host: self.display.clone(),
            path: local.to_path_buf(),
            cause,
        };
        if let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(local_err)?;
        }
        let tmp = temp_beside(local);
        let file = tokio::fs::File::create(&tmp).await.map_err(local_err)?;
        // Remove the temp file on every way out but success.
        let cleanup = RemoveOnDrop(Some(tmp.clone()));
        let mut rx = SizedReceiver::new(tokio::io::BufWriter::with_capacity(256 * 1024, file));
        let script = get_script(remote);
        let mut stderr = Vec::new();
        let transfer = |cause: String| TransportError::Transfer {
            host: self.display.clone(),
            path: remote.to_string(),
            cause,
        };
        let status = self
            .exec_inner(Exec::new(&script, &mut rx, &mut stderr))
            .await
            .map_err(|e| match e {
                // The receiver refused what came (a bad size line, excess bytes).
                TransportError::LocalIo { cause, .. }
                    if cause.kind() == std::io::ErrorKind::InvalidData =>
                {
                    transfer(cause.to_string())
                }
                other => other,
            })?;
        if !status.success() {
            return Err(transfer(format!("{status}: {}", tail(&stderr))));
        }
        let size = rx.finish().map_err(transfer)?;
        let mut file = rx.into_inner();
        file.flush().await.map_err(local_err)?;
        file.into_inner().sync_all().await.map_err(local_err)?;
        tokio::fs::rename(&tmp, local).await.map_err(local_err)?;
        cleanup.disarm();
        Ok(size)
    }
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.display
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
        Box::pin(self.tunnel(port))
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.close())
    }
}

/// A forwarded stream holding its place in [`SshPool`]'s `tunnels` bound until dropped (which
/// also closes the channel).
struct Tunnel {
    io: russh::ChannelStream<Msg>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The first line every command writes to stderr: `cfxm-pgid-<tag> <pid>`, the pid of the shell
/// sshd started, which is also its process group (sshd calls `setsid` for each session).
///
/// Why: sshd refuses `signal` requests unless it runs with privilege separation in the
/// session process (OpenSSH 9.2 here logs "session signalling requires privilege
/// separation"), and closing a channel does not stop a command without a terminal. Knowing the
/// group, a cancelled command is stopped from a second channel with `kill -- -<pgid>`, which
/// works on every POSIX host. The line is removed from the stderr the caller sees.
const GROUP_MARKER: &str = "cfxm-pgid-";

/// Finds and removes [`GROUP_MARKER`]'s line near the start of a stderr stream. The login
/// shell's start-up files may write to stderr before it, so the marker carries a random tag
/// and is looked for among the first lines; they pass through untouched.
struct MarkerLine {
    /// `cfxm-pgid-<tag> `, this command's marker up to the pid.
    marker: String,
    /// Bytes of a line not complete yet.
    partial: Vec<u8>,
    lines_seen: usize,
    done: bool,
}

impl MarkerLine {
    /// Give up looking after this many lines or bytes of start-up noise.
    const MAX_LINES: usize = 64;
    const MAX_BYTES: usize = 16 * 1024;

    fn new(tag: &str) -> Self {
        MarkerLine {
            marker: format!("{GROUP_MARKER}{tag} "),
            partial: Vec::new(),
            lines_seen: 0,
            done: false,
        }
    }

    /// Consumes stderr bytes; returns what belongs to the caller.
    fn feed(&mut self, data: &[u8], group: &AtomicU32) -> Vec<u8> {
        if self.done {
            return data.to_vec();
        }
        self.partial.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let pid = std::str::from_utf8(&line[..i])
                .ok()
                .and_then(|l| l.strip_prefix(self.marker.as_str()))
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                group.store(pid, Ordering::Relaxed);
                self.done = true;
                out.append(&mut self.partial);
                return out;
            }
            out.extend_from_slice(&line);
            self.lines_seen += 1;
        }
        if self.lines_seen > Self::MAX_LINES || self.partial.len() > Self::MAX_BYTES {
            self.done = true;
            out.append(&mut self.partial);
        }
        out
    }

    /// Bytes held back when the stream ended.
    fn finish(&mut self) -> Vec<u8> {
        self.done = true;
        std::mem::take(&mut self.partial)
    }
}

/// Stops the remote command and closes its channel unless disarmed (see the module header):
/// end-of-file on its stdin first (a `put` script then fails its size check and removes its
/// temp file), then `TERM` to its process group, then `KILL` if it is still there after a
/// grace period, all from a second channel on the same connection.
struct KillOnDrop {
    tx: Option<ChannelWriteHalf<Msg>>,
    rx: Option<ChannelReadHalf>,
    conn: Arc<Handle<Client>>,
    /// The command's process group, once its marker line arrived (0 before).
    group: Arc<AtomicU32>,
}

impl KillOnDrop {
    fn disarm(mut self) {
        self.tx = None;
        self.rx = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let (Some(tx), Some(mut rx)) = (self.tx.take(), self.rx.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let conn = self.conn.clone();
        let group = self.group.load(Ordering::Relaxed);
        rt.spawn(async move {
            let _ = tx.eof().await;
            if group <= 1 {
                // The marker never arrived (the shell is still starting): ask sshd, which
                // some servers honour.
                let _ = tx.signal(Sig::TERM).await;
            } else {
                let script = format!(
                    "kill -TERM -- -{group} 2>/dev/null || exit 0; i=0; \
                     while [ $i -lt 20 ]; do sleep 0.1; kill -0 -- -{group} 2>/dev/null || exit 0; i=$((i+1)); done; \
                     kill -KILL -- -{group} 2>/dev/null; exit 0"
                );
                if let Ok(ch) = open_session(&conn).await {
                    let (mut krx, ktx) = ch.split();
                    if ktx.exec(false, script).await.is_ok() {
                        let _ = ktx.eof().await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while krx.wait().await.is_some() {}
                        })
                        .await;
                    }
                }
            }
            // The command is gone (or could not be reached); let its channel close.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(msg) = rx.wait().await {
                    if matches!(msg, ChannelMsg::Close) {
                        break;
                    }
                }
            })
            .await;
            let _ = tx.close().await;
        });
    }
}

/// Opens a session channel. sshd frees a closed session's slot only after its next read
/// loop, so an open that follows a close closely can be refused ("no more sessions") although
/// the client is within `MaxSessions`: such refusals are retried briefly.
async fn open_session(conn: &Handle<Client>) -> Result<russh::Channel<Msg>, russh::Error> {
    let mut wait = Duration::from_millis(5);
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        match conn.channel_open_session().await {
            Err(russh::Error::ChannelOpenFailure(
                russh::ChannelOpenFailure::ConnectFailed
                | russh::ChannelOpenFailure::AdministrativelyProhibited
                | russh::ChannelOpenFailure::ResourceShortage,
            )) if Instant::now() < give_up => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// The russh event handler of one connection: checks the server's host key.
struct Client {
    pool: Arc<SshPool>,
    host: String,
    port: u16,
    display: String,
}

#[derive(Debug)]
enum HandshakeError {
    Russh(russh::Error),
    /// The host key check refused the server; carried out of russh as is.
    Refused(TransportError),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        HandshakeError::Russh(e)
    }
}

impl client::Handler for Client {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // A host certificate: pin the key it certifies, like any other host key.
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::from(cert.public_key().clone())
            }
        };
        match self.pool.known_hosts.check(&self.host, self.port, &key) {
            Ok(_) => Ok(true),
            Err(KnownHostsError::Changed {
                file,
                line,
                recorded,
                offered,
            }) => Err(HandshakeError::Refused(TransportError::HostKeyChanged {
                host: self.display.clone(),
                file: file.display().to_string(),
                line,
                offered,
                recorded,
            })),
            Err(KnownHostsError::Io { file, cause }) => {
                Err(HandshakeError::Refused(TransportError::KnownHosts {
                    host: self.display.clone(),
                    file,
                    cause: cause.to_string(),
                }))
            }
        }
    }
}

/// A russh error as the cause part of a one-line message.
fn russh_cause(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect | russh::Error::HUP => "the server closed the connection".into(),
        russh::Error::SendError => "the connection is closed".into(),
        russh::Error::KeepaliveTimeout => "the server stopped answering keepalives".into(),
        other => other.to_string(),
    }
}

fn signal_text(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, u32) {
        let group = AtomicU32::new(0);
        let mut m = MarkerLine::new("abcd1234");
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.feed(c, &group));
        }
        out.extend(m.finish());
        (out, group.load(Ordering::Relaxed))
    }

    #[test]
    fn the_marker_line_is_removed_wherever_it_splits() {
        assert_eq!(
            run(&[b"cfxm-pgid-abcd1234 42\nerr\n"]),
            (b"err\n".to_vec(), 42)
        );
        assert_eq!(
            run(&[b"cfxm-pg", b"id-abcd1234 4", b"2\ne", b"rr"]),
            (b"err".to_vec(), 42)
        );
        // Start-up noise before it passes through; a look-alike with another tag does too.
        assert_eq!(
            run(&[b"bash: pyenv: not found\ncfxm-pgid-ffff 7\ncfxm-pgid-abcd1234 9\nx\n"]),
            (b"bash: pyenv: not found\ncfxm-pgid-ffff 7\nx\n".to_vec(), 9)
        );
        // No marker at all (an exec that never started): everything comes back.
        assert_eq!(run(&[b"partial"]), (b"partial".to_vec(), 0));
    }
}
