//! `collect`: bring home the log lines of this run that the analysis reads
//! (original-tool.md §2.10), into a new run directory, `runs/<timestamp>/`.
//!
//! The nodes keep running: the network outlives the run, so a new `blocks.count` re-runs only
//! `blocks`, `collect` and `report` on the same network (nodes are stopped by `destroy`, and by
//! the `nodes` stage when it restarts them). A run's lines are told apart by time: `blocks`
//! records when it started and ended, and each host keeps only the lines whose leading
//! RFC 3339 time falls in that window (a string comparison of the first field, with a few
//! seconds' margin, [`LogWindow`]). Without a recorded window (`--only collect` before any
//! `blocks`), the whole log is taken.
//!
//! Per host, in parallel, for each node that was part of the network: the host runs `grep -F`
//! for the analysis lines of its `conflux.log`, then `awk` for the window, piped through
//! `gzip`, and the compressed stream is written straight to `logs/<ip>-<slot>/conflux.log.gz`
//! here (through a `.part` file renamed when complete); `metrics.log` follows as
//! `metrics.log.gz`. Hosts need nothing beyond `grep`, `awk` and `gzip`: no 7z, rsync or
//! Python.
//!
//! Stopping is not needed to flush: devnode logs each block's event record as soon as it can
//! gain no more events. The real node (docker hosts) keeps the records of blocks off its pivot
//! chain in memory until it evicts them or stops, so on cloud hosts the report's block-event
//! rows come from the pivot blocks' records; the latency rows (receive, sync, consensus) are
//! whole either way.
//!
//! The run directory also gets `hosts.json` (the analyzer groups nodes by region with it) and
//! the generated `config.toml`, as the original kept them. A node whose log cannot be fetched
//! is listed in the output and counts against `collect_budget`; what was fetched stays.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::blocks::BlocksOutput;
use super::env::{InputContext, StageEnv, StageHost};
use super::nodes::{LiveNode, devnode_bin, experiment_config, live_nodes};
use super::plan::Inputs;
use super::progress::Counter;
use super::runtime::{ANALYSIS_PATTERNS, LogWindow, Runtime};
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::{BoxFuture, Exec};
use crate::state::hosts_json;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectOutput {
    /// The run directory, `state/<spec>/runs/<timestamp>`.
    pub run_dir: PathBuf,
    /// Node logs fetched (`logs/<ip>-<slot>/conflux.log.gz`).
    pub logs: usize,
    /// Compressed bytes fetched, logs and metrics.
    pub bytes: u64,
    /// Nodes whose log could not be fetched.
    pub failed: Vec<(String, String)>,
    /// The time window of the lines taken (`None`: the whole logs).
    #[serde(default)]
    pub window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}

/// `collect`: see the module docs.
pub struct Collect;

impl Stage for Collect {
    fn id(&self) -> StageId {
        StageId::Collect
    }

    fn inputs(&self, _: &InputContext<'_>) -> Result<Inputs, StageError> {
        Ok(Inputs::new()
            .with("patterns", ANALYSIS_PATTERNS)
            .with("compression", "gzip")
            .with("window", "blocks"))
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(run(env, step))
    }
}

async fn run(env: &StageEnv, step: &StepContext) -> Result<Value, Failure> {
    let nodes = live_nodes(env, StageId::Collect)?;
    let bin = devnode_bin(&env.options)?;
    let run = env.state.new_run(&env.lock, chrono::Utc::now())?;
    let dir = run.path().to_path_buf();
    let hosts = env.host_list();
    let records: Vec<_> = hosts.iter().map(|h| h.record.clone()).collect();
    write(
        &dir.join("hosts.json"),
        hosts_json::render(&records).as_bytes(),
    )
    .await?;
    let config = experiment_config(&env.input_context(&hosts))?;
    write(&dir.join("config.toml"), config.render().as_bytes()).await?;

    let window = blocks_window(env);
    let mut out = CollectOutput {
        run_dir: dir.clone(),
        window: window.map(|w| (w.since, w.until)),
        ..CollectOutput::default()
    };
    let counter = Counter::new(step, "logs", nodes.len() as u64);
    let mut per_host = Vec::new();
    for (i, h) in env.hosts.iter().enumerate() {
        let mine: Vec<&LiveNode> = nodes.iter().filter(|n| n.host == i).collect();
        let runtime = Runtime::for_host(&h.host, &bin);
        let (dir, counter) = (&dir, &counter);
        per_host.push(async move {
            let mut fetched = Vec::new();
            for n in mine {
                let r = fetch(env, h, &runtime, n, dir, window.as_ref()).await;
                counter.tick(r.is_ok());
                fetched.push((n.name.clone(), r));
            }
            fetched
        });
    }
    for fetched in bounded(per_host, env.options.host_parallelism).await {
        for (name, r) in fetched {
            match r {
                Ok(bytes) => {
                    out.logs += 1;
                    out.bytes += bytes;
                }
                Err(e) => out.failed.push((name, e.to_string())),
            }
        }
    }
    out.failed.sort();
    let value = serde_json::to_value(&out).expect("serializes");
    let allowed = env.options.collect_budget.allowed(nodes.len());
    if out.failed.len() > allowed {
        let (node, why) = &out.failed[0];
        return Err(Failure::with_outputs(
            StageError::OverBudget {
                stage: StageId::Collect,
                what: "node logs",
                failed: out.failed.len(),
                total: nodes.len(),
                allowed,
                first: format!("{node}: {why}"),
            },
            value,
        ));
    }
    Ok(value)
}

