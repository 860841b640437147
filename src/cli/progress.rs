//! What `plan`, `apply` and `destroy` share on the terminal: indicatif progress on stderr
//! (a bar for discovery, a line per step with the hosts' ready/wanted counts; nothing when
//! stderr is not a terminal), the typed confirmation, Ctrl-C handling, the knobs common to the
//! three commands, and the end-of-run report.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::apply::{
    ApplyEvent, ApplyEventKind, ApplyResult, Cancel, Finish, HostTiming, Outcome, Phase, Reporter,
    Step, StepOutput,
};
use crate::discover;
use crate::plan::{Action, ChangeKind, Settings};

/// `--only` / `--skip`.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Only these parts may change: `infra` (cloud resources), `stages`, a region, or a stage
    /// name; comma-separated or repeated. `--only infra` plans and applies cloud resources
    /// alone.
    #[arg(long, value_name = "LIST")]
    pub only: Vec<String>,
    /// These parts may not change (same terms as `--only`).
    #[arg(long, value_name = "LIST")]
    pub skip: Vec<String>,
}

/// Knobs of waiting and polling, shared by the three commands.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// How long a new host may take to reach `Running` before it is deleted and replaced.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub boot_timeout: Duration,
    /// Time between two status polls of the cloud.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration, hide = true, overrides_with = "poll_interval")]
    pub poll_interval: Duration,
    /// Multiplies cfxm's own API rate budgets (10 reads/s, 5 creates/s, 20 calls/s in all, per
    /// region). Raise it for an account with raised limits or an emulator; lower it if the
    /// cloud throttles.
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        overrides_with = "rate_scale"
    )]
    pub rate_scale: f64,
}

impl TuningArgs {
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.timing.poll = self.poll_interval;
        let k = if self.rate_scale.is_finite() && self.rate_scale > 0.0 {
            self.rate_scale
        } else {
            1.0
        };
        for rate in [
            &mut s.rates.read,
            &mut s.rates.create,
            &mut s.rates.delete,
            &mut s.rates.modify,
            &mut s.rates.region_total,
        ] {
            rate.per_second *= k;
            rate.burst = ((f64::from(rate.burst) * k).round() as u32).max(1);
        }
        s
    }

    pub fn hosts(&self) -> HostTiming {
        HostTiming {
            poll: self.poll_interval,
            boot: self.boot_timeout,
            ..HostTiming::default()
        }
    }
}

/// `--parallelism`.
pub fn parallelism(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("at least 1")
}

/// The async runtime of a command.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Trips `cancel` on the first Ctrl-C (steps in flight finish, nothing new starts) and exits
/// on the second.
pub fn cancel_on_ctrl_c(runtime: &tokio::runtime::Runtime, ui: Arc<Ui>) -> Cancel {
    let cancel = Cancel::new();
    let c = cancel.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ui.println("interrupted: finishing the steps in flight, starting nothing new (Ctrl-C again stops at once)");
            c.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            ui.println("stopped; run the command again to resume from the journal");
            std::process::exit(130);
        }
    });
    cancel
}

/// Asks for a typed `yes` on stderr. Without a terminal, only `--auto-approve` proceeds.
pub fn confirm(what: &str, auto_approve: bool) -> Result<bool, String> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "refusing to {what} without confirmation: stdin is not a terminal\n\nhelp: review the plan above, then pass `--auto-approve`"
        ));
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\nDo you want to {what}?\n  Only `yes` will be accepted to approve.\n\n  Enter a value: "
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(line.trim() == "yes")
}

/// Progress on stderr.
pub struct Ui {
    /// Draws only on a terminal.
    enabled: bool,
    multi: MultiProgress,
    discovery: Mutex<Option<ProgressBar>>,
    /// The steps of the graph being executed, by node index.
    steps: Mutex<Vec<Step>>,
    bars: Mutex<HashMap<NodeIndex, (ProgressBar, Instant)>>,
    /// Without a terminal: when each step started and the last thing it said, for the one
    /// line printed when it ends.
    plain: Mutex<HashMap<NodeIndex, (Instant, Option<String>)>>,
}

impl Ui {
    pub fn new() -> Arc<Ui> {
        let enabled = std::io::stderr().is_terminal();
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Arc::new(Ui {
            enabled,
            multi: MultiProgress::with_draw_target(target),
            discovery: Mutex::new(None),
            steps: Mutex::new(Vec::new()),
            bars: Mutex::new(HashMap::new()),
            plain: Mutex::new(HashMap::new()),
        })
    }

