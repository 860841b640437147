//! Scanning every node log in parallel and merging the per-node summaries into one run.
//!
//! Worker threads take files from a shared index and scan them; the calling thread merges each
//! finished node into [`RunData`] as it arrives, so at most `threads` node summaries (each
//! O(blocks)) exist besides the merged data. The merged data is O(blocks × nodes): one 16-byte
//! [`Obs`] per (block, node that logged it), plus 4 bytes per event stage where records exist
//! (the values only, grouped by block and stage, since rows need nothing else), plus the
//! tracked sampled transactions (thinned by hash on very large runs, see
//! [`AnalyzeOptions::tx_keep_per_256`](super::AnalyzeOptions)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use super::input::{self, NodeLog};
use super::line::{H256, H256Map};
use super::scan::{self, Matcher, NodeScan, STAGES, TxFilter};
use super::{AnalyzeError, AnalyzeOptions, Progress};

/// Marks an event a node did not log.
pub(crate) const NONE: i32 = i32::MIN;

/// One node's times for one block, in microseconds relative to the block's header timestamp
/// (whole seconds). Relative µs fit in 4 bytes (±35 minutes) and are exact to well under the
/// 1 ms the report resolves; a time outside that range is clamped and counted as a warning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obs {
    pub node: u32,
    pub receive: i32,
    pub sync: i32,
    pub cons: i32,
}

#[derive(Debug)]
pub(crate) struct BlockData {
    pub hash: H256,
    pub height: u64,
    pub timestamp: i64,
    pub referees: u32,
    pub txs: u32,
    pub size: u64,
    pub obs: Vec<Obs>,
    /// Event-stage values (ms, or raw gauges) of the nodes that logged a record, by stage id
    /// ([`RunData::stage_names`]); a stage no node reported has an empty list.
    pub stage_values: Vec<Vec<f32>>,
}

#[derive(Debug, Default)]
pub(crate) struct TxData {
    /// Each node's earliest sample time (ns).
    pub received: Vec<i64>,
    pub packed: Vec<i64>,
    pub ready: Vec<i64>,
}

/// Per-node facts the report needs besides the block observations.
#[derive(Debug)]
pub(crate) struct NodeData {
    pub log: NodeLog,
    pub group: String,
    pub bytes: u64,
    pub matched_lines: u64,
    pub malformed_lines: u64,
    pub problems: Vec<String>,
    pub truncated_tail: bool,
    /// Read error, if the log could not be read to its end.
    pub error: Option<String>,
    /// The sync/consensus gap samples' Avg, P50, P90, P99, Max (the original's per-node stats);
    /// `None` if the node never logged "Statistics".
    pub gap: Option<[f64; 5]>,
    pub duplicates: u64,
}

#[derive(Debug, Default)]
pub(crate) struct RunData {
    pub nodes: Vec<NodeData>,
    pub blocks: Vec<BlockData>,
    index: H256Map<u32>,
    pub txs: H256Map<TxData>,
    pub by_block_ratio: Vec<f32>,
    /// Per node and packed tx: its packing time − that node's earliest sample of it (s).
    pub tx_wait: Vec<f64>,
    /// Times that did not fit the relative-µs window.
    pub clamped: u64,
    /// Event-stage names by id: the 8 standard stages, then custom ones as first seen.
    pub stage_names: Vec<Arc<str>>,
    stage_ids: HashMap<Arc<str>, usize>,
    pub threads: usize,
    pub elapsed_ms: u64,
}

/// Scans all logs and merges them.
pub(crate) fn collect(
    logs: Vec<NodeLog>,
    groups: Vec<String>,
    opts: &AnalyzeOptions,
) -> Result<RunData, AnalyzeError> {
    let started = Instant::now();
    let matcher = Matcher::new();
    let tx_filter = TxFilter {
        keep_per_256: opts
            .tx_keep_per_256
            .unwrap_or_else(|| default_tx_keep(logs.len())),
    };
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, logs.len().max(1));
    let total_disk: u64 = logs.iter().map(|l| l.disk_bytes).sum();

    // Work queue: the next file index to scan. Shared by the workers; bounds nothing by itself.
    let next = AtomicUsize::new(0);
    // Finished node summaries on their way to the merger. Its capacity bounds how many scanned
    // but unmerged summaries exist at once (memory), independently of the number of files.
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, std::io::Result<NodeScan>)>(threads);

    let mut run = RunData {
        threads,
        stage_names: STAGES.iter().map(|s| Arc::from(*s)).collect(),
        ..RunData::default()
    };
    let mut results: Vec<Option<(NodeScan, Option<String>)>> = Vec::new();
    results.resize_with(logs.len(), || None);

    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (next, logs, matcher) = (&next, &logs, &matcher);
            s.spawn(move || {
                // This worker's read buffer, reused for every file it scans.
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(log) = logs.get(i) else { break };
                    let result = input::open(log)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .map(|r| scan::scan(r, matcher, tx_filter, &mut buf));
                    if done_tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut disk_done = 0;
        for (done, (i, result)) in done_rx.into_iter().enumerate() {
            disk_done += logs[i].disk_bytes;
            let (scan, error) = match result {
                Ok(mut scan) => {
                    let error = scan.read_error.take();
                    (scan, error)
                }
                Err(e) => (NodeScan::default(), Some(e.to_string())),
            };
            results[i] = Some((scan, error));
            // Merge in file order as soon as the prefix is complete, so merged data (and float
            // sums) do not depend on thread timing, while at most `threads` summaries wait.
            while let Some(slot) = results.get_mut(run.nodes.len()) {
                let Some((scan, error)) = slot.take() else {
                    break;
                };
                let n = run.nodes.len();
                run.merge(logs[n].clone(), groups[n].clone(), scan, error);
            }
            if let Some(progress) = &opts.progress {
                progress(Progress {
                    files_done: done + 1,
                    files_total: logs.len(),
                    disk_bytes_done: disk_done,
                    disk_bytes_total: total_disk,
                });
            }
        }
    });
    run.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(run)
}

