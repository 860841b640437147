//! `nodes`: the generated `conflux.toml` on every host, N nodes started per host, and each
//! node ready (original-tool.md §2.3–2.4).
//!
//! Per host, in parallel (bounded by `host_parallelism`): whatever an earlier run left is
//! stopped and removed, the config is written, the nodes are started ([`Runtime`]). Then each
//! node goes through the harness's readiness sequence, `test_sayHello` (retried until
//! `ready_timeout`) → `test_getNodeId` (the node id recovered from the signature) →
//! `debug_currentSyncPhase` until `NormalSyncPhase`. Nodes that fail are listed in the output
//! and left out of later stages; more than `nodes_budget` failures fail the stage.
//!
//! The nodes keep running after the run (`collect` takes their logs without stopping them);
//! `destroy` stops them, and so does this stage when it restarts them. Its live check
//! ([`Nodes::check`](super::Stage::check)) asks every host which nodes still run: all → holds;
//! none, after a `collect` → consumed (the finished run needs them no more; a new `blocks`
//! run restarts them); otherwise lost, and the stage re-runs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{ConfluxConfig, slot_ports};
use super::env::{InputContext, LiveContext, StageEnv, StageHost, StageOptions};
use super::plan::{Inputs, LastRun, Live};
use super::progress::Counter;
use super::rpc::{Endpoint, RpcError};
use super::runtime::Runtime;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::devnode::NodeId;
use crate::ssh::BoxFuture;
use crate::ssh::hosts::Host;
use crate::state::{JournalLog, StageStatus};

/// A node that came up, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The host's label (its instance id).
    pub host: String,
    pub slot: u32,
    /// `0x` + 128 hex digits.
    pub id: String,
}

/// A node that did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFailure {
    pub host: String,
    pub slot: u32,
    pub error: String,
}

/// The stage's outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesOutput {
    /// Slots started (Σ nodes_per_host).
    pub total: usize,
    /// Ready nodes, in host then slot order.
    pub nodes: Vec<NodeInfo>,
    pub failed: Vec<NodeFailure>,
}

/// A ready node, resolved against the hosts: what later stages talk to.
#[derive(Debug, Clone)]
pub struct LiveNode {
    /// Position among all slots of the experiment (host order, then slot): stable while the
    /// hosts are, so genesis account ranges stay disjoint even when some nodes failed.
    pub index: usize,
    /// Index into [`StageEnv::hosts`].
    pub host: usize,
    pub slot: u32,
    pub id: NodeId,
    pub rpc: Endpoint,
    /// `<ip>-<slot>`: the node's log directory name (the original's `nodes/<ip>-<i>/`).
    pub name: String,
}

impl LiveNode {
    /// Where `from` dials this node: its private address when both hosts are in the same
    /// provider and region and have one, else its public address; port `11000+10·slot`. A
    /// local host's private address is the emulator's VPC bookkeeping: its slot has one
    /// (loopback) address, the public one.
    pub fn p2p_addr(&self, this: &Host, from: &Host) -> String {
        let same_net = this.record.provider == from.record.provider
            && this.record.region == from.record.region
            && !this.is_local();
        let ip = match (same_net, this.record.private_ip, from.record.private_ip) {
            (true, Some(private), Some(_)) => private,
            _ => this.record.ip,
        };
        std::net::SocketAddr::new(ip, slot_ports(self.slot)[0]).to_string()
    }
}

/// The node's RPC endpoint: port `11002+10·slot` on its host, reached through the host's
/// transport (over SSH a forwarded stream to the host's loopback), so the port never needs
/// to be open to this machine.
pub fn endpoint(host: &StageHost, slot: u32) -> Endpoint {
    Endpoint::new(host.transport.clone(), slot_ports(slot)[2])
}

/// N: the nodes of the experiment, Σ `nodes_per_host` over the hosts (the original's rule).
pub fn node_count(hosts: &[Host]) -> u64 {
    hosts
        .iter()
        .map(|h| u64::from(h.record.nodes_per_host))
        .sum()
}

/// The config every node of this experiment runs with.
pub fn experiment_config(cx: &InputContext<'_>) -> Result<ConfluxConfig, StageError> {
    Ok(ConfluxConfig::for_spec(cx.spec, node_count(cx.hosts()?)))
}