    /// A line on stderr, above any bars.
    pub fn println(&self, line: &str) {
        if self.enabled {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn discover_event(&self, e: discover::Event) {
        if !self.enabled {
            return;
        }
        let mut d = self.discovery.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            discover::Event::Regions { total } => {
                let bar = self.multi.add(ProgressBar::new(total as u64));
                bar.set_style(
                    ProgressStyle::with_template("{spinner} discovering {pos}/{len} regions {msg}")
                        .expect("a valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                *d = Some(bar);
            }
            discover::Event::Scanned {
                region,
                resources,
                instances,
            } => {
                if let Some(bar) = d.as_ref() {
                    bar.inc(1);
                    if resources + instances > 0 {
                        bar.set_message(format!(
                            "({region}: {resources} resources, {instances} hosts)"
                        ));
                    }
                }
            }
        }
    }

    /// Ends the discovery bar.
    pub fn discovered(&self) {
        if let Some(bar) = self
            .discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }

    /// The steps of the graph about to run (node weights by index).
    pub fn begin(&self, graph: &DiGraph<Step, ()>) {
        *self.steps.lock().unwrap_or_else(|e| e.into_inner()) =
            graph.node_weights().cloned().collect();
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn step(&self, node: NodeIndex) -> Option<Step> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node.index())
            .cloned()
    }
}

impl Ui {
    /// Without a terminal (a log, CI): one line per step when it ends, with what it last
    /// counted (`✓ run stage/blocks (61s): blocks 300/300`).
    fn report_plain(&self, step: &Step, event: ApplyEvent) {
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        let what = format!("{} {}", step.verb(), step.address);
        match event.kind {
            ApplyEventKind::Started => {
                plain.insert(event.node, (Instant::now(), None));
            }
            ApplyEventKind::Progress(p) => {
                if let Some((_, last)) = plain.get_mut(&event.node) {
                    *last = Some(match (p.done, p.total) {
                        (Some(done), Some(total))
                            if !p.message.contains(&format!("{done}/{total}")) =>
                        {
                            format!("{done}/{total} {}", p.message)
                        }
                        _ => p.message,
                    });
                }
            }
            ApplyEventKind::Finished(f) => {
                let (started, last) = plain
                    .remove(&event.node)
                    .unwrap_or_else(|| (Instant::now(), None));
                let secs = started.elapsed().as_secs();
                match f {
                    Finish::Applied => match last {
                        Some(last) => eprintln!("✓ {what} ({secs}s): {last}"),
                        None => eprintln!("✓ {what} ({secs}s)"),
                    },
                    Finish::Failed { error } => {
                        let first = error.lines().next().unwrap_or_default();
                        eprintln!("✗ {what}: {first}");
                    }
                }
            }
            ApplyEventKind::Retried(_)
            | ApplyEventKind::Skipped { .. }
            | ApplyEventKind::Cancelled => {}
        }
    }
}

impl Reporter for Ui {
    fn report(&self, event: ApplyEvent) {
        let Some(step) = self.step(event.node) else {
            return;
        };
        if !step.is_work() {
            return;
        }
        if !self.enabled {
            self.report_plain(&step, event);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let what = format!("{} {}", step.verb(), step.address);
        match event.kind {
            ApplyEventKind::Started => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg}")
                        .expect("a valid template"),
                );
                bar.set_prefix(what);
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(event.node, (bar, Instant::now()));
            }
            ApplyEventKind::Progress(p) => {
                if let Some((bar, _)) = bars.get(&event.node) {
                    match (p.done, p.total) {
                        // Stage counters say their count themselves (`blocks 143/300, ETA 25s`).
                        (Some(done), Some(total))
                            if !p.message.contains(&format!("{done}/{total}")) =>
                        {
                            bar.set_message(format!("{done}/{total} {}", p.message));
                        }
                        _ => bar.set_message(p.message),
                    }
                }
            }
            ApplyEventKind::Retried(r) => {
                if let Some((bar, _)) = bars.get(&event.node) {
                    let first: String = r.error.chars().take(80).collect();
                    bar.set_message(format!(
                        "retrying in {} ({first})",
                        humantime::format_duration(Duration::from_millis(
                            r.delay.as_millis() as u64
                        ))
                    ));
                }
            }
            ApplyEventKind::Finished(f) => {
                if let Some((bar, started)) = bars.remove(&event.node) {
                    let secs = started.elapsed().as_secs();
                    match f {
                        Finish::Applied => {
                            let last = bar.message();
                            bar.set_style(
                                ProgressStyle::with_template("{msg}").expect("a valid template"),
                            );
                            if last.is_empty() {
                                bar.finish_with_message(format!("✓ {what} ({secs}s)"));
                            } else {
                                bar.finish_with_message(format!("✓ {what} ({secs}s): {last}"));
                            }
                        }
                        Finish::Failed { error } => {
                            bar.set_style(
                                ProgressStyle::with_template("{msg}").expect("a valid template"),
                            );
                            let first = error.lines().next().unwrap_or_default().to_owned();
                            bar.finish_with_message(format!("✗ {what}: {first}"));
                        }
                    }
                }
            }
            ApplyEventKind::Skipped { .. } | ApplyEventKind::Cancelled => {}
        }
    }
}