/// Keep every sampled transaction up to 1,000 nodes; above that, a hash-chosen share that keeps
/// memory near the 1,000-node level (a statistical sample of a 1/128 sample is still unbiased).
fn default_tx_keep(nodes: usize) -> u16 {
    if nodes <= 1000 {
        256
    } else {
        ((256 * 1000) / nodes).max(1) as u16
    }
}

impl RunData {
    /// Keeps the earliest `n` blocks by header timestamp (ties by height, then hash), in their
    /// current order.
    pub(crate) fn keep_earliest_blocks(&mut self, n: usize) {
        if self.blocks.len() <= n {
            return;
        }
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_by_key(|&i| {
            let b = &self.blocks[i];
            (b.timestamp, b.height, b.hash)
        });
        let mut keep = vec![false; self.blocks.len()];
        for &i in &order[..n] {
            keep[i] = true;
        }
        let mut i = 0;
        self.blocks.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.index = self
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.hash, i as u32))
            .collect();
    }

    fn merge(&mut self, log: NodeLog, group: String, scan: NodeScan, error: Option<String>) {
        let node = self.nodes.len() as u32;
        let mut duplicates = 0u64;
        // HashMap iteration order is random; sort so block order (first seen) is reproducible.
        let mut blocks: Vec<_> = scan.blocks.into_iter().collect();
        blocks.sort_unstable_by_key(|(hash, nb)| (nb.header.height, *hash));
        for (hash, nb) in blocks {
            duplicates += u64::from(nb.duplicates);
            let idx = *self.index.entry(hash).or_insert_with(|| {
                self.blocks.push(BlockData {
                    hash,
                    height: nb.header.height,
                    timestamp: nb.header.timestamp,
                    referees: nb.header.referees,
                    txs: 0,
                    size: 0,
                    obs: Vec::new(),
                    stage_values: Vec::new(),
                });
                (self.blocks.len() - 1) as u32
            });
            let b = &mut self.blocks[idx as usize];
            // The original keeps the first non-zero tx count and size any node reported.
            if b.txs == 0 {
                b.txs = nb.header.txs.unwrap_or(0);
            }
            if b.size == 0 {
                b.size = nb.header.size.unwrap_or(0);
            }
            let base = b.timestamp.saturating_mul(1_000_000_000);
            let mut clamped = 0;
            let mut rel = |t: Option<i64>| -> i32 {
                let Some(t) = t else { return NONE };
                let us =
                    (t - base).div_euclid(1000) + i64::from((t - base).rem_euclid(1000) >= 500);
                if us <= i64::from(NONE) || us > i64::from(i32::MAX) {
                    clamped += 1;
                    us.clamp(i64::from(NONE) + 1, i64::from(i32::MAX)) as i32
                } else {
                    us as i32
                }
            };
            b.obs.push(Obs {
                node,
                receive: rel(nb.receive),
                sync: rel(nb.sync),
                cons: rel(nb.cons),
            });
            self.clamped += clamped;
            if let Some(st) = nb.stages {
                let stage_ids = &mut self.stage_ids;
                let stage_names = &mut self.stage_names;
                let mut put = |id: usize, v: f32| {
                    if b.stage_values.len() <= id {
                        b.stage_values.resize_with(id + 1, Vec::new);
                    }
                    b.stage_values[id].push(v);
                };
                for (si, v) in st.standard.iter().enumerate() {
                    if !v.is_nan() {
                        put(si, *v);
                    }
                }
                for (name, v) in &st.custom {
                    let id = *stage_ids.entry(name.clone()).or_insert_with(|| {
                        stage_names.push(name.clone());
                        stage_names.len() - 1
                    });
                    put(id, *v);
                }
            }
        }
        for (hash, tx) in scan.txs {
            let e = self.txs.entry(hash).or_default();
            e.received.push(tx.received);
            if let Some(p) = tx.packed {
                e.packed.push(p);
                self.tx_wait.push((p - tx.received) as f64 / 1e9);
            }
            if let Some(r) = tx.ready {
                e.ready.push(r);
            }
        }
        self.by_block_ratio.extend(scan.by_block_ratio);
        let gap = (!scan.gaps.is_empty()).then(|| {
            let mut g: Vec<f64> = scan.gaps.iter().map(|x| *x as f64).collect();
            super::stats::sort_f64(&mut g);
            let pick = |q: f64| g[((g.len() - 1) as f64 * q) as usize];
            [
                super::stats::mean2(&g).unwrap_or(f64::NAN),
                pick(0.5),
                pick(0.9),
                pick(0.99),
                g[g.len() - 1],
            ]
        });
        self.nodes.push(NodeData {
            log,
            group,
            bytes: scan.bytes,
            matched_lines: scan.matched_lines,
            malformed_lines: scan.malformed_lines,
            problems: scan.problems,
            truncated_tail: scan.truncated_tail,
            error,
            gap,
            duplicates,
        });
    }
}
