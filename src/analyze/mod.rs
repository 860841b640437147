//! Log analysis: block latency statistics from collected node logs, the original tool's table
//! (stat_latency_rs, conflux-node.md §3.4) computed correctly and fast, and the report files.
//!
//! Flow: [`analyze_run`] finds `RUN_DIR/logs/<node>/conflux.log[.zst|.gz]` ([`input`]), scans every
//! log on a pool of threads in one streaming pass each ([`scan`], [`line`]), merges the per-node
//! summaries ([`collect`]) and computes the [`Report`] ([`compute`]). [`write_report`] then writes
//! `report.txt`, `report.json`, `report.md` and `plots/` into the run directory; the renderers
//! ([`render_text`], [`render_markdown`], [`render_json`]) return strings for the CLI to print.
//!
//! What differs from the original, on purpose:
//! - the headline measures latency from the generating node's own nanosecond log time of the
//!   block, not from the block header's whole-second timestamp (which adds U[0,1) s to every
//!   figure); the header method is kept, labelled, in the original's full table, and its bias on
//!   the same data is reported;
//! - a block some node never logged is counted and reported (coverage per block and per node),
//!   not silently dropped; its percentiles use the nodes that did log it;
//! - a malformed line is counted and quoted in the warnings instead of aborting the run.
//!
//! Both methods compare log times of different machines, so they assume synchronised clocks
//! (NTP keeps cloud hosts within milliseconds); a node that logs a block before its generator
//! made it is named in a warning, since its skew adds to every latency it reports.
//!
//! This module never prints; the CLI draws progress from [`AnalyzeOptions::progress`].

mod collect;
mod compute;
pub mod fixture;
mod input;
mod line;
mod plot;
mod render;
mod report;
mod scan;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use input::{Compression, compress};
pub use report::*;
pub use stats::{ORIGINAL_PERCENTILES, Summary, percentile_label};

/// Progress of the scan, reported after each finished log.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub disk_bytes_done: u64,
    pub disk_bytes_total: u64,
}

/// A progress callback; called from the analysing thread.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to analyse a run.
#[derive(Clone)]
pub struct AnalyzeOptions {
    /// Percentiles of the headline table (the spec's `report.percentiles`), each in (0, 100].
    pub percentiles: Vec<f64>,
    /// Scan threads; default: the machine's parallelism.
    pub threads: Option<usize>,
    /// Node name (its directory under `logs/`) → group label (a region). Nodes not listed are
    /// grouped by `hosts.json` when the run has one (see [`groups_from_hosts_json`]), else by
    /// the host part of their name when there are at most 32 hosts, else as `all`.
    pub node_groups: BTreeMap<String, String>,
    /// Track a sampled transaction iff its hash's second byte is below this (256 keeps all).
    /// Default: all up to 1,000 nodes, then a share that keeps memory at the 1,000-node level.
    pub tx_keep_per_256: Option<u16>,
    /// Keep only the earliest N blocks by header timestamp (the original's `-n/--max-blocks`).
    pub max_blocks: Option<usize>,
    pub progress: Option<ProgressFn>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            percentiles: ORIGINAL_PERCENTILES.to_vec(),
            threads: None,
            node_groups: BTreeMap::new(),
            tx_keep_per_256: None,
            max_blocks: None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for AnalyzeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyzeOptions")
            .field("percentiles", &self.percentiles)
            .field("threads", &self.threads)
            .field("node_groups", &self.node_groups.len())
            .field("tx_keep_per_256", &self.tx_keep_per_256)
            .field("max_blocks", &self.max_blocks)
            .finish_non_exhaustive()
    }
}