/// The end-of-run report on stdout: counts, each region's hosts, backfill, and every root
/// failure once (with what it skipped).
pub fn report(result: &ApplyResult, verb: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (mut added, mut changed, mut destroyed) = (0u64, 0u64, 0u64);
    // Rounds that replaced hosts which did not answer count too: one apply, one tally.
    let rounds = result.earlier.iter().chain(std::iter::once(result));
    for (round, (node, outcome)) in rounds.flat_map(|r| r.report.outcomes().map(move |o| (r, o))) {
        let step = &round.graph[node];
        let Outcome::Applied(value) = outcome else {
            continue;
        };
        match (step.phase, step.kind, value) {
            (_, ChangeKind::Hosts, StepOutput::Hosts(h)) => {
                added += h.placed.values().map(|v| u64::from(*v)).sum::<u64>();
                destroyed += h.destroyed as u64 + h.replaced.len() as u64;
            }
            (Phase::Backward, _, _) => destroyed += 1,
            (Phase::Forward, ChangeKind::Stage | ChangeKind::Backfill, _) => {}
            (Phase::Forward, _, _) => match step.action {
                Action::Create | Action::Replace => added += 1,
                Action::Update => changed += 1,
                _ => {}
            },
        }
    }
    for h in &result.hosts {
        let Some(region) = &h.region else { continue };
        if h.wanted_nodes == 0 && h.destroyed == 0 {
            continue;
        }
        let mut parts = Vec::new();
        if h.wanted_nodes > 0 {
            parts.push(format!(
                "{} of {} nodes on {} running host{}",
                h.ready_nodes,
                h.wanted_nodes,
                h.ready,
                if h.ready == 1 { "" } else { "s" }
            ));
        }
        if !h.placed.is_empty() {
            let placed: Vec<String> = h
                .placed
                .iter()
                .map(|((t, z), n)| format!("{n} × {t} in {z}"))
                .collect();
            parts.push(format!("created {}", placed.join(", ")));
        }
        if h.destroyed > 0 {
            parts.push(format!("destroyed {}", h.destroyed));
        }
        if h.shortfall_nodes > 0 {
            parts.push(format!("{} nodes short", h.shortfall_nodes));
        }
        let _ = writeln!(out, "hosts {region}: {}", parts.join("; "));
        for (id, why) in &h.replaced {
            let _ = writeln!(out, "  replaced {id}: {why}");
        }
    }
    for m in &result.backfill {
        let _ = writeln!(
            out,
            "backfill: {}{} nodes {} {}",
            if m.nodes > 0 { "+" } else { "" },
            m.nodes,
            if m.nodes > 0 { "into" } else { "from" },
            m.region
        );
    }
    let counts = result.report.counts();
    if result.is_success() {
        let _ = writeln!(
            out,
            "\n{verb} complete! Resources: {added} added, {changed} changed, {destroyed} destroyed."
        );
    } else {
        let _ = writeln!(
            out,
            "\n{verb} failed: {} step{} failed, {} skipped, {} not started. Resources: {added} added, {changed} changed, {destroyed} destroyed.",
            counts.failed + result.stage_failures.len(),
            if counts.failed + result.stage_failures.len() == 1 {
                ""
            } else {
                "s"
            },
            counts.skipped,
            counts.cancelled,
        );
    }
    out
}

/// Each root failure once, as a diagnostic, with how many steps it held back.
pub fn failures(result: &ApplyResult) -> String {
    let mut out = String::new();
    for (node, outcome) in result.report.failures() {
        let step = &result.graph[node];
        let skipped = result.report.skipped_by(node).len();
        let held = if skipped > 0 {
            format!(
                " ({skipped} dependent step{} skipped)",
                if skipped == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        match outcome {
            Outcome::Failed(e) => {
                out.push_str(&format!("error: {} {}{held}\n", step.verb(), step.address));
                out.push_str(&super::render_diagnostic(e));
            }
            Outcome::Panicked(p) => {
                out.push_str(&format!(
                    "error: {} {} panicked: {p}{held}\n\nhelp: this is a bug in cfxm; please report it\n",
                    step.verb(),
                    step.address
                ));
            }
            _ => {}
        }
    }
    for (address, error) in &result.stage_failures {
        out.push_str(&format!("error: run {address}: {error}\n"));
    }
    out
}

/// Colour on stdout: a terminal, and `NO_COLOR` unset.
pub fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The experiment's result after an apply that ran `report`: the latency tables, then where
/// the report files are.
pub fn latency(report: &crate::stages::report::ReportOutput) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "\nLatency report of {}:\n", report.run_dir.display());
    out.push_str(&report.table);
    if !report.table.ends_with('\n') {
        out.push('\n');
    }
    let relative: Vec<PathBuf> = report
        .files
        .iter()
        .map(|f| f.strip_prefix(&report.run_dir).unwrap_or(f).to_path_buf())
        .collect();
    let plots = relative.iter().filter(|f| f.starts_with("plots")).count();
    let mut files: Vec<String> = relative
        .iter()
        .filter(|f| !f.starts_with("plots"))
        .map(|f| f.display().to_string())
        .collect();
    if plots > 0 {
        files.push(format!("plots/ ({plots} files)"));
    }
    let _ = writeln!(
        out,
        "\nReport files in {}: {}",
        report.run_dir.display(),
        files.join(", ")
    );
    let _ = writeln!(
        out,
        "Re-analyse with `cfxm report {}`.",
        report.run_dir.display()
    );
    out
}
