//! The experiment end to end over local host slots: 8 devnodes (the built binary) on 4 hosts in
//! 2 regions, 50 blocks; then what re-planning does after nothing changed, after a new block
//! count (the same network, only the run's own lines collected), and after a devnode was
//! killed; and that the devnodes keep running after `collect` until they are stopped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cfxm::apply::{ApplyEventKind, Cancel, EventLog};
use cfxm::spec::Spec;
use cfxm::ssh::SshOptions;
use cfxm::ssh::hosts::{Connector, HostList};
use cfxm::stages::blocks::BlocksOutput;
use cfxm::stages::collect::CollectOutput;
use cfxm::stages::nodes::NodesOutput;
use cfxm::stages::plan::LastRun;
use cfxm::stages::topology::TopologyOutput;
use cfxm::stages::transactions::TransactionsOutput;
use cfxm::stages::{StageEnv, StageHost, StageId, StageOptions, StagePlan, StageSelection};
use cfxm::state::hosts_json::{self, HostRecord};
use cfxm::state::{SpecState, StageStatus, StateDir, StateLock};
use rand::RngExt;

use crate::{load, spec_text};

const EXPERIMENT: &str = "experiment:\n  topology: { peers: 3, seed: 7 }\n  \
    latency: { between_regions: { default: 20ms } }\n  transactions: { tps: 100 }\n  \
    blocks: { count: BLOCKS, mean_interval: 100ms, min_node_gap: 100ms }\n";

fn spec(dir: &Path, blocks: u32) -> Spec {
    let extra = EXPERIMENT.replace("BLOCKS", &blocks.to_string());
    load(
        &spec_text(&[("ap-southeast-1", 4), ("cn-hongkong", 4)], 2, &extra),
        dir,
    )
}

/// A state directory with 4 local hosts (slots), 2 per region, on fresh loopback addresses.
/// Dropping it stops whatever devnodes its slots still run (as the local cloud's destroy does).
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: SpecState,
    lock: Arc<StateLock>,
    hosts: Vec<StageHost>,
}

impl World {
    fn new(spec: &Spec) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let state = StateDir::new(root.join("state")).spec(&spec.name).unwrap();
        let lock = Arc::new(state.lock("stages test").unwrap());
        // Random 127.a.b.x addresses: tests running at once never share ports.
        let mut r = rand::rng();
        let (a, b) = (r.random_range(2..=99u8), r.random::<u8>());
        let records: Vec<HostRecord> = (0..4u8)
            .map(|i| HostRecord {
                ip: std::net::Ipv4Addr::new(127, a, b, 10 + i).into(),
                nodes_per_host: 2,
                ssh_user: "root".into(),
                ssh_key_path: "none".into(),
                provider: "local".into(),
                region: if i < 2 {
                    "ap-southeast-1"
                } else {
                    "cn-hongkong"
                }
                .into(),
                zone: "local-a".into(),
                instance_id: format!("i-local-{i}"),
                private_ip: None,
            })
            .collect();
        std::fs::create_dir_all(state.dir()).unwrap();
        std::fs::write(state.hosts_json_path(), hosts_json::render(&records)).unwrap();
        for r in &records {
            std::fs::create_dir_all(state.slot(&r.instance_id).unwrap()).unwrap();
        }
        let list = HostList::from_inventory(&state.hosts_json_path(), false, 22).unwrap();
        let connector = Connector::new(&state, SshOptions::default()).unwrap();
        let hosts = list
            .hosts()
            .iter()
            .map(|h| StageHost {
                host: h.clone(),
                transport: connector.transport(h).unwrap(),
            })
            .collect();
        World {
            _tmp: tmp,
            root,
            state,
            lock,
            hosts,
        }
    }

    /// Stops every node on every host (pid files checked), as destroy does before removing a
    /// slot; the outcomes per slot.
    async fn stop_all(&self) -> Vec<String> {
        let options = StageOptions {
            stop_timeout: Duration::from_secs(10),
            ..StageOptions::default()
        };
        let mut out = Vec::new();
        for h in &self.hosts {
            for (_, what) in cfxm::stages::nodes::stop_all(h, &options).await.unwrap() {
                out.push(what);
            }
        }
        out.sort();
        out
    }

    fn env(&self, spec: Spec) -> StageEnv {
        let options = StageOptions {
            devnode_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_cfxm"))),
            ready_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(60),
            sync_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            reach_retry_delay: Duration::from_millis(200),
            ..StageOptions::default()
        };
        let journal = self.state.journal(&self.lock).unwrap();
        StageEnv::new(
            Arc::new(spec),
            self.state.clone(),
            self.lock.clone(),
            journal,
            self.hosts.clone(),
            options,
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A failed test must not leave devnodes behind: kill what runs in the slots.
        for p in processes_under(&self.root) {
            if let Some(pid) = p.split_whitespace().next() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
            }
        }
    }
}