/// Why a run could not be analysed or its report written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AnalyzeError {
    #[error("run directory `{}` does not exist", path.display())]
    #[diagnostic(
        code(cfxm::report::no_run_dir),
        help("pass the run directory that holds `logs/`, e.g. `state/<spec>/runs/<timestamp>`")
    )]
    RunDirMissing { path: PathBuf },

    #[error("no `conflux.log`, `conflux.log.zst` or `conflux.log.gz` below `{}`", path.display())]
    #[diagnostic(
        code(cfxm::report::no_logs),
        help(
            "node logs are expected at `RUN_DIR/logs/<host>-<i>/conflux.log`; has the collect stage run?"
        )
    )]
    NoLogs { path: PathBuf },

    #[error("two logs for one node: `{}` and `{}`", first.display(), second.display())]
    #[diagnostic(
        code(cfxm::report::duplicate_log),
        help("keep one form of each node's log (plain, .zst or .gz) and remove the other")
    )]
    DuplicateLog { first: PathBuf, second: PathBuf },

    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(
        code(cfxm::report::io),
        help("check that the path exists and is readable")
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot decompress `{}`: {message}", path.display())]
    #[diagnostic(
        code(cfxm::report::decode),
        help("the file is not valid for its extension; re-collect the log or remove the file")
    )]
    Decode { path: PathBuf, message: String },

    #[error("no node log could be read below `{}`", path.display())]
    #[diagnostic(
        code(cfxm::report::unreadable),
        help("every log failed to read; the first error: {first}")
    )]
    AllUnreadable { path: PathBuf, first: String },

    #[error("the logs below `{}` hold no block lines", path.display())]
    #[diagnostic(
        code(cfxm::report::no_blocks),
        help(
            "the analysis lines are DEBUG: nodes need `log_level = \"debug\"` and no `log_conf` (conflux-node.md §1.4)"
        )
    )]
    NoBlocks { path: PathBuf },

    #[error("cannot write `{}`: {source}", path.display())]
    #[diagnostic(
        code(cfxm::report::write),
        help("check that the run directory is writable and the disk is not full")
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot draw `{}`: {message}", path.display())]
    #[diagnostic(
        code(cfxm::report::plot),
        help("this is a bug in cfxm; please report it")
    )]
    Plot { path: PathBuf, message: String },

    #[error("percentile {value} is outside (0, 100]")]
    #[diagnostic(
        code(cfxm::report::percentile),
        help("percentiles are numbers in (0, 100], e.g. `50,90,99,99.9`")
    )]
    BadPercentile { value: f64 },
}

/// Analyses a finished run: every node log below `run_dir`.
pub fn analyze_run(run_dir: &Path, opts: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    for p in &opts.percentiles {
        if !(*p > 0.0 && *p <= 100.0) {
            return Err(AnalyzeError::BadPercentile { value: *p });
        }
    }
    let mut percentiles = opts.percentiles.clone();
    percentiles.sort_by(f64::total_cmp);
    percentiles.dedup();
    if percentiles.is_empty() {
        percentiles = ORIGINAL_PERCENTILES.to_vec();
    }
    let logs = input::discover(run_dir)?;
    let from_hosts = groups_from_hosts_json(run_dir);
    let groups = assign_groups(&logs, &opts.node_groups, &from_hosts);
    let mut run = collect::collect(logs, groups, opts)?;
    if let Some(n) = opts.max_blocks {
        run.keep_earliest_blocks(n);
    }
    if run.nodes.iter().all(|n| n.error.is_some()) {
        return Err(AnalyzeError::AllUnreadable {
            path: run_dir.to_path_buf(),
            first: run.nodes[0].error.clone().unwrap_or_default(),
        });
    }
    if run.blocks.is_empty() {
        return Err(AnalyzeError::NoBlocks {
            path: run_dir.to_path_buf(),
        });
    }
    Ok(compute::build(
        &run,
        &run_dir.display().to_string(),
        &percentiles,
    ))
}

/// Node name → region, from the original's `hosts.json` in the run directory or in the spec's
/// state directory two levels up (`state/<spec>/runs/<ts>` → `state/<spec>/hosts.json`). Node
/// directories are named `<ip>-<i>`. Empty when no inventory is found or it does not parse.
pub fn groups_from_hosts_json(run_dir: &Path) -> BTreeMap<String, String> {
    let candidates = [
        Some(run_dir.join("hosts.json")),
        run_dir
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("hosts.json")),
    ];
    for path in candidates.into_iter().flatten() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(hosts) = crate::state::hosts_json::parse(&text) else {
            continue;
        };
        let mut out = BTreeMap::new();
        for h in hosts {
            for i in 0..h.nodes_per_host {
                out.insert(format!("{}-{i}", h.ip), h.region.clone());
            }
        }
        return out;
    }
    BTreeMap::new()
}

fn assign_groups(
    logs: &[input::NodeLog],
    explicit: &BTreeMap<String, String>,
    from_hosts: &BTreeMap<String, String>,
) -> Vec<String> {
    let host_of = |name: &str| -> String {
        match name.rsplit_once('-') {
            Some((host, i)) if !host.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => {
                host.to_string()
            }
            _ => name.to_string(),
        }
    };
    let hosts: std::collections::BTreeSet<String> = logs.iter().map(|l| host_of(&l.name)).collect();
    logs.iter()
        .map(|l| {
            explicit
                .get(&l.name)
                .or_else(|| from_hosts.get(&l.name))
                .cloned()
                .unwrap_or_else(|| {
                    if hosts.len() <= 32 {
                        host_of(&l.name)
                    } else {
                        "all".to_string()
                    }
                })
        })
        .collect()
}

