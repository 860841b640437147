//! `cfxm exec`: run a command (or copy a file) on every host of a spec, output prefixed by host.
//!
//! Text output: remote stdout lines on stdout and remote stderr lines on stderr, each as
//! `<host> | <line>` with the host column aligned; each failed host gets one `<host> ! ...`
//! line on stderr, then one summary line on stderr, e.g. `12 ok, 1 failed (exit 2), 0
//! unreachable`, then one `help:` line per kind of failure. JSON output (`--format json`):
//! one object per line on stdout (`output`, `done`, then `summary`). Exit code 0 when every
//! host succeeded, 1 otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::json;

use super::{Format, SpecArg};
use crate::ssh::SshOptions;
use crate::ssh::fanout::{
    self, Action, ExecOptions, FanoutEvent, FanoutReport, Outcome, OutcomeClass, Stream,
};
use crate::ssh::hosts::HostFilter;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["command", "put", "get"])))]
#[command(after_help = "Examples:
  cfxm exec -f spec.yaml -- uptime
  cfxm exec --hosts region=ap-southeast-1 --timeout 30s -- 'docker ps | wc -l'
  cfxm exec --put ./conflux.toml config.toml
  cfxm exec --get log0/conflux.log ./logs      # ./logs/<host>/conflux.log")]
