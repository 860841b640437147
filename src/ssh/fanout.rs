//! One action on many hosts: the operator's `pssh`, and the primitive every stage uses.
//!
//! [`run`] executes an [`Action`] (a command, a put, a get) on each target with at most
//! `parallelism` hosts in flight, reports progress as [`FanoutEvent`]s (output line by line,
//! each host's outcome) and returns a [`FanoutReport`]. It never prints; `cfxm exec` draws the
//! events. [`exec_spec`] is the whole of `cfxm exec` for a spec: hosts, filter, transports, run.
//!
//! A failing host never stops the others. Outcomes fall in three classes: ok, failed (the
//! command ran and exited non-zero, timed out, or a transfer broke) and unreachable (nothing
//! could run: no connection, login refused, host key changed).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;

use super::hosts::{Connector, HostFilter, HostList, HostsError};
use super::{Exec, ExitStatus, PutSource, SshOptions, Transport, TransportError};
use crate::spec::Spec;

/// What to do on every host.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run a shell command; its output is reported line by line.
    Exec {
        command: String,
        timeout: Option<Duration>,
    },
    /// Copy a local file to `remote` on every host. `mode`: the local file's when `None`.
    Put {
        local: PathBuf,
        remote: String,
        mode: Option<u32>,
        timeout: Option<Duration>,
    },
    /// Copy `remote` from every host to `local_dir/<host label>/<file name>`.
    Get {
        remote: String,
        local_dir: PathBuf,
        timeout: Option<Duration>,
    },
}

/// One host to act on.
#[derive(Clone)]
pub struct Target {
    pub label: Arc<str>,
    pub transport: Arc<dyn Transport>,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Progress of a fan-out, in the order things happen.
#[derive(Debug, Clone)]
pub enum FanoutEvent {
    /// One line of a command's output, without its newline (a line longer than 64 KiB
    /// arrives in pieces).
    Line {
        host: Arc<str>,
        stream: Stream,
        line: Vec<u8>,
    },
    /// A host finished.
    Done { host: Arc<str>, outcome: Outcome },
}

/// How the action ended on one host.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Exit 0 (a command), or the file copied (`bytes`).
    Ok { bytes: Option<u64> },
    /// The command ran and did not exit 0.
    Exit(ExitStatus),
    /// The transport failed: see [`TransportError::is_unreachable`].
    Error(Arc<TransportError>),
}

/// The three summary classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    Ok,
    Failed,
    Unreachable,
}

impl Outcome {
    pub fn class(&self) -> OutcomeClass {
        match self {
            Outcome::Ok { .. } => OutcomeClass::Ok,
            Outcome::Exit(_) => OutcomeClass::Failed,
            Outcome::Error(e) if e.is_unreachable() => OutcomeClass::Unreachable,
            Outcome::Error(_) => OutcomeClass::Failed,
        }
    }

    /// Why a failed host failed, in a word or two: `exit 2`, `signal KILL`, `timeout`.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Ok { .. } => None,
            Outcome::Exit(s) => Some(s.to_string()),
            Outcome::Error(e) => Some(
                match &**e {
                    TransportError::Timeout { .. } => "timeout",
                    TransportError::Disconnected { .. } => "disconnected",
                    TransportError::Transfer { .. } => "transfer",
                    TransportError::LocalIo { .. } => "local i/o",
                    TransportError::Refused { .. } => "refused",
                    TransportError::RemoteExit { .. } => "exit",
                    TransportError::Unreachable { .. } => "unreachable",
                    TransportError::AuthRefused { .. } => "auth refused",
                    TransportError::Key { .. } => "key",
                    TransportError::HostKeyChanged { .. } => "host key changed",
                    TransportError::KnownHosts { .. } => "known hosts",
                    TransportError::NoSlot { .. } => "no slot",
                    TransportError::ForwardingRefused { .. } => "forwarding refused",
                    TransportError::PortClosed { .. } => "port closed",
                }
                .to_string(),
            ),
        }
    }
}

/// Every host's outcome, in target order.
#[derive(Debug, Clone, Default)]
pub struct FanoutReport {
    pub results: Vec<(Arc<str>, Outcome)>,
}