/// The ready nodes of the last successful `nodes` run, resolved against `env.hosts`.
pub fn live_nodes(env: &StageEnv, stage: StageId) -> Result<Vec<LiveNode>, StageError> {
    let out: NodesOutput = env.outputs_of(stage, StageId::Nodes)?;
    let mut base = Vec::with_capacity(env.hosts.len());
    let mut next = 0usize;
    for h in env.hosts.iter() {
        base.push(next);
        next += h.host.record.nodes_per_host as usize;
    }
    out.nodes
        .iter()
        .map(|n| {
            let host = env
                .hosts
                .iter()
                .position(|h| h.host.label == n.host)
                .ok_or_else(|| StageError::BadRecord {
                    upstream: StageId::Nodes,
                    problem: format!("host `{}` is not among the hosts", n.host),
                })?;
            let id: NodeId = n.id.parse().map_err(|e| StageError::BadRecord {
                upstream: StageId::Nodes,
                problem: e,
            })?;
            let ip = env.hosts[host].host.record.ip;
            Ok(LiveNode {
                index: base[host] + n.slot as usize,
                host,
                slot: n.slot,
                id,
                rpc: endpoint(&env.hosts[host], n.slot),
                name: format!("{ip}-{}", n.slot),
            })
        })
        .collect()
}

/// The inputs part naming the hosts: what each stage that works per host depends on.
pub(crate) fn hosts_part(inputs: Inputs, hosts: &[Host]) -> Inputs {
    let rows: Vec<_> = hosts
        .iter()
        .map(|h| {
            let r = &h.record;
            (
                &h.label,
                r.ip,
                r.private_ip,
                &r.provider,
                &r.region,
                &r.zone,
                r.nodes_per_host,
                &r.ssh_user,
            )
        })
        .collect();
    let regions: std::collections::BTreeSet<&str> =
        hosts.iter().map(|h| h.record.region.as_str()).collect();
    let summary = format!(
        "{} host{}, {} node{}, {} region{}",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" },
        node_count(hosts),
        if node_count(hosts) == 1 { "" } else { "s" },
        regions.len(),
        if regions.len() == 1 { "" } else { "s" },
    );
    inputs.with_digest("hosts", rows, summary)
}

/// The `cfxm` binary local hosts run, absolute.
pub(crate) fn devnode_bin(options: &StageOptions) -> Result<PathBuf, StageError> {
    let bin = match &options.devnode_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| StageError::io("find", &PathBuf::from("cfxm"), e))?,
    };
    std::path::absolute(&bin).map_err(|e| StageError::io("resolve", &bin, e))
}

/// `nodes`: see the module docs.
pub struct Nodes;

impl Stage for Nodes {
    fn id(&self) -> StageId {
        StageId::Nodes
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        let config = experiment_config(cx)?;
        let hosts = cx.hosts()?;
        let runtimes: std::collections::BTreeSet<&str> = hosts
            .iter()
            .map(|h| if h.is_local() { "devnode" } else { "docker" })
            .collect();
        let mut inputs = Inputs::new()
            .with("config", config.render())
            .with("runtime", runtimes);
        if hosts.iter().any(|h| !h.is_local()) {
            inputs = inputs.with("node.image", &cx.spec.node.image);
        }
        Ok(hosts_part(inputs, hosts))
    }

    fn check<'a>(
        &'a self,
        cx: &'a LiveContext<'a>,
        journal: &'a JournalLog,
    ) -> BoxFuture<'a, Result<Live, StageError>> {
        Box::pin(async move {
            let Some(last) = LastRun::of(journal, StageId::Nodes) else {
                return Ok(Live::Holds);
            };
            let out: NodesOutput = serde_json::from_value(last.result.clone()).unwrap_or_default();
            let bin = devnode_bin(cx.options)?;
            let mut checks = Vec::new();
            for h in cx.hosts {
                let slots: Vec<u32> = out
                    .nodes
                    .iter()
                    .filter(|n| n.host == h.host.label)
                    .map(|n| n.slot)
                    .collect();
                checks.push(running_slots(
                    cx.options,
                    h,
                    Runtime::for_host(&h.host, &bin),
                    slots,
                ));
            }
            let statuses = bounded(checks, cx.options.host_parallelism).await;
            let (mut running, mut total) = (0, 0);
            for s in statuses {
                let (r, t) = s?;
                running += r;
                total += t;
            }
            let collected_after =
                journal
                    .latest_stage(&StageId::Collect.name())
                    .is_some_and(|(serial, r)| {
                        serial > last.serial && r.status != StageStatus::Running
                    });
            Ok(if running == total {
                Live::Holds
            } else if running == 0 && collected_after {
                Live::Consumed {
                    why: "the nodes stopped after the last run was collected".into(),
                }
            } else {
                Live::Lost {
                    why: format!("{} of {total} nodes are not running", total - running),
                }
            })
        })
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(run(env, step))
    }
}