pub struct ExecArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    state: super::StateDirArg,
    /// Only some hosts: comma-separated terms, any of which selects a host: `region=GLOB`,
    /// `zone=GLOB`, `id=GLOB`, `ip=GLOB`, `provider=GLOB`, or a bare GLOB matching any of them.
    #[arg(long, value_name = "FILTER")]
    hosts: Option<String>,
    /// Hosts worked on at once.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    parallelism: u32,
    /// Give up on a host after this long (e.g. `30s`, `5m`); its command is killed.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Bound on each connection attempt (3 attempts per host).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Trust and record a host key that differs from the one recorded on first use (after a
    /// host was rebuilt or its address reused).
    #[arg(long)]
    accept_changed_host_keys: bool,
    /// Copy the local file LOCAL to REMOTE on every host (mode kept; written atomically).
    #[arg(long, num_args = 2, value_names = ["LOCAL", "REMOTE"])]
    put: Option<Vec<String>>,
    /// Copy REMOTE from every host into LOCALDIR/<host>/.
    #[arg(long, num_args = 2, value_names = ["REMOTE", "LOCALDIR"])]
    get: Option<Vec<String>>,
    /// `text` for people, `json` (one object per line) for machines.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The shell command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: ExecArgs) -> ExitCode {
    let spec = match super::diagnostics::load_spec(&args.spec.spec) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let filter = match args
        .hosts
        .as_deref()
        .map(str::parse::<HostFilter>)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            return ExitCode::from(1);
        }
    };
    let action = if let Some(p) = &args.put {
        Action::Put {
            local: PathBuf::from(&p[0]),
            remote: p[1].clone(),
            mode: None,
            timeout: args.timeout,
        }
    } else if let Some(g) = &args.get {
        Action::Get {
            remote: g[0].clone(),
            local_dir: PathBuf::from(&g[1]),
            timeout: args.timeout,
        }
    } else {
        Action::Exec {
            command: args.command.join(" "),
            timeout: args.timeout,
        }
    };
    if let Action::Put { local, .. } = &action
        && let Err(e) = std::fs::File::open(local)
    {
        eprintln!("error: cannot read `{}`: {e}", local.display());
        return ExitCode::from(1);
    }
    let options = ExecOptions {
        state_dir: args.state.state_dir,
        filter,
        parallelism: args.parallelism as usize,
        ssh: SshOptions {
            connect_timeout: args.connect_timeout,
            accept_changed_host_keys: args.accept_changed_host_keys,
            ..SshOptions::default()
        },
    };
    let printer = Arc::new(Printer {
        format: args.format,
        width: Mutex::new(0),
        action: action.clone(),
    });

    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let events = {
        let p = printer.clone();
        Arc::new(move |e: FanoutEvent| p.event(&e)) as fanout::EventSink
    };
    let result = runtime.block_on(async {
        let work = fanout::exec_spec(
            &spec,
            options,
            action,
            |hosts| {
                let w = hosts.hosts().iter().map(|h| h.label.len()).max();
                *printer.width.lock().expect("width lock") = w.unwrap_or(0);
            },
            events,
        );
        tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let code = match result {
        None => {
            // Give the cancelled commands' kill requests a moment to leave.
            runtime.block_on(tokio::time::sleep(Duration::from_millis(300)));
            eprintln!("interrupted: remote commands were asked to stop");
            ExitCode::from(130)
        }
        Some(Err(e)) => {
            eprint!("{}", super::render_diagnostic(&e));
            ExitCode::from(1)
        }
        Some(Ok(report)) => {
            printer.summary(&report);
            if report.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    };
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

/// Draws fan-out events as they arrive (from many tasks; each line is written whole).
struct Printer {
    format: Format,
    /// Width of the host column: the longest selected label.
    width: Mutex<usize>,
    action: Action,
}

impl Printer {
    fn width(&self) -> usize {
        *self.width.lock().expect("width lock")
    }

    fn event(&self, e: &FanoutEvent) {
        match (self.format, e) {
            (Format::Text, FanoutEvent::Line { host, stream, line }) => {
                let mut text = format!("{host:<w$} | ", w = self.width()).into_bytes();
                text.extend_from_slice(line);
                text.push(b'\n');
                let _ = match stream {
                    Stream::Stdout => std::io::stdout().lock().write_all(&text),
                    Stream::Stderr => std::io::stderr().lock().write_all(&text),
                };
            }
            (Format::Text, FanoutEvent::Done { host, outcome }) => {
                let w = self.width();
                match outcome {
                    Outcome::Ok { bytes: Some(n) } => {
                        let what = match &self.action {
                            Action::Put { remote, .. } => format!("put {n} bytes to `{remote}`"),
                            Action::Get {
                                local_dir, remote, ..
                            } => format!(
                                "got {n} bytes into `{}`",
                                fanout::get_destination(local_dir, host, remote).display()
                            ),
                            Action::Exec { .. } => format!("{n} bytes"),
                        };
                        println!("{host:<w$} | {what}");
                    }
                    Outcome::Ok { bytes: None } => {}
                    Outcome::Exit(status) => eprintln!("{host:<w$} ! failed: {status}"),
                    Outcome::Error(err) => {
                        let class = if err.is_unreachable() {
                            "unreachable"
                        } else {
                            "failed"
                        };
                        eprintln!("{host:<w$} ! {class}: {err}");
                    }
                }
            }
            (Format::Json, FanoutEvent::Line { host, stream, line }) => {
                let stream = match stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                println!(
                    "{}",
                    json!({
                        "event": "output",
                        "host": &**host,
                        "stream": stream,
                        "line": String::from_utf8_lossy(line),
                    })
                );
            }
            (Format::Json, FanoutEvent::Done { host, outcome }) => {
                let mut v = json!({
                    "event": "done",
                    "host": &**host,
                    "status": class_name(outcome.class()),
                });
                match outcome {
                    Outcome::Ok { bytes } => v["bytes"] = json!(bytes),
                    Outcome::Exit(crate::ssh::ExitStatus::Code(c)) => v["exit"] = json!(c),
                    Outcome::Exit(crate::ssh::ExitStatus::Signal(s)) => v["signal"] = json!(s),
                    Outcome::Error(e) => {
                        v["reason"] = json!(outcome.reason());
                        v["error"] = json!(e.to_string());
                        v["help"] = json!(miette::Diagnostic::help(&**e).map(|h| h.to_string()));
                    }
                }
                println!("{v}");
            }
        }
    }

    fn summary(&self, report: &FanoutReport) {
        match self.format {
            Format::Text => {
                eprintln!("{}", report.summary());
                // One help line per kind of error, not per host: 1,000 unreachable hosts
                // usually share one cause.
                let mut seen = std::collections::BTreeSet::new();
                for (_, o) in &report.results {
                    if let Outcome::Error(e) = o
                        && let Some(h) = miette::Diagnostic::help(&**e)
                        && seen.insert(h.to_string())
                    {
                        eprintln!("help: {h}");
                    }
                }
            }
            Format::Json => println!(
                "{}",
                json!({
                    "event": "summary",
                    "hosts": report.results.len(),
                    "ok": report.count(OutcomeClass::Ok),
                    "failed": report.count(OutcomeClass::Failed),
                    "unreachable": report.count(OutcomeClass::Unreachable),
                    "summary": report.summary(),
                })
            ),
        }
    }
}

/// Lifts the soft limit on open files to the hard one: each host in flight holds a socket,
/// and the usual soft limit (1024) is below `--parallelism` × a few. Best effort.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn class_name(c: OutcomeClass) -> &'static str {
    match c {
        OutcomeClass::Ok => "ok",
        OutcomeClass::Failed => "failed",
        OutcomeClass::Unreachable => "unreachable",
    }
}