/// The text report (what `cfxm report` prints and `report.txt` holds).
pub fn render_text(report: &Report) -> String {
    render::text(report)
}

/// Just the original tool's table, in its exact layout.
pub fn render_original_table(report: &Report) -> String {
    render::original_table(&report.original.table)
}

/// The Markdown summary.
pub fn render_markdown(report: &Report) -> String {
    render::markdown(report)
}

/// `report.json`: pretty JSON with a trailing newline.
pub fn render_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("the report serializes");
    s.push('\n');
    s
}

/// Which files [`write_report`] writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Also draw `plots/*.svg` and `plots/*.png`.
    pub plots: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { plots: true }
    }
}

/// Writes `report.txt`, `report.json`, `report.md` and (optionally) `plots/` into `run_dir`.
/// Each file is written to a temporary name and renamed, so a failure leaves no half file.
/// Returns the paths written.
pub fn write_report(
    run_dir: &Path,
    report: &Report,
    opts: &WriteOptions,
) -> Result<Vec<PathBuf>, AnalyzeError> {
    let mut written = Vec::new();
    for (name, body) in [
        ("report.txt", render_text(report)),
        ("report.json", render_json(report)),
        ("report.md", render_markdown(report)),
    ] {
        let path = run_dir.join(name);
        write_atomic(&path, body.as_bytes())?;
        written.push(path);
    }
    if opts.plots {
        let dir = run_dir.join("plots");
        std::fs::create_dir_all(&dir).map_err(|source| AnalyzeError::Write {
            path: dir.clone(),
            source,
        })?;
        for (name, bytes) in plot::all(report, &dir)? {
            let path = dir.join(name);
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
    }
    Ok(written)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AnalyzeError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let err = |source| AnalyzeError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str) -> input::NodeLog {
        input::NodeLog {
            name: name.into(),
            path: PathBuf::from(name),
            compression: Compression::Plain,
            disk_bytes: 0,
        }
    }

    #[test]
    fn groups_come_from_options_then_hosts_json_then_hosts() {
        let logs = [log("10.0.0.1-0"), log("10.0.0.1-1"), log("10.0.0.2-0")];
        let explicit = BTreeMap::from([("10.0.0.2-0".to_string(), "cn-hongkong".to_string())]);
        let hosts = BTreeMap::from([("10.0.0.1-1".to_string(), "me-east-1".to_string())]);
        assert_eq!(
            assign_groups(&logs, &explicit, &hosts),
            ["10.0.0.1", "me-east-1", "cn-hongkong"]
        );
        let many: Vec<_> = (0..40).map(|i| log(&format!("10.0.1.{i}-0"))).collect();
        assert!(
            assign_groups(&many, &BTreeMap::new(), &BTreeMap::new())
                .iter()
                .all(|g| g == "all")
        );
    }

    #[test]
    fn hosts_json_is_found_beside_the_run_or_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs/20260304T0853");
        std::fs::create_dir_all(&run).unwrap();
        assert!(groups_from_hosts_json(&run).is_empty());
        let hosts = r#"[{"ip": "47.236.1.2", "nodes_per_host": 2, "ssh_user": "root",
            "ssh_key_path": "k", "provider": "aliyun", "region": "ap-southeast-1",
            "zone": "ap-southeast-1a", "instance_id": "i-1", "private_ip": null}]"#;
        std::fs::write(dir.path().join("hosts.json"), hosts).unwrap();
        let g = groups_from_hosts_json(&run);
        assert_eq!(
            g.get("47.236.1.2-1").map(String::as_str),
            Some("ap-southeast-1")
        );
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn progress_is_reported_per_file() {
        let dir = tempfile::tempdir().unwrap();
        fixture::write_run(
            dir.path(),
            &fixture::FixtureSpec {
                nodes: 3,
                blocks: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let opts = AnalyzeOptions {
            progress: Some(Arc::new(move |p: Progress| {
                sink.lock().unwrap().push((p.files_done, p.files_total))
            })),
            ..AnalyzeOptions::default()
        };
        analyze_run(dir.path(), &opts).unwrap();
        assert_eq!(*seen.lock().unwrap(), [(1, 3), (2, 3), (3, 3)]);
    }
}