/// How many of `slots` run on `h`, and how many were asked about.
async fn running_slots(
    options: &StageOptions,
    h: &StageHost,
    runtime: Runtime,
    slots: Vec<u32>,
) -> Result<(usize, usize), StageError> {
    if slots.is_empty() {
        return Ok((0, 0));
    }
    let text = h
        .transport
        .run(
            &runtime.status_command(&slots),
            Some(options.command_timeout),
        )
        .await?;
    let text = String::from_utf8_lossy(&text);
    let running = text.lines().filter(|l| l.ends_with(" running")).count();
    Ok((running, slots.len()))
}

async fn run(env: &StageEnv, step: &StepContext) -> Result<Value, Failure> {
    let hosts = env.host_list();
    if hosts.is_empty() {
        return Err(StageError::Input {
            stage: StageId::Nodes,
            problem: "there are no hosts to start nodes on".into(),
            help: "check the spec's regions and the inventory (`cfxm show`)".into(),
        }
        .into());
    }
    let cx = env.input_context(&hosts);
    let config = experiment_config(&cx)?;
    let bin = devnode_bin(&env.options)?;
    let secrets = if hosts.iter().any(Host::is_local) {
        Some(genesis_secrets(env, &config).await?)
    } else {
        None
    };
    let total = node_count(&hosts) as usize;

    // Start, per host.
    step.progress(format!("starting {total} nodes on {} hosts", hosts.len()));
    let mut starts = Vec::new();
    for (i, h) in env.hosts.iter().enumerate() {
        let runtime = Runtime::for_host(&h.host, &bin);
        let (config, secrets) = (&config, secrets.as_deref());
        starts.push(async move {
            let r = start_host(env, h, &runtime, config, secrets).await;
            (i, r.map_err(|e| e.to_string()))
        });
    }
    let started: Vec<(usize, Result<(), String>)> =
        bounded(starts, env.options.host_parallelism).await;
    if step.is_cancelled() {
        return Err(StageError::Cancelled.into());
    }

    // Ready, per node.
    let mut failed = Vec::new();
    let mut candidates = Vec::new();
    for (i, result) in started {
        let h = &env.hosts[i].host;
        for slot in 0..h.record.nodes_per_host {
            match &result {
                Ok(()) => candidates.push((i, slot)),
                Err(e) => failed.push(NodeFailure {
                    host: h.label.clone(),
                    slot,
                    error: format!("could not start: {e}"),
                }),
            }
        }
    }
    candidates.sort();
    let counter = Counter::new(step, "nodes ready", total as u64);
    for _ in &failed {
        counter.tick(false);
    }
    let mut readies = Vec::new();
    for (i, slot) in candidates {
        let h = &env.hosts[i];
        let ep = endpoint(h, slot);
        let runtime = Runtime::for_host(&h.host, &bin);
        let counter = &counter;
        readies.push(async move {
            let r = ready(env, &ep, h, &runtime, slot).await;
            counter.tick(r.is_ok());
            ((i, slot), r)
        });
    }
    let results: Vec<((usize, u32), Result<NodeId, StageError>)> =
        bounded(readies, env.options.rpc_parallelism).await;
    let mut nodes = Vec::new();
    for ((i, slot), r) in results {
        let host = env.hosts[i].host.label.clone();
        match r {
            Ok(id) => nodes.push((
                i,
                NodeInfo {
                    host,
                    slot,
                    id: id.to_string(),
                },
            )),
            Err(e) => {
                let said = node_output(env, &env.hosts[i], slot).await;
                failed.push(NodeFailure {
                    host,
                    slot,
                    error: match said {
                        Some(out) => format!("{e}; the node said: {out}"),
                        None => e.to_string(),
                    },
                })
            }
        }
    }
    nodes.sort_by_key(|(i, n)| (*i, n.slot));
    failed.sort_by(|a, b| (&a.host, a.slot).cmp(&(&b.host, b.slot)));
    let out = NodesOutput {
        total,
        nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        failed,
    };
    let value = serde_json::to_value(&out).expect("serializes");
    let allowed = env.options.nodes_budget.allowed(total);
    if out.failed.len() > allowed {
        let first = &out.failed[0];
        return Err(Failure::with_outputs(
            StageError::OverBudget {
                stage: StageId::Nodes,
                what: "nodes",
                failed: out.failed.len(),
                total,
                allowed,
                first: format!("{} node {}: {}", first.host, first.slot, first.error),
            },
            value,
        ));
    }
    Ok(value)
}

