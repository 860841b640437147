//! `blocks`: blocks on random nodes at exponential intervals, then the sync check
//! (original-tool.md §2.8–2.9).
//!
//! The schedule is drawn up front from the seed: gaps exponential with mean
//! `blocks.mean_interval`, each block on a node chosen uniformly among those not scheduled in
//! the last `blocks.min_node_gap`. Where the original raised "No node available", the block is
//! moved to the moment the first node becomes free ([`BlockSchedule::rescheduled`]). Each block
//! is `test_generateOneBlock(10000000, blocks.max_bytes)` fired at its instant on its own task,
//! so a slow node never delays the next block. Failed calls count against `blocks_budget`
//! (the original stopped at the first); past it, generation stops, and `collect` still runs.
//!
//! After the last block: outstanding calls get `blocks_drain_timeout`, then every node's
//! `cfx_getBestBlockHash` is polled every max(1 s, N/250 s) until all agree or `sync_timeout`
//! passes; a split is reported in the output (how many nodes hold each hash), as the original
//! warned, not failed. `test_getGoodPut` of one node is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::env::{InputContext, StageEnv};
use super::nodes::{LiveNode, live_nodes};
use super::plan::Inputs;
use super::progress::Counter;
use super::topology::SplitMix64;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::BoxFuture;

/// Transactions a block may pack, as the harness asks (`test_generateOneBlock`'s first
/// argument).
pub const MAX_TXS_PER_BLOCK: u64 = 10_000_000;

/// When each block is generated and where.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSchedule {
    /// (offset from the start, node index), in time order.
    pub blocks: Vec<(Duration, usize)>,
    /// Blocks moved later because every node had one within `min_node_gap`.
    pub rescheduled: usize,
}

impl BlockSchedule {
    /// The schedule of `count` blocks over `nodes` nodes.
    pub fn draw(
        count: usize,
        mean: Duration,
        min_node_gap: Duration,
        nodes: usize,
        seed: u64,
    ) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0xb10c_5eed);
        let mut blocks = Vec::with_capacity(count);
        let mut rescheduled = 0;
        if nodes == 0 {
            return BlockSchedule {
                blocks,
                rescheduled,
            };
        }
        let mut last: Vec<Option<Duration>> = vec![None; nodes];
        let free_at = |l: Option<Duration>| l.map_or(Duration::ZERO, |t| t + min_node_gap);
        let mut t = Duration::ZERO;
        for _ in 0..count {
            // Exponential gap: −mean · ln(1 − U).
            t += mean.mul_f64(-(1.0 - rng.unit()).ln());
            // A few random picks find a free node fast when most are; otherwise scan.
            let mut pick = None;
            for _ in 0..32 {
                let n = rng.below(nodes as u64) as usize;
                if free_at(last[n]) <= t {
                    pick = Some(n);
                    break;
                }
            }
            let pick = pick.unwrap_or_else(|| {
                let free: Vec<usize> = (0..nodes).filter(|&n| free_at(last[n]) <= t).collect();
                if free.is_empty() {
                    // Nobody is free: wait for the first node that will be.
                    rescheduled += 1;
                    t = (0..nodes)
                        .map(|n| free_at(last[n]))
                        .min()
                        .expect("nodes > 0");
                    let free: Vec<usize> = (0..nodes).filter(|&n| free_at(last[n]) <= t).collect();
                    free[rng.below(free.len() as u64) as usize]
                } else {
                    free[rng.below(free.len() as u64) as usize]
                }
            });
            last[pick] = Some(t);
            blocks.push((t, pick));
        }
        BlockSchedule {
            blocks,
            rescheduled,
        }
    }
}