impl FanoutReport {
    pub fn count(&self, class: OutcomeClass) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| o.class() == class)
            .count()
    }

    /// Every host ok.
    pub fn success(&self) -> bool {
        self.results
            .iter()
            .all(|(_, o)| o.class() == OutcomeClass::Ok)
    }

    /// `12 ok, 1 failed (exit 2), 0 unreachable`; several reasons read
    /// `3 failed (2× exit 1, timeout)`.
    pub fn summary(&self) -> String {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (_, o) in &self.results {
            if o.class() == OutcomeClass::Failed
                && let Some(r) = o.reason()
            {
                *reasons.entry(r).or_default() += 1;
            }
        }
        let failed = self.count(OutcomeClass::Failed);
        let why = match reasons.len() {
            0 => String::new(),
            1 => format!(" ({})", reasons.keys().next().expect("one")),
            _ => format!(
                " ({})",
                reasons
                    .iter()
                    .map(|(r, n)| if *n > 1 {
                        format!("{n}× {r}")
                    } else {
                        r.clone()
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "{} ok, {failed} failed{why}, {} unreachable",
            self.count(OutcomeClass::Ok),
            self.count(OutcomeClass::Unreachable)
        )
    }
}

/// Receives events; called from many tasks at once.
pub type EventSink = Arc<dyn Fn(FanoutEvent) + Send + Sync>;

/// Runs `action` on every target, at most `parallelism` at once. Dropping the returned future
/// cancels every host's work (remote commands are killed; see `session`).
pub async fn run(
    targets: Vec<Target>,
    action: Action,
    parallelism: usize,
    events: EventSink,
) -> FanoutReport {
    run_with(targets, action, parallelism, events, false).await
}

/// [`run`], optionally disconnecting each host when it is done (for one-shot runs).
async fn run_with(
    targets: Vec<Target>,
    action: Action,
    parallelism: usize,
    events: EventSink,
    disconnect_when_done: bool,
) -> FanoutReport {
    let action = Arc::new(action);
    // Bounds hosts in flight: each holds a channel (and, the first time, a handshake) and
    // streams output; the SSH pool's own bounds apply inside.
    let hosts_in_flight = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().cloned().enumerate() {
        let action = action.clone();
        let events = events.clone();
        let permits = hosts_in_flight.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let outcome = run_one(&t, &action, &events).await;
            if disconnect_when_done {
                t.transport.disconnect().await;
            }
            events(FanoutEvent::Done {
                host: t.label.clone(),
                outcome: outcome.clone(),
            });
            (i, outcome)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; targets.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, o)) => outcomes[i] = Some(o),
            // A panic in one host's task is a bug; report it rather than lose the host.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    FanoutReport {
        results: targets
            .into_iter()
            .zip(outcomes)
            .map(|(t, o)| {
                (
                    t.label,
                    o.unwrap_or_else(|| {
                        Outcome::Error(Arc::new(TransportError::Disconnected {
                            host: t.transport.host().to_string(),
                            cause: "cancelled".into(),
                        }))
                    }),
                )
            })
            .collect(),
    }
}

async fn run_one(t: &Target, action: &Action, events: &EventSink) -> Outcome {
    let result = match action {
        Action::Exec { command, timeout } => {
            let mut out = LineSink::new(t.label.clone(), Stream::Stdout, events.clone());
            let mut err = LineSink::new(t.label.clone(), Stream::Stderr, events.clone());
            let r = t
                .transport
                .exec(Exec::new(command, &mut out, &mut err).timeout(*timeout))
                .await;
            out.finish();
            err.finish();
            r.map(|status| {
                if status.success() {
                    Outcome::Ok { bytes: None }
                } else {
                    Outcome::Exit(status)
                }
            })
        }
        Action::Put {
            local,
            remote,
            mode,
            timeout,
        } => {
            let mode = match mode {
                Some(m) => Ok(*m),
                None => local_mode(local).map_err(|e| TransportError::LocalIo {
                    host: t.transport.host().to_string(),
                    path: local.clone(),
                    cause: e,
                }),
            };
            match mode {
                Ok(mode) => with_timeout(
                    *timeout,
                    t,
                    remote,
                    t.transport.put(PutSource::File(local), remote, mode),
                )
                .await
                .map(|n| Outcome::Ok { bytes: Some(n) }),
                Err(e) => Err(e),
            }
        }
        Action::Get {
            remote,
            local_dir,
            timeout,
        } => {
            let dest = get_destination(local_dir, &t.label, remote);
            with_timeout(*timeout, t, remote, t.transport.get(remote, &dest))
                .await
                .map(|n| Outcome::Ok { bytes: Some(n) })
        }
    };
    result.unwrap_or_else(|e| Outcome::Error(Arc::new(e)))
}

async fn with_timeout<T>(
    timeout: Option<Duration>,
    t: &Target,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match timeout {
        None => fut.await,
        Some(d) => tokio::time::timeout(d, fut).await.unwrap_or_else(|_| {
            Err(TransportError::Timeout {
                host: t.transport.host().to_string(),
                command: format!("copy {what}"),
                after: super::error::human(d),
            })
        }),
    }
}

/// `local_dir/<label>/<file name of remote>`; labels are made safe as one path component.
pub fn get_destination(local_dir: &Path, label: &str, remote: &str) -> PathBuf {
    let dir: String = label
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let name = Path::new(remote)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "file".into());
    local_dir.join(dir).join(name)
}