/// Clears what an earlier run left on `h`, writes the configs and starts its nodes.
async fn start_host(
    env: &StageEnv,
    h: &StageHost,
    runtime: &Runtime,
    config: &ConfluxConfig,
    secrets: Option<&std::path::Path>,
) -> Result<(), StageError> {
    let t = &h.transport;
    let timeout = Some(env.options.command_timeout);
    let stop_s = env.options.stop_timeout.as_secs().max(1);
    t.run(&runtime.clear_command(stop_s), timeout).await?;
    let slots: Vec<u32> = (0..h.host.record.nodes_per_host).collect();
    match runtime {
        Runtime::Docker { .. } => {
            let text = config.render();
            t.put(
                crate::ssh::PutSource::Bytes(text.as_bytes()),
                &runtime.config_path(0),
                0o644,
            )
            .await?;
        }
        Runtime::Devnode { .. } => {
            if let Some(s) = secrets {
                t.put(crate::ssh::PutSource::File(s), "genesis_secrets.txt", 0o644)
                    .await?;
            }
            for &slot in &slots {
                let text = config.for_devnode(h.host.record.ip, slot).render();
                t.put(
                    crate::ssh::PutSource::Bytes(text.as_bytes()),
                    &runtime.config_path(slot),
                    0o644,
                )
                .await?;
            }
        }
    }
    t.run(&runtime.start_command(&slots), timeout).await?;
    Ok(())
}