/// The window of the latest `blocks` run (finished, failed or cancelled), if it recorded one:
/// from its start (less the margin, but never before the run before it ended, so two runs in
/// quick succession do not share lines) to its end (plus the margin).
fn blocks_window(env: &StageEnv) -> Option<LogWindow> {
    let name = StageId::Blocks.name();
    // The blocks runs that recorded their times, latest first.
    let runs: Vec<BlocksOutput> = env.journal.with_log(|log| {
        log.entries()
            .iter()
            .rev()
            .filter_map(|e| match &e.record {
                crate::state::Record::Stage(r) if r.stage == name => Some(r),
                _ => None,
            })
            .filter_map(|r| {
                let result = r.outputs.get("result")?.clone();
                serde_json::from_value::<BlocksOutput>(result).ok()
            })
            .filter(|o| o.started_at.is_some())
            .take(2)
            .collect()
    });
    // Only the latest record counts: an interrupted latest run (no times) has no window.
    let latest = env.journal.with_log(|log| {
        log.latest_stage(&name).and_then(|(serial, r)| {
            let last = super::plan::LastRun::from_record(serial, r);
            serde_json::from_value::<BlocksOutput>(last.result).ok()
        })
    })?;
    let started = latest.started_at?;
    let finished = latest.finished_at.unwrap_or_else(chrono::Utc::now);
    let previous_end = runs
        .iter()
        .filter(|o| o.started_at < Some(started))
        .find_map(|o| o.finished_at);
    Some(LogWindow::around(started, finished, previous_end))
}

/// Fetches one node's filtered log (required) and metrics (if any); the bytes written.
async fn fetch(
    env: &StageEnv,
    h: &StageHost,
    runtime: &Runtime,
    node: &LiveNode,
    run_dir: &Path,
    window: Option<&LogWindow>,
) -> Result<u64, StageError> {
    let dir = run_dir.join("logs").join(&node.name);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| StageError::io("create", &dir, e))?;
    let log = stream_to(
        env,
        h,
        &runtime.filtered_log_command(node.slot, window),
        &dir.join("conflux.log.gz"),
    )
    .await?;
    // Metrics are kept when the node wrote them; their absence is not a failure.
    let metrics = stream_to(
        env,
        h,
        &runtime.metrics_log_command(node.slot, window),
        &dir.join("metrics.log.gz"),
    )
    .await
    .unwrap_or(0);
    Ok(log + metrics)
}

/// Runs `command` on `h`, writing its stdout to `dest` (through `dest.part`, renamed once the
/// command succeeded with nothing on stderr); the bytes written.
async fn stream_to(
    env: &StageEnv,
    h: &StageHost,
    command: &str,
    dest: &Path,
) -> Result<u64, StageError> {
    let part = dest.with_extension("gz.part");
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| StageError::io("create", &part, e))?;
    let mut stderr = Vec::new();
    let result = h
        .transport
        .exec(
            Exec::new(command, &mut file, &mut stderr)
                .timeout(Some(env.options.command_timeout * 10)),
        )
        .await;
    let finish = async {
        let status = result?;
        status.check(h.transport.host(), command, &stderr)?;
        if !stderr.is_empty() {
            return Err(StageError::Input {
                stage: StageId::Collect,
                problem: format!(
                    "{}: {}",
                    h.transport.host(),
                    String::from_utf8_lossy(&stderr).trim()
                ),
                help: "check the node's log directory on the host".into(),
            });
        }
        file.flush()
            .await
            .map_err(|e| StageError::io("write", &part, e))?;
        file.sync_all()
            .await
            .map_err(|e| StageError::io("write", &part, e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| StageError::io("write", &part, e))?
            .len();
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| StageError::io("rename", &part, e))?;
        Ok(len)
    };
    let r = finish.await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    r
}

async fn write(path: &Path, bytes: &[u8]) -> Result<(), StageError> {
    tokio::fs::write(path, bytes)
        .await
        .map_err(|e| StageError::io("write", path, e))
}