fn local_mode(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

/// Options of [`exec_spec`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub state_dir: PathBuf,
    pub filter: Option<HostFilter>,
    pub parallelism: usize,
    pub ssh: SshOptions,
}

/// `cfxm exec`: `action` on the spec's hosts (those `filter` selects). Returns the host labels
/// first through `on_hosts` (so a caller can size its output) and then the report.
pub async fn exec_spec(
    spec: &Spec,
    options: ExecOptions,
    action: Action,
    on_hosts: impl FnOnce(&HostList),
    events: EventSink,
) -> Result<FanoutReport, HostsError> {
    let state = crate::state::StateDir::new(&options.state_dir).spec(&spec.name)?;
    let mut hosts = HostList::for_spec(spec, &state)?;
    if let Some(f) = &options.filter {
        hosts = hosts.filter(f)?;
    }
    on_hosts(&hosts);
    let connector = Connector::new(&state, options.ssh.clone())?;
    let targets = hosts
        .hosts()
        .iter()
        .map(|h| {
            Ok(Target {
                label: Arc::from(h.label.as_str()),
                transport: connector.transport(h)?,
            })
        })
        .collect::<Result<Vec<_>, HostsError>>()?;
    Ok(run_with(targets, action, options.parallelism, events, true).await)
}

/// Splits a byte stream into [`FanoutEvent::Line`]s as it arrives.
struct LineSink {
    host: Arc<str>,
    stream: Stream,
    events: EventSink,
    partial: Vec<u8>,
}

/// A line longer than this is reported in pieces rather than buffered without bound.
const MAX_LINE: usize = 64 * 1024;

impl LineSink {
    fn new(host: Arc<str>, stream: Stream, events: EventSink) -> Self {
        LineSink {
            host,
            stream,
            events,
            partial: Vec::new(),
        }
    }

    fn emit(&self, line: Vec<u8>) {
        (self.events)(FanoutEvent::Line {
            host: self.host.clone(),
            stream: self.stream,
            line,
        });
    }

    /// Reports a last line that had no newline.
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(line);
        }
    }
}

impl AsyncWrite for LineSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut this.partial);
            line.extend_from_slice(&rest[..i]);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            this.emit(line);
            rest = &rest[i + 1..];
        }
        this.partial.extend_from_slice(rest);
        while this.partial.len() >= MAX_LINE {
            let tail = this.partial.split_off(MAX_LINE);
            let head = std::mem::replace(&mut this.partial, tail);
            this.emit(head);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;

    fn collector() -> (EventSink, Arc<Mutex<Vec<FanoutEvent>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |e| s.lock().unwrap().push(e)), seen)
    }

    #[tokio::test]
    async fn line_sink_splits_lines_across_writes() {
        let (sink, seen) = collector();
        let mut ls = LineSink::new("h".into(), Stream::Stdout, sink);
        ls.write_all(b"one\ntw").await.unwrap();
        ls.write_all(b"o\r\nthree").await.unwrap();
        ls.finish();
        let lines: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                FanoutEvent::Line { line, .. } => String::from_utf8(line.clone()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, ["one", "two", "three"]);
    }

    #[test]
    fn summary_reads_as_specified() {
        let ok = || Outcome::Ok { bytes: None };
        let mut r = FanoutReport::default();
        for i in 0..12 {
            r.results.push((format!("h{i}").into(), ok()));
        }
        r.results
            .push(("bad".into(), Outcome::Exit(ExitStatus::Code(2))));
        assert_eq!(r.summary(), "12 ok, 1 failed (exit 2), 0 unreachable");
        assert!(!r.success());
        r.results
            .push(("bad2".into(), Outcome::Exit(ExitStatus::Code(2))));
        r.results.push((
            "slow".into(),
            Outcome::Error(Arc::new(TransportError::Timeout {
                host: "slow".into(),
                command: "sleep".into(),
                after: "1s".into(),
            })),
        ));
        r.results.push((
            "gone".into(),
            Outcome::Error(Arc::new(TransportError::NoSlot {
                host: "gone".into(),
                dir: "x".into(),
            })),
        ));
        assert_eq!(
            r.summary(),
            "12 ok, 3 failed (2× exit 2, timeout), 1 unreachable"
        );
    }

    #[test]
    fn get_destination_is_one_directory_per_host() {
        assert_eq!(
            get_destination(Path::new("out"), "i-1", "/var/log/conflux.log"),
            Path::new("out/i-1/conflux.log")
        );
        assert_eq!(
            get_destination(Path::new("out"), "a/b", "x"),
            Path::new("out/a_b/x")
        );
    }
}