/// The last lines a devnode wrote to its stdout/stderr (why it exited, e.g. a port in use);
/// `None` for docker hosts or when there is nothing.
async fn node_output(env: &StageEnv, h: &StageHost, slot: u32) -> Option<String> {
    if !h.host.is_local() {
        return None;
    }
    let cmd = format!("tail -n 3 node{slot}/stdout.txt");
    let out = h
        .transport
        .run(&cmd, Some(env.options.command_timeout))
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// The readiness sequence of one node; its node id.
async fn ready(
    env: &StageEnv,
    ep: &Endpoint,
    host: &StageHost,
    runtime: &Runtime,
    slot: u32,
) -> Result<NodeId, StageError> {
    let deadline = tokio::time::Instant::now() + env.options.ready_timeout;
    let pause = Duration::from_millis(250);
    // While the node does not answer, look every 2 s whether it still runs at all: a node that
    // exited (a port in use, a bad config) fails now, not after the whole timeout.
    let mut next_look = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match env.rpc.say_hello(ep).await {
            Ok(()) => break,
            // Forwarding refused, login refused: no amount of waiting for the node helps.
            Err(e) if e.is_permanent() => return Err(e.into()),
            Err(e) if tokio::time::Instant::now() + pause >= deadline => return Err(e.into()),
            Err(_) => {
                if tokio::time::Instant::now() >= next_look {
                    next_look += Duration::from_secs(2);
                    let status = host
                        .transport
                        .run(
                            &runtime.status_command(&[slot]),
                            Some(env.options.command_timeout),
                        )
                        .await;
                    if let Ok(out) = status
                        && String::from_utf8_lossy(&out)
                            .trim_end()
                            .ends_with(" stopped")
                    {
                        return Err(StageError::NodeExited {
                            node: format!("{} node {slot}", host.host.label),
                        });
                    }
                }
                tokio::time::sleep(pause).await
            }
        }
    }
    let id = env.rpc.node_id(ep, rand::random::<u32>()).await?;
    // The harness polls every 0.1 s for up to 10 s.
    let phase_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let phase = env.rpc.sync_phase(ep).await?;
        if phase == "NormalSyncPhase" {
            return Ok(id);
        }
        if tokio::time::Instant::now() >= phase_deadline {
            return Err(RpcError::Reply {
                endpoint: ep.clone(),
                method: "debug_currentSyncPhase".into(),
                problem: format!("still `{phase}` after 10s"),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The genesis secrets file every local node reads: N · `txgen_account_count` secrets
/// (the image of the cloud nodes ships its own), written once per count under the state dir.
async fn genesis_secrets(env: &StageEnv, config: &ConfluxConfig) -> Result<PathBuf, StageError> {
    let per_node = config.int("txgen_account_count").unwrap_or(100).max(1) as u64;
    let count = (node_count(&env.host_list()) * per_node).clamp(1, 100_000) as usize;
    let path = env
        .state
        .dir()
        .join("devnode")
        .join(format!("genesis_secrets-{count}.txt"));
    if !path.exists() {
        let p = path.clone();
        tokio::task::spawn_blocking(move || crate::devnode::write_genesis_secrets(&p, count))
            .await
            .expect("writing secrets does not panic")
            .map_err(|e| StageError::io("write", &path, e))?;
    }
    Ok(path)
}

/// Stops every node on `host` with the right runtime: what the local cloud's destroy runs in
/// each slot before removing it.
pub async fn stop_all(
    host: &StageHost,
    options: &StageOptions,
) -> Result<Vec<(u32, String)>, StageError> {
    let runtime = Runtime::for_host(&host.host, &devnode_bin(options)?);
    stop_nodes(
        host,
        &runtime,
        None,
        options.stop_timeout,
        options.command_timeout,
    )
    .await
}

/// Stops nodes on one host (SIGTERM / `docker stop`, then a kill after `timeout`): those in
/// `slots`, or with `None` every node an earlier run left there. One `(slot, outcome)` per
/// slot: `stopped`, `killed` or `not-running`. The local cloud's destroy calls this with `None`
/// before it removes a slot.
pub async fn stop_nodes(
    host: &StageHost,
    runtime: &Runtime,
    slots: Option<&[u32]>,
    timeout: Duration,
    command_timeout: Duration,
) -> Result<Vec<(u32, String)>, StageError> {
    let cmd = runtime.stop_command(slots, timeout.as_secs().max(1));
    // Every slot may take the full grace time.
    let n = slots
        .map_or(host.host.record.nodes_per_host as usize, <[u32]>::len)
        .max(1);
    let limit = command_timeout + timeout * n as u32;
    let text = host.transport.run(&cmd, Some(limit)).await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let (slot, what) = l.split_once(' ')?;
            Some((slot.parse().ok()?, what.to_owned()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::hosts_json::HostRecord;

    fn host(label: &str, provider: &str, region: &str, ip: &str, private: Option<&str>) -> Host {
        Host {
            label: label.into(),
            record: HostRecord {
                ip: ip.parse().unwrap(),
                nodes_per_host: 2,
                ssh_user: "root".into(),
                ssh_key_path: "k".into(),
                provider: provider.into(),
                region: region.into(),
                zone: format!("{region}a"),
                instance_id: label.into(),
                private_ip: private.map(|p| p.parse().unwrap()),
            },
            origin: crate::ssh::hosts::HostOrigin::Managed {
                inventory: "/x/hosts.json".into(),
            },
            ssh_port: 22,
            key: "/k".into(),
        }
    }

    #[test]
    fn peers_in_one_provider_and_region_dial_the_private_address() {
        let a = host("a", "aliyun", "r1", "47.0.0.1", Some("10.0.0.1"));
        let b = host("b", "aliyun", "r1", "47.0.0.2", Some("10.0.0.2"));
        let c = host("c", "aliyun", "r2", "47.0.0.3", Some("10.1.0.3"));
        let d = host("d", "aws", "r1", "47.0.0.4", Some("10.0.0.4"));
        let n = LiveNode {
            index: 0,
            host: 0,
            slot: 3,
            id: NodeId::default(),
            rpc: endpoint(
                &StageHost {
                    transport: Arc::new(crate::ssh::LocalTransport::new("a", "/nonexistent")),
                    host: a.clone(),
                },
                3,
            ),
            name: "47.0.0.1-3".into(),
        };
        assert_eq!(n.p2p_addr(&a, &b), "10.0.0.1:11030");
        assert_eq!(n.p2p_addr(&a, &c), "47.0.0.1:11030");
        assert_eq!(n.p2p_addr(&a, &d), "47.0.0.1:11030");
        assert_eq!(n.rpc.port(), 11032);
        assert_eq!(n.rpc.host(), "a (local /nonexistent)");
        let la = host("la", "local", "r1", "127.16.0.2", Some("10.0.0.1"));
        let lb = host("lb", "local", "r1", "127.16.0.3", Some("10.0.0.2"));
        assert_eq!(n.p2p_addr(&la, &lb), "127.16.0.2:11030");
    }

    #[tokio::test]
    async fn a_node_that_exits_fails_fast_with_what_it_said() {
        use crate::apply::{Cancel, Silent};
        let tmp = tempfile::tempdir().unwrap();
        // A "cfxm" that fails like a devnode whose port is taken.
        let bin = tmp.path().join("cfxm");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho 'error: cannot bind the P2P port'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let spec = crate::spec::load_str(
            "name: t\nowner: o\ncloud:\n  local:\n    regions: [{ name: r1, nodes: 2 }]\n",
            "t.yaml",
            &tmp.path().join("t.yaml"),
        )
        .unwrap();
        let state = crate::state::StateDir::new(tmp.path().join("state"))
            .spec(&spec.name)
            .unwrap();
        let lock = state.lock("test").unwrap();
        let journal = state.journal(&lock).unwrap();
        let mut h = host("i-1", "local", "r1", "127.0.0.1", None);
        h.record.ip = format!(
            "127.{}.{}.9",
            rand::random::<u8>() / 2 + 1,
            rand::random::<u8>()
        )
        .parse()
        .unwrap();
        let slot = state.slot("i-1").unwrap();
        std::fs::create_dir_all(&slot).unwrap();
        let hosts = vec![StageHost {
            transport: Arc::new(
                crate::ssh::LocalTransport::new("i-1", &slot).with_address(h.record.ip),
            ),
            host: h,
        }];
        let options = crate::stages::StageOptions {
            devnode_bin: Some(bin),
            ..Default::default()
        };
        let env = StageEnv::new(
            Arc::new(spec),
            state,
            Arc::new(lock),
            journal,
            hosts,
            options,
        );
        let step = StepContext::new(Default::default(), Arc::new(Silent), Cancel::new());
        let started = std::time::Instant::now();
        let run = crate::stages::run_stage(&Nodes, &env, &step).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let failure = run.outcome.unwrap_err();
        let out: NodesOutput = serde_json::from_value(failure.outputs.unwrap()).unwrap();
        assert_eq!(out.failed.len(), 2);
        assert!(
            out.failed[0].error.contains("exited before it answered")
                && out.failed[0]
                    .error
                    .contains("the node said: error: cannot bind the P2P port"),
            "{}",
            out.failed[0].error
        );
        assert!(matches!(
            failure.error,
            StageError::OverBudget { failed: 2, .. }
        ));
    }

    #[test]
    fn the_hosts_part_summarises_and_changes_with_the_hosts() {
        let hosts = vec![
            host("a", "local", "r1", "127.0.0.2", None),
            host("b", "local", "r2", "127.0.0.3", None),
        ];
        let i = hosts_part(Inputs::new(), &hosts);
        assert_eq!(
            i.get("hosts").unwrap()["summary"],
            "2 hosts, 4 nodes, 2 regions"
        );
        let fewer = hosts_part(Inputs::new(), &hosts[..1]);
        assert_eq!(fewer.changed_parts(&i), ["hosts"]);
    }
}