/// Processes whose working directory is inside `root`: devnodes still running.
fn processes_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.starts_with(root)
            && !zombie
        {
            found.push(format!("{name} in {}", cwd.display()));
        }
    }
    found
}

fn summaries(plan: &StagePlan) -> Vec<String> {
    plan.entries.iter().map(|e| e.summary()).collect()
}

async fn apply(
    env: &StageEnv,
    selection: &StageSelection,
) -> (StagePlan, cfxm::stages::PlanRun, Arc<EventLog>) {
    let events = Arc::new(EventLog::default());
    let (plan, run) = cfxm::stages::apply(env, selection, events.clone(), Cancel::new())
        .await
        .unwrap();
    if !run.is_success() {
        let failures: Vec<String> = run
            .runs
            .iter()
            .filter_map(|r| {
                r.outcome
                    .as_ref()
                    .err()
                    .map(|f| format!("{}: {}", r.id, f.error))
            })
            .collect();
        panic!("stages failed: {failures:?}\nplan: {:#?}", summaries(&plan));
    }
    (plan, run, events)
}

fn result<T: serde::de::DeserializeOwned>(env: &StageEnv, id: StageId) -> T {
    let last = LastRun::of(&env.journal.log(), id).unwrap();
    assert_eq!(last.status, StageStatus::Succeeded, "{id}");
    serde_json::from_value(last.result).unwrap()
}

