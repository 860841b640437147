//! `topology`: who connects to whom (original-tool.md §2.5), fixed by the seed.
//!
//! The graph: a ring (node i – node i+1 mod n), then, for every node in index order, random
//! distinct peers until its degree reaches `peers` (edges added by earlier nodes count). Every
//! edge is dialled from both ends with `test_addNode`, to the peer's private address when both
//! hosts share a provider and region. Each node is then polled with `test_getPeerInfo` until
//! all its neighbours show with a finished handshake, for at most `connect_timeout`; a node
//! passes with at least `peers − 2` of them (the original's rule). With a latency matrix, each
//! edge between regions gets `test_addLatency` from both ends. Failures count against
//! `topology_budget` instead of the original's abort past 10 nodes.
//!
//! The random numbers come from SplitMix64, written out here, so a seed gives the same graph
//! in every version of cfxm.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env::{InputContext, StageEnv};
use super::nodes::{LiveNode, live_nodes};
use super::plan::Inputs;
use super::progress::Counter;
use super::rpc::RpcError;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::BoxFuture;

/// A small seeded generator (SplitMix64): stable across versions, unlike `rand`'s `StdRng`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The undirected edges (a < b) of the ring + random graph over `n` nodes with degree at least
/// `peers` (capped at n − 1).
pub fn ring_and_random(n: usize, peers: usize, seed: u64) -> BTreeSet<(usize, usize)> {
    let mut edges = BTreeSet::new();
    if n < 2 {
        return edges;
    }
    let peers = peers.min(n - 1);
    let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut add = |a: usize, b: usize, adj: &mut Vec<BTreeSet<usize>>| {
        if a != b && adj[a].insert(b) {
            adj[b].insert(a);
            edges.insert((a.min(b), a.max(b)));
        }
    };
    for i in 0..n {
        add(i, (i + 1) % n, &mut adj);
    }
    let mut rng = SplitMix64::new(seed);
    for i in 0..n {
        while adj[i].len() < peers {
            let j = rng.below(n as u64) as usize;
            add(i, j, &mut adj);
        }
    }
    edges
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopologyOutput {
    pub nodes: usize,
    pub edges: usize,
    pub degree_min: usize,
    pub degree_mean: f64,
    pub degree_max: usize,
    /// Edges given an inter-region latency.
    pub latency_edges: usize,
    /// Nodes with fewer connected peers than required, with what they lacked.
    pub failed: Vec<(String, String)>,
}

/// `topology`: see the module docs.
pub struct Topology;

impl Stage for Topology {
    fn id(&self) -> StageId {
        StageId::Topology
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        let t = &cx.spec.experiment.topology;
        let latency = cx.spec.experiment.latency.as_ref().map(|m| {
            let mut pairs: BTreeMap<String, String> = m
                .pairs
                .iter()
                .map(|((a, b), d)| {
                    (
                        format!("{a}/{b}"),
                        humantime::format_duration(*d).to_string(),
                    )
                })
                .collect();
            if let Some(d) = m.default {
                pairs.insert("default".into(), humantime::format_duration(d).to_string());
            }
            pairs
        });
        Ok(Inputs::new()
            .with("topology.peers", t.peers)
            .with("topology.seed", t.seed)
            .with("latency", latency))
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
    let nodes = live_nodes(env, StageId::Topology)?;
    let n = nodes.len();
    let t = &env.spec.experiment.topology;
    let peers = (t.peers as usize).min(n.saturating_sub(1));
    let edges = ring_and_random(n, peers, t.seed);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &edges {
        adj[a].push(b);
        adj[b].push(a);
    }

    // Dial every edge from both ends (and add latency across regions).
    let region =
        |x: &LiveNode| crate::spec::RegionId::new(env.hosts[x.host].host.record.region.clone());
    let latency_of = |a: &LiveNode, b: &LiveNode| -> Option<Duration> {
        env.spec
            .experiment
            .latency
            .as_ref()?
            .between(&region(a), &region(b))
    };
    let dials_total = edges.len() as u64 * 2;
    let counter = Counter::new(step, "peers dialled", dials_total);
    let mut dials = Vec::new();
    for &(a, b) in &edges {
        for (from, to) in [(a, b), (b, a)] {
            let (f, t) = (&nodes[from], &nodes[to]);
            let addr = t.p2p_addr(&env.hosts[t.host].host, &env.hosts[f.host].host);
            let latency = latency_of(f, t);
            let counter = &counter;
            dials.push(async move {
                let mut r = env.rpc.add_node(&f.rpc, &t.id, &addr).await;
                if let (Ok(()), Some(l)) = (&r, latency) {
                    r = env.rpc.add_latency(&f.rpc, &t.id, l).await;
                }
                counter.tick(r.is_ok());
                (from, r)
            });
        }
    }
    let latency_edges = edges
        .iter()
        .filter(|(a, b)| latency_of(&nodes[*a], &nodes[*b]).is_some())
        .count();
    let mut dial_errors: BTreeMap<usize, RpcError> = BTreeMap::new();
    for (from, r) in bounded(dials, env.options.rpc_parallelism).await {
        if let Err(e) = r {
            dial_errors.entry(from).or_insert(e);
        }
    }
    if step.is_cancelled() {
        return Err(StageError::Cancelled.into());
    }

    // Confirm: every node sees its neighbours with a finished handshake.
    let need = |i: usize| adj[i].len().min(peers.saturating_sub(2).max(1));
    let counter = Counter::new(step, "nodes connected", n as u64);
    let mut confirms = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let want: BTreeSet<_> = adj[i].iter().map(|j| nodes[*j].id).collect();
        let counter = &counter;
        let need = need(i);
        confirms.push(async move {
            let deadline = tokio::time::Instant::now() + env.options.connect_timeout;
            let mut last: Result<usize, RpcError>;
            loop {
                last = env
                    .rpc
                    .connected_peers(&node.rpc)
                    .await
                    .map(|got| got.iter().filter(|id| want.contains(id)).count());
                let all = matches!(last, Ok(c) if c == want.len());
                if all || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let ok = matches!(last, Ok(c) if c >= need);
            counter.tick(ok);
            (i, need, want.len(), last)
        });
    }
    let mut failed = Vec::new();
    let mut results = bounded(confirms, env.options.rpc_parallelism).await;
    results.sort_by_key(|r| r.0);
    for (i, need, wanted, r) in results {
        let why = match r {
            Ok(c) if c >= need => continue,
            Ok(c) => format!(
                "{c} of its {wanted} peers connected (needs {need}){}",
                dial_errors
                    .get(&i)
                    .map(|e| format!("; a dial failed: {e}"))
                    .unwrap_or_default()
            ),
            Err(e) => e.to_string(),
        };
        failed.push((nodes[i].name.clone(), why));
    }
    let degrees: Vec<usize> = adj.iter().map(Vec::len).collect();
    let out = TopologyOutput {
        nodes: n,
        edges: edges.len(),
        degree_min: degrees.iter().copied().min().unwrap_or(0),
        degree_mean: if n == 0 {
            0.0
        } else {
            (2 * edges.len()) as f64 / n as f64
        },
        degree_max: degrees.iter().copied().max().unwrap_or(0),
        latency_edges,
        failed,
    };
    let value = serde_json::to_value(&out).expect("serializes");
    let allowed = env.options.topology_budget.allowed(n);
    if out.failed.len() > allowed {
        let (node, why) = &out.failed[0];
        return Err(Failure::with_outputs(
            StageError::OverBudget {
                stage: StageId::Topology,
                what: "nodes",
                failed: out.failed.len(),
                total: n,
                allowed,
                first: format!("{node}: {why}"),
            },
            value,
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_is_a_ring_plus_random_peers_and_reproducible() {
        for (n, peers) in [(2, 8), (3, 8), (10, 8), (50, 8), (1000, 8), (12, 4)] {
            let e = ring_and_random(n, peers, 42);
            assert_eq!(e, ring_and_random(n, peers, 42), "reproducible");
            let mut deg = vec![0usize; n];
            for &(a, b) in &e {
                assert!(a < b);
                deg[a] += 1;
                deg[b] += 1;
            }
            for (i, d) in deg.iter().enumerate() {
                let ring = (i.min((i + 1) % n), i.max((i + 1) % n));
                assert!(e.contains(&ring), "ring edge {ring:?} (n={n})");
                assert!(*d >= peers.min(n - 1), "node {i} degree {d} (n={n})");
            }
        }
        assert_ne!(ring_and_random(50, 8, 1), ring_and_random(50, 8, 2));
        assert!(ring_and_random(1, 8, 1).is_empty());
    }

    #[test]
    fn degrees_match_the_originals_figures() {
        // conflux-node.md §4.1: mean about 9.6–9.8 for N = 50–1000 with 8 peers; N = 10: 8.4.
        let mean = |n: usize| 2.0 * ring_and_random(n, 8, 7).len() as f64 / n as f64;
        assert!((9.0..10.5).contains(&mean(1000)), "{}", mean(1000));
        assert!((8.0..9.2).contains(&mean(10)), "{}", mean(10));
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // Reference values of SplitMix64 seeded with 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220a8397b1dcdaf);
        assert_eq!(r.next_u64(), 0x6e789e6aa1b965f4);
        let u = SplitMix64::new(5).unit();
        assert!((0.0..1.0).contains(&u));
    }
}