/// One failed block call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFailure {
    /// The block's number in the schedule.
    pub block: usize,
    pub node: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlocksOutput {
    pub planned: usize,
    pub generated: usize,
    /// The hashes returned, in schedule order.
    pub hashes: Vec<String>,
    pub failed: Vec<BlockFailure>,
    /// Blocks moved because no node was free.
    pub rescheduled: usize,
    /// Blocks fired more than 10 ms after their planned instant.
    pub late: usize,
    /// Wall time of the generation, seconds.
    pub seconds: f64,
    /// Whether every node ended on the same best block within the sync timeout.
    pub synced: bool,
    /// Nodes per best block hash at the end of the sync check.
    pub best_blocks: BTreeMap<String, usize>,
    /// `test_getGoodPut` of one node.
    pub goodput: Option<String>,
    /// When generation started and when the stage ended (the sync check included): the time
    /// window of this run's lines in the node logs, which `collect` pulls.
    #[serde(default)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `blocks`: see the module docs.
pub struct Blocks;

impl Stage for Blocks {
    fn id(&self) -> StageId {
        StageId::Blocks
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        let b = &cx.spec.experiment.blocks;
        let d = |d: Duration| humantime::format_duration(d).to_string();
        Ok(Inputs::new()
            .with("blocks.count", b.count)
            .with("blocks.mean_interval", d(b.mean_interval))
            .with("blocks.min_node_gap", d(b.min_node_gap))
            .with("blocks.max_bytes", b.max_bytes)
            .with("topology.seed", cx.spec.experiment.topology.seed))
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
    let nodes = live_nodes(env, StageId::Blocks)?;
    if nodes.is_empty() {
        return Err(StageError::Input {
            stage: StageId::Blocks,
            problem: "no node is ready to generate blocks".into(),
            help: "run the `nodes` stage first".into(),
        }
        .into());
    }
    let b = &env.spec.experiment.blocks;
    let schedule = BlockSchedule::draw(
        b.count as usize,
        b.mean_interval,
        b.min_node_gap,
        nodes.len(),
        env.spec.experiment.topology.seed,
    );
    let planned = schedule.blocks.len();
    let allowed = env.options.blocks_budget.allowed(planned);
    let max_bytes = u64::from(b.max_bytes);
    let start = Instant::now();
    let end = start + schedule.blocks.last().map_or(Duration::ZERO, |(t, _)| *t);
    let counter = Counter::new(step, "blocks", planned as u64).ending_at(end);

    let mut out = BlocksOutput {
        planned,
        rescheduled: schedule.rescheduled,
        started_at: Some(chrono::Utc::now()),
        ..BlocksOutput::default()
    };
    let mut hashes: Vec<Option<String>> = vec![None; planned];
    let mut calls: JoinSet<(usize, usize, Result<String, super::RpcError>)> = JoinSet::new();
    let mut record = |(k, node, r): (usize, usize, Result<String, super::RpcError>),
                      out: &mut BlocksOutput| {
        counter.tick(r.is_ok());
        match r {
            Ok(h) => hashes[k] = Some(h),
            Err(e) => out.failed.push(BlockFailure {
                block: k,
                node: nodes[node].name.clone(),
                error: e.to_string(),
            }),
        }
    };
    let mut stopped_early = None;
    for (k, &(at, node)) in schedule.blocks.iter().enumerate() {
        while let Some(done) = calls.try_join_next() {
            record(done.expect("block calls do not panic"), &mut out);
        }
        if out.failed.len() > allowed {
            stopped_early = Some(StageError::OverBudget {
                stage: StageId::Blocks,
                what: "blocks",
                failed: out.failed.len(),
                total: planned,
                allowed,
                first: format!("{}: {}", out.failed[0].node, out.failed[0].error),
            });
            break;
        }
        let due = start + at;
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = step.cancelled() => {
                stopped_early = Some(StageError::Cancelled);
                break;
            }
        }
        if Instant::now().saturating_duration_since(due) > Duration::from_millis(10) {
            out.late += 1;
        }
        let (rpc, ep) = (env.rpc.clone(), nodes[node].rpc.clone());
        calls.spawn(async move {
            let r = rpc
                .generate_one_block(&ep, MAX_TXS_PER_BLOCK, max_bytes)
                .await;
            (k, node, r)
        });
    }
    // Outstanding calls get a bounded wait; whatever is still out then is abandoned.
    let drain_until = Instant::now() + env.options.blocks_drain_timeout;
    while let Ok(Some(done)) = tokio::time::timeout_at(drain_until, calls.join_next()).await {
        record(done.expect("block calls do not panic"), &mut out);
    }
    let abandoned = calls.len();
    calls.abort_all();
    out.seconds = start.elapsed().as_secs_f64();
    out.hashes = hashes.into_iter().flatten().collect();
    out.generated = out.hashes.len();
    out.failed.sort_by_key(|f| f.block);
    out.finished_at = Some(chrono::Utc::now());

    if let Some(e) = stopped_early {
        return Err(Failure::with_outputs(
            e,
            serde_json::to_value(&out).expect("serializes"),
        ));
    }
    if abandoned > 0 {
        step.progress(format!(
            "{abandoned} block calls still out after the drain timeout"
        ));
    }

    // Everyone on the same best block.
    let done = format!("blocks {}/{planned}", out.generated);
    let (synced, best) = sync_check(env, step, &nodes, &done).await;
    out.synced = synced;
    out.best_blocks = best;
    out.goodput = env.rpc.goodput(&nodes[0].rpc).await.ok();
    out.finished_at = Some(chrono::Utc::now());
    let value = serde_json::to_value(&out).expect("serializes");
    if out.failed.len() > allowed {
        let f = &out.failed[0];
        return Err(Failure::with_outputs(
            StageError::OverBudget {
                stage: StageId::Blocks,
                what: "blocks",
                failed: out.failed.len(),
                total: planned,
                allowed,
                first: format!("{}: {}", f.node, f.error),
            },
            value,
        ));
    }
    Ok(value)
}

/// Polls every node's best block until all agree or the sync timeout passes; returns whether
/// they agreed and how many nodes hold each hash (`unreachable` for failed calls). Progress
/// lines start with `done` (what generation did).
async fn sync_check(
    env: &StageEnv,
    step: &StepContext,
    nodes: &[LiveNode],
    done: &str,
) -> (bool, BTreeMap<String, usize>) {
    let every = Duration::from_secs(1).max(Duration::from_millis(4 * nodes.len() as u64));
    let deadline = Instant::now() + env.options.sync_timeout;
    loop {
        let mut calls = Vec::new();
        for n in nodes {
            calls.push(async move { env.rpc.best_block_hash(&n.rpc).await });
        }
        let mut split: BTreeMap<String, usize> = BTreeMap::new();
        for r in bounded(calls, env.options.rpc_parallelism).await {
            *split
                .entry(r.unwrap_or_else(|_| "unreachable".into()))
                .or_default() += 1;
        }
        let agreed = split.len() == 1 && !split.contains_key("unreachable");
        let top = split.values().copied().max().unwrap_or(0);
        step.progress_count(
            top as u64,
            nodes.len() as u64,
            format!("{done}; synced {top}/{} on one best block", nodes.len()),
        );
        if agreed || Instant::now() + every > deadline || step.is_cancelled() {
            return (agreed, split);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_exponential_seeded_and_respects_the_node_gap() {
        let mean = Duration::from_millis(175);
        let gap = Duration::from_millis(100);
        let s = BlockSchedule::draw(2000, mean, gap, 50, 42);
        assert_eq!(s, BlockSchedule::draw(2000, mean, gap, 50, 42));
        assert_eq!(s.blocks.len(), 2000);
        let total = s.blocks.last().unwrap().0.as_secs_f64();
        // 2000 × 175 ms ≈ 350 s (the original's figure), within sampling noise.
        assert!((320.0..380.0).contains(&total), "{total}");
        let mut last: BTreeMap<usize, Duration> = BTreeMap::new();
        for w in s.blocks.windows(2) {
            assert!(w[0].0 <= w[1].0);
        }
        for &(t, n) in &s.blocks {
            if let Some(prev) = last.insert(n, t) {
                assert!(t >= prev + gap, "node {n} twice within the gap");
            }
        }
    }

    #[test]
    fn with_too_few_nodes_blocks_are_moved_instead_of_failing() {
        // One node, 100 ms gap, 10 ms mean interval: the original raised "No node available".
        let gap = Duration::from_millis(100);
        let s = BlockSchedule::draw(50, Duration::from_millis(10), gap, 1, 7);
        assert_eq!(s.blocks.len(), 50);
        assert!(s.rescheduled > 30, "{}", s.rescheduled);
        for w in s.blocks.windows(2) {
            assert!(w[1].0 >= w[0].0 + gap);
        }
        assert!(BlockSchedule::draw(5, gap, gap, 0, 1).blocks.is_empty());
    }
}