/// A node's collected log, decompressed.
fn read_log(log_gz: &Path) -> String {
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(log_gz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {out:?}", log_gz.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The hashes of the blocks a node logged as inserted into its graph.
fn inserted_blocks(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("new block inserted into graph"))
        .filter_map(|l| {
            let at = l.find("hash: Some(")? + "hash: Some(".len();
            Some(l[at..at + 66].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_experiment_runs_end_to_end_and_re_plans_by_fingerprint() {
    let skip_report = StageSelection::skipping([StageId::Report]);
    let tmp_spec = tempfile::tempdir().unwrap();
    let world = World::new(&spec(tmp_spec.path(), 50));

    // 1. Everything from nothing, the report included.
    let env = world.env(spec(tmp_spec.path(), 50));
    let (plan, run, events) = apply(&env, &StageSelection::all()).await;
    assert_eq!(plan.running(), &StageId::ALL[..], "{:#?}", summaries(&plan));
    assert_eq!(run.runs.len(), 8);
    let nodes: NodesOutput = result(&env, StageId::Nodes);
    assert_eq!((nodes.total, nodes.nodes.len()), (8, 8), "{nodes:?}");
    let topology: TopologyOutput = result(&env, StageId::Topology);
    assert!(
        topology.failed.is_empty() && topology.degree_min >= 3,
        "{topology:?}"
    );
    assert!(
        topology.latency_edges > 0,
        "the two regions are 20ms apart: {topology:?}"
    );
    let txs: TransactionsOutput = result(&env, StageId::Transactions);
    assert_eq!((txs.started, txs.accounts_per_node), (8, 100), "{txs:?}");
    let blocks: BlocksOutput = result(&env, StageId::Blocks);
    assert_eq!(blocks.generated, 50, "{blocks:?}");
    assert!(blocks.synced, "{blocks:?}");
    let collected: CollectOutput = result(&env, StageId::Collect);
    assert_eq!(collected.logs, 8, "{collected:?}");
    let (since, until) = collected.window.expect("the blocks stage's window");
    assert!(since < blocks.started_at.unwrap() && until > blocks.finished_at.unwrap());
    // Every node logged every block.
    let logs = collected.run_dir.join("logs");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 8);
    for d in &dirs {
        let log = read_log(&d.join("conflux.log.gz"));
        let seen = inserted_blocks(&log);
        // Only the analysis lines came home, the block-event records included (logged as
        // soon as they are final, with the nodes still running).
        assert!(log.lines().all(|l| {
            cfxm::stages::runtime::ANALYSIS_PATTERNS
                .iter()
                .any(|p| l.contains(p))
        }));
        assert!(
            log.contains("Block events record complete."),
            "{}",
            d.display()
        );
        assert!(log.contains("new block received"), "{}", d.display());
        let missing: Vec<&String> = blocks
            .hashes
            .iter()
            .filter(|h| !seen.contains(*h))
            .collect();
        assert!(
            missing.is_empty(),
            "{} misses {} blocks",
            d.display(),
            missing.len()
        );
        assert!(d.join("metrics.log.gz").is_file());
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("127."),
            "{name}: logs are named <ip>-<slot>"
        );
    }
    assert!(collected.run_dir.join("hosts.json").is_file());
    assert!(collected.run_dir.join("config.toml").is_file());
    // Progress was reported with counts.
    let progress: Vec<String> = events
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            ApplyEventKind::Progress(p) => Some(p.message),
            _ => None,
        })
        .collect();
    assert!(
        progress.iter().any(|m| m == "nodes ready 8/8"),
        "{progress:?}"
    );
    assert!(progress.iter().any(|m| m == "blocks 50/50"), "{progress:?}");
    assert!(progress.iter().any(|m| m == "logs 8/8"), "{progress:?}");
    // The network outlives the run: every devnode still runs.
    assert_eq!(processes_under(&world.root).len(), 8);

    // The report stage analysed the collected logs: every block on every node, files written.
    let report: cfxm::stages::report::ReportOutput = result(&env, StageId::Report);
    assert!(
        report.table.contains("block broadcast latency (Receive/"),
        "{}",
        report.table
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.run_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["nodes"], 8);
    assert_eq!(
        json["coverage"]["blocks_complete"], 50,
        "{}",
        json["coverage"]
    );
    assert_eq!(json["coverage"]["blocks_incomplete"], 0);
    assert!(report.files.iter().any(|f| f.ends_with("report.txt")));

    let first_run = blocks.hashes.clone();

    // 2. Nothing changed: nothing runs (the nodes still run, as the live check finds).
    let plan = cfxm::stages::plan(&env, &skip_report).await.unwrap();
    assert!(plan.is_noop(), "{:#?}", summaries(&plan));
    drop(env);

    // 3. A new block count: blocks, collect (and report) on the same network, nothing else.
    let env = world.env(spec(tmp_spec.path(), 20));
    let plan = cfxm::stages::plan(&env, &skip_report).await.unwrap();
    insta::assert_debug_snapshot!("plan_after_new_block_count", summaries(&plan));
    // ... and an apply interrupted during `blocks` (Ctrl-C) resumes at `blocks`.
    let skip_collect = StageSelection::skipping([StageId::Collect, StageId::Report]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = Cancel::new();
    let (first, ()) = tokio::join!(
        cfxm::stages::apply(&env, &skip_collect, Arc::new(tx), cancel.clone()),
        async {
            while let Some(e) = rx.recv().await {
                if let ApplyEventKind::Progress(p) = e.kind
                    && p.message.starts_with("blocks 5/")
                {
                    cancel.cancel();
                }
            }
        }
    );
    let (plan, run) = first.unwrap();
    assert_eq!(plan.running(), [StageId::Blocks]);
    let blocks_run = run.get(StageId::Blocks).unwrap();
    assert!(matches!(
        blocks_run.outcome,
        Err(ref f) if matches!(f.error, cfxm::stages::StageError::Cancelled)
    ));
    let plan = cfxm::stages::plan(&env, &skip_collect).await.unwrap();
    assert_eq!(plan.running(), [StageId::Blocks], "{:#?}", summaries(&plan));
    assert_eq!(
        plan.get(StageId::Blocks).summary(),
        "blocks: run (failed last time: cancelled)"
    );
    apply(&env, &skip_collect).await;
    let blocks: BlocksOutput = result(&env, StageId::Blocks);
    assert_eq!(blocks.generated, 20);
    // The second run's logs hold its own 20 blocks, none of the first run's 50 (the window
    // starts a second early: blocks of the interrupted attempt just before may be in it).
    let (_, _, _) = apply(&env, &StageSelection::only([StageId::Collect])).await;
    let second: CollectOutput = result(&env, StageId::Collect);
    for d in std::fs::read_dir(second.run_dir.join("logs")).unwrap() {
        let log = read_log(&d.unwrap().path().join("conflux.log.gz"));
        let seen = inserted_blocks(&log);
        assert!(blocks.hashes.iter().all(|h| seen.contains(h)), "{seen:?}");
        assert!(first_run.iter().all(|h| !seen.contains(h)), "{seen:?}");
    }

    // 4. A devnode dies: its stage is lost and re-runs with everything after it.
    let slot = world.state.slot("i-local-1").unwrap();
    let pid: i32 = std::fs::read_to_string(slot.join("node1/pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plan = cfxm::stages::plan(&env, &skip_report).await.unwrap();
    assert_eq!(
        plan.get(StageId::Nodes).summary(),
        "nodes: run (1 of 8 nodes are not running)"
    );
    assert_eq!(world.state.runs().unwrap().len(), 2);

    // 5. Stopping what is left (destroy's job): seven stopped, one was already dead; after
    // that the finished run needs nothing, so nothing is to do again.
    let stopped = world.stop_all().await;
    assert_eq!(
        stopped,
        [
            "not-running",
            "stopped",
            "stopped",
            "stopped",
            "stopped",
            "stopped",
            "stopped",
            "stopped"
        ]
    );
    assert_eq!(processes_under(&world.root), Vec::<String>::new());
    let plan = cfxm::stages::plan(&env, &skip_report).await.unwrap();
    assert!(plan.is_noop(), "{:#?}", summaries(&plan));
}
