//! From merged observations to the report's numbers: both latency methods, the original's other
//! rows, coverage, groups, bias and the plot series.
//!
//! **Headline (log time).** A block's generator is the node that inserted it into its graph
//! without having received it, earliest if several claim it; its "new block inserted into graph"
//! log time is time zero. Receive/Sync/Cons at node n = n's log time of that event − time zero.
//! The generator contributes Sync = 0 and no Receive (N−1 samples, as in the original).
//!
//! **Original (header timestamp).** As the mapper: log time rounded to 0.01 s, minus the header's
//! whole-second timestamp, rounded to 0.01 s; per-block node quantiles by lower nearest rank;
//! across blocks by linear interpolation. Unlike the original, blocks missing on some nodes stay
//! in (the percentiles use the nodes that logged them) and coverage says how many there are.

use std::collections::BTreeMap;

use super::collect::{BlockData, NONE, RunData};
use super::line::hex_h256;
use super::report::*;
use super::scan::STAGES;
use super::stats::{NodeQuantile, ORIGINAL_PERCENTILES, QuantileRule, Summary, sort_f64};

/// Stages the original counts only when ≥ 90 % of nodes report them (pivot-chain-only events).
const PIVOT_STAGES: [usize; 3] = [5, 6, 7];

/// Reads one event time of an observation.
type EventOf = fn(&super::collect::Obs) -> i32;

/// The three block events, with their row names.
const EVENTS: [(&str, EventOf); 3] = [
    ("Receive", |o| o.receive),
    ("Sync", |o| o.sync),
    ("Cons", |o| o.cons),
];

/// Samples kept per CDF series.
const CDF_POINTS: usize = 400;

pub(crate) fn build(run: &RunData, run_dir: &str, percentiles: &[f64]) -> Report {
    let n_nodes = run.nodes.len();
    let mut warnings = Vec::new();

    // Generator and time zero of every block (µs relative to its header timestamp).
    let generators: Vec<Option<(u32, i32)>> = run.blocks.iter().map(generator_of).collect();
    let first_gen_abs = run
        .blocks
        .iter()
        .zip(&generators)
        .filter_map(|(b, g)| g.map(|(_, t)| abs_us(b, t)))
        .min();

    // ---- Headline: log-time latencies, per block, per event kind.
    let node_qs = NodeQuantile::with_percentiles(percentiles);
    let mut headline_rows = Vec::new();
    let mut pooled: [Vec<f64>; 3] = Default::default();
    let mut group_pooled: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut per_block_receive: Vec<Vec<f64>> = vec![Vec::new(); run.blocks.len()];
    let mut headline_blocks = 0u64;
    for (k, (kind, get)) in EVENTS.iter().enumerate() {
        let mut per_q: Vec<Vec<f64>> = vec![Vec::new(); node_qs.len()];
        for (bi, (b, g)) in run.blocks.iter().zip(&generators).enumerate() {
            let Some((_, t0)) = g else { continue };
            if k == 0 {
                headline_blocks += 1;
            }
            let mut lat: Vec<f64> = b
                .obs
                .iter()
                .filter(|o| get(o) != NONE)
                .map(|o| f64::from(get(o) - t0) / 1e6)
                .collect();
            if k == 0 {
                for (o, l) in b.obs.iter().filter(|o| o.receive != NONE).zip(&lat) {
                    group_pooled
                        .entry(run.nodes[o.node as usize].group.as_str())
                        .or_default()
                        .push(*l);
                }
            }
            sort_f64(&mut lat);
            for (qi, q) in node_qs.iter().enumerate() {
                if let Some(v) = q.pick(&lat, QuantileRule::Linear) {
                    per_q[qi].push(v);
                }
            }
            pooled[k].extend_from_slice(&lat);
            if k == 0 {
                per_block_receive[bi] = lat;
            }
        }
        if k > 0 {
            headline_rows.push(blank());
        }
        for (q, values) in node_qs.iter().zip(per_q) {
            headline_rows.push(TableRow {
                name: format!("block broadcast latency ({kind}/{})", q.label()),
                format: RowFormat::Fixed2,
                summary: Some(Summary::of(values, percentiles)),
            });
        }
    }
    let headline = LatencyTable {
        method: "generator-log-time".into(),
        percentiles: percentiles.to_vec(),
        blocks: headline_blocks,
        rows: headline_rows,
    };

    // ---- Bias of the header method.
    let mut bias_block = Vec::new();
    let mut bias_receive = Vec::new();
    for (b, g) in run.blocks.iter().zip(&generators) {
        let Some((_, t0)) = g else { continue };
        bias_block.push(f64::from(*t0) / 1e6);
        for o in b.obs.iter().filter(|o| o.receive != NONE) {
            let precise = f64::from(o.receive - t0) / 1e6;
            bias_receive.push(header_latency(b, o.receive) - precise);
        }
    }
    // At the original's fixed percentiles, whatever the headline uses: the text quotes P50.
    let bias = Bias {
        per_block: Summary::of(bias_block, &ORIGINAL_PERCENTILES),
        receive: Summary::of(bias_receive, &ORIGINAL_PERCENTILES),
        percentiles: ORIGINAL_PERCENTILES.to_vec(),
    };

    // ---- Coverage.
    let mut node_cov: Vec<[u64; 4]> = vec![[0; 4]; n_nodes];
    let mut blocks_cov = Vec::with_capacity(run.blocks.len());
    let (mut complete, mut incomplete, mut without_gen) = (0u64, 0u64, 0u64);
    for ((b, g), recv) in run.blocks.iter().zip(&generators).zip(&per_block_receive) {
        let count = |f: fn(&super::collect::Obs) -> i32| {
            b.obs.iter().filter(|o| f(o) != NONE).count() as u64
        };
        for o in &b.obs {
            let c = &mut node_cov[o.node as usize];
            c[0] += u64::from(o.sync != NONE);
            c[1] += u64::from(o.receive != NONE);
            c[2] += u64::from(o.cons != NONE);
        }
        if let Some((gn, _)) = g {
            node_cov[*gn as usize][3] += 1;
        } else {
            without_gen += 1;
        }
        let synced = count(|o| o.sync);
        if synced == n_nodes as u64 {
            complete += 1;
        } else {
            incomplete += 1;
        }
        let q = |p: f64| super::stats::quantile(recv, p, QuantileRule::Linear);
        blocks_cov.push(BlockCoverage {
            hash: hex_h256(&b.hash),
            height: b.height,
            header_timestamp: b.timestamp,
            txs: u64::from(b.txs),
            size: b.size,
            generator: g.map(|(n, _)| run.nodes[n as usize].log.name.clone()),
            generated_s: g
                .zip(first_gen_abs)
                .map(|((_, t), first)| (abs_us(b, t) - first) as f64 / 1e6),
            nodes_received: count(|o| o.receive),
            nodes_synced: synced,
            nodes_cons: count(|o| o.cons),
            receive_p50: q(0.5),
            receive_p90: q(0.9),
            receive_max: recv.last().copied(),
        });
    }
    let nodes_cov: Vec<NodeCoverage> = run
        .nodes
        .iter()
        .zip(&node_cov)
        .map(|(n, c)| NodeCoverage {
            node: n.log.name.clone(),
            group: n.group.clone(),
            compression: n.log.compression,
            blocks_synced: c[0],
            blocks_received: c[1],
            blocks_cons: c[2],
            blocks_generated: c[3],
            bytes: n.bytes,
            matched_lines: n.matched_lines,
            malformed_lines: n.malformed_lines,
            unreadable: n.error.is_some(),
        })
        .collect();

    // ---- Groups.
    let mut group_nodes: BTreeMap<&str, u64> = BTreeMap::new();
    for n in &run.nodes {
        *group_nodes.entry(n.group.as_str()).or_default() += 1;
    }
    let groups = group_nodes
        .into_iter()
        .map(|(g, nodes)| GroupLatency {
            group: g.to_string(),
            nodes,
            receive: Summary::of(group_pooled.remove(g).unwrap_or_default(), percentiles),
        })
        .collect();

    let distributions = Distributions {
        receive: cdf(std::mem::take(&mut pooled[0])),
        sync: cdf(std::mem::take(&mut pooled[1])),
        cons: cdf(std::mem::take(&mut pooled[2])),
    };

    // ---- Warnings.
    // Latency compares two machines' clocks; a receive "before" generation means skew.
    let mut early: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for (b, g) in run.blocks.iter().zip(&generators) {
        let Some((_, t0)) = g else { continue };
        for o in b
            .obs
            .iter()
            .filter(|o| o.receive != NONE && o.receive < *t0)
        {
            let e = early
                .entry(run.nodes[o.node as usize].log.name.as_str())
                .or_insert((0, 0.0));
            e.0 += 1;
            e.1 = e.1.max(f64::from(t0 - o.receive) / 1e6);
        }
    }
    if !early.is_empty() {
        let mut worst: Vec<_> = early.iter().collect();
        worst.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        let names: Vec<String> = worst
            .iter()
            .take(5)
            .map(|(n, (c, s))| format!("{n} ({c} blocks, up to {s:.3} s early)"))
            .collect();
        warnings.push(format!(
            "{} node(s) logged receiving blocks before their generator made them: their clocks are skewed, and the skew adds to their latencies ({}); check NTP on the hosts",
            early.len(),
            names.join(", ")
        ));
    }
    if incomplete > 0 {
        warnings.push(format!(
            "{incomplete} of {} blocks were not inserted by every node; their percentiles are over the nodes that logged them (the original tool drops such blocks)",
            run.blocks.len()
        ));
    }
    if without_gen > 0 {
        warnings.push(format!(
            "{without_gen} blocks have no generator line (no node inserted them without receiving them); the headline leaves them out"
        ));
    }
    for n in &run.nodes {
        if let Some(e) = &n.error {
            warnings.push(format!(
                "{}: log unreadable past byte {}: {e}",
                n.log.path.display(),
                n.bytes
            ));
        }
        if n.malformed_lines > 0 {
            warnings.push(format!(
                "{}: {} malformed line(s) skipped ({})",
                n.log.path.display(),
                n.malformed_lines,
                n.problems.join("; ")
            ));
        }
        if n.truncated_tail {
            warnings.push(format!(
                "{}: the last line is cut short (log not flushed?)",
                n.log.path.display()
            ));
        }
    }
    let duplicates: u64 = run.nodes.iter().map(|n| n.duplicates).sum();
    if duplicates > 0 {
        warnings.push(format!(
            "{duplicates} block event line(s) were logged more than once on a node; the earliest is used"
        ));
    }
    if run.clamped > 0 {
        warnings.push(format!(
            "{} block event time(s) lie more than 35 minutes from the block's header timestamp and were clamped",
            run.clamped
        ));
    }

    let input = InputStats {
        files: n_nodes as u64,
        disk_bytes: run.nodes.iter().map(|n| n.log.disk_bytes).sum(),
        bytes: run.nodes.iter().map(|n| n.bytes).sum(),
        matched_lines: run.nodes.iter().map(|n| n.matched_lines).sum(),
        malformed_lines: run.nodes.iter().map(|n| n.malformed_lines).sum(),
        threads: run.threads as u64,
        elapsed_ms: run.elapsed_ms,
    };

    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: format!("cfxm {}", env!("CARGO_PKG_VERSION")),
        run_dir: run_dir.to_string(),
        nodes: n_nodes as u64,
        headline,
        original: original(run),
        bias,
        coverage: Coverage {
            blocks_seen: run.blocks.len() as u64,
            blocks_complete: complete,
            blocks_incomplete: incomplete,
            blocks_without_generator: without_gen,
            blocks: blocks_cov,
            nodes: nodes_cov,
        },
        groups,
        distributions,
        input,
        warnings,
    }
}

/// (generator node, its sync time): the earliest sync among nodes that did not receive it.
fn generator_of(b: &BlockData) -> Option<(u32, i32)> {
    b.obs
        .iter()
        .filter(|o| o.sync != NONE && o.receive == NONE)
        .min_by_key(|o| (o.sync, o.node))
        .map(|o| (o.node, o.sync))
}

/// Absolute µs since the epoch of a block-relative time.
fn abs_us(b: &BlockData, rel: i32) -> i64 {
    b.timestamp * 1_000_000 + i64::from(rel)
}

/// The mapper's latency: `round(round(log time, 2) − header timestamp, 2)` seconds.
fn header_latency(_b: &BlockData, rel_us: i32) -> f64 {
    // log time − header ts is exactly the relative time; rounding the absolute log time to 0.01 s
    // equals rounding the relative one, since the header timestamp is whole seconds.
    let t = f64::from(rel_us) / 1e6;
    ((t * 100.0).round() / 100.0 * 100.0).round() / 100.0
}

fn blank() -> TableRow {
    TableRow {
        name: String::new(),
        format: RowFormat::Blank,
        summary: None,
    }
}

/// Evenly spaced points of the empirical CDF.
fn cdf(mut values: Vec<f64>) -> Vec<[f64; 2]> {
    if values.is_empty() {
        return Vec::new();
    }
    sort_f64(&mut values);
    let n = values.len();
    let step = (n as f64 / CDF_POINTS as f64).max(1.0);
    let mut out = Vec::with_capacity(CDF_POINTS + 2);
    let mut i = 0.0;
    while (i as usize) < n {
        let k = i as usize;
        out.push([round6(values[k]), (k + 1) as f64 / n as f64]);
        i += step;
    }
    if out.last().map(|p| p[1]) != Some(1.0) {
        out.push([round6(values[n - 1]), 1.0]);
    }
    out
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The original tool's figures and table (conflux-node.md §3.4).
fn original(run: &RunData) -> OriginalReport {
    let n_nodes = run.nodes.len();
    let pct = &ORIGINAL_PERCENTILES;
    let qs = NodeQuantile::original();
    let threshold = (0.9 * n_nodes as f64).floor() as usize;
    let mut rows = Vec::new();
    let row = |name: String, format, values: Vec<f64>| TableRow {
        name,
        format,
        summary: Some(Summary::of(values, pct)),
    };
    // Per-block node quantiles by lower rank, pushed per q.
    let push_block = |per_q: &mut Vec<Vec<f64>>, mut samples: Vec<f64>| {
        sort_f64(&mut samples);
        for (qi, q) in qs.iter().enumerate() {
            if let Some(v) = q.pick(&samples, QuantileRule::LowerRank) {
                per_q[qi].push(v);
            }
        }
    };

    // 1. Block broadcast latency, header method.
    for (kind, get) in EVENTS {
        let mut per_q = vec![Vec::new(); qs.len()];
        for b in &run.blocks {
            let s: Vec<f64> = b
                .obs
                .iter()
                .filter(|o| get(o) != NONE)
                .map(|o| header_latency(b, get(o)))
                .collect();
            if !s.is_empty() {
                push_block(&mut per_q, s);
            }
        }
        for (q, v) in qs.iter().zip(per_q) {
            rows.push(row(
                format!("block broadcast latency ({kind}/{})", q.label()),
                RowFormat::Fixed2,
                v,
            ));
        }
        rows.push(blank());
    }

    // 2. Event stages; 3. custom stages and gauges (ids past the standard 8, sorted by name).
    let values_of = |b: &BlockData, id: usize| -> Vec<f64> {
        b.stage_values
            .get(id)
            .map(|v| v.iter().map(|x| f64::from(*x)).collect())
            .unwrap_or_default()
    };
    for (si, stage) in STAGES.iter().enumerate() {
        let mut per_q = vec![Vec::new(); qs.len()];
        for b in &run.blocks {
            let s = values_of(b, si);
            if s.is_empty() || (PIVOT_STAGES.contains(&si) && s.len() < threshold) {
                continue;
            }
            push_block(&mut per_q, s);
        }
        for (q, v) in qs.iter().zip(per_q) {
            rows.push(row(
                format!("block event elapsed ({stage}/{})", q.label()),
                RowFormat::Fixed2,
                v,
            ));
        }
        rows.push(blank());
    }
    let mut custom: Vec<(usize, &str)> = run
        .stage_names
        .iter()
        .enumerate()
        .skip(STAGES.len())
        .map(|(id, name)| (id, &**name))
        .collect();
    custom.sort_by_key(|(_, name)| *name);
    for (id, name) in custom {
        let mut per_q = vec![Vec::new(); qs.len()];
        for b in &run.blocks {
            let s = values_of(b, id);
            if !s.is_empty() && s.len() >= threshold {
                push_block(&mut per_q, s);
            }
        }
        for (q, v) in qs.iter().zip(per_q) {
            rows.push(row(
                format!("custom block event elapsed ({name}/{})", q.label()),
                RowFormat::Fixed2,
                v,
            ));
        }
        rows.push(blank());
    }

    // 4. Transactions.
    let mut removed = 0u64;
    let mut unpacked = 0u64;
    let mut min_packed = Vec::new();
    let mut min_ready = Vec::new();
    let mut slowest: Option<(f64, [u8; 32])> = None;
    let mut bcast = vec![Vec::new(); qs.len()];
    let mut packed_q = vec![Vec::new(); qs.len()];
    let mut tx_hashes: Vec<&[u8; 32]> = run.txs.keys().collect();
    tx_hashes.sort_unstable();
    for h in tx_hashes {
        let tx = &run.txs[h];
        if tx.received.len() != n_nodes {
            removed += 1;
        }
        let min_recv = tx.received.iter().copied().min().unwrap_or(0);
        let secs = |t: i64| (t - min_recv) as f64 / 1e9;
        if tx.received.len() == n_nodes {
            push_block(&mut bcast, tx.received.iter().map(|t| secs(*t)).collect());
        }
        if tx.packed.is_empty() {
            unpacked += 1;
            continue;
        }
        push_block(&mut packed_q, tx.packed.iter().map(|t| secs(*t)).collect());
        let lat = secs(*tx.packed.iter().min().expect("non-empty"));
        min_packed.push(lat);
        if slowest.is_none_or(|(best, _)| lat > best) {
            slowest = Some((lat, *h));
        }
        if let Some(r) = tx.ready.iter().min() {
            min_ready.push(secs(*r));
        }
    }
    if bcast.first().is_some_and(|v| !v.is_empty()) {
        for (q, v) in qs.iter().zip(bcast) {
            rows.push(row(
                format!("tx broadcast latency ({})", q.label()),
                RowFormat::Fixed2,
                v,
            ));
        }
        rows.push(blank());
        for (q, v) in qs.iter().zip(packed_q) {
            rows.push(row(
                format!("tx packed to block latency ({})", q.label()),
                RowFormat::Fixed2,
                v,
            ));
        }
        rows.push(blank());
        rows.push(row(
            "min tx packed to block latency".into(),
            RowFormat::Fixed2,
            min_packed,
        ));
        rows.push(row(
            "min tx to ready pool latency".into(),
            RowFormat::Fixed2,
            min_ready,
        ));
        rows.push(row(
            "by_block_ratio".into(),
            RowFormat::Fixed2,
            run.by_block_ratio.iter().map(|r| f64::from(*r)).collect(),
        ));
        rows.push(row(
            // The original's spelling, kept so old parsers of the table still match.
            "Tx wait to be packed elasped time".into(),
            RowFormat::Fixed2,
            run.tx_wait.clone(),
        ));
    }

    // 5. Block scalars.
    let mut stamps: Vec<i64> = run.blocks.iter().map(|b| b.timestamp).collect();
    stamps.sort_unstable();
    let with_txs = run.blocks.iter().filter(|b| b.txs > 0).map(|b| b.timestamp);
    let duration = match (with_txs.clone().min(), with_txs.max()) {
        (Some(lo), Some(hi)) => (hi - lo).max(0),
        _ => 0,
    };
    let tx_sum: u64 = run.blocks.iter().map(|b| u64::from(b.txs)).sum();
    let scalar = |name: &str, f: fn(&BlockData) -> f64| {
        row(
            name.into(),
            RowFormat::IntegerOrFixed2,
            run.blocks.iter().map(f).collect(),
        )
    };
    rows.push(scalar("block txs", |b| f64::from(b.txs)));
    rows.push(scalar("block size", |b| b.size as f64));
    rows.push(scalar("block referees", |b| f64::from(b.referees)));
    rows.push(row(
        "block generation interval".into(),
        RowFormat::Fixed2,
        stamps.windows(2).map(|w| (w[1] - w[0]) as f64).collect(),
    ));

    // 6. Node sync/cons gap.
    for (i, label) in ["Avg", "P50", "P90", "P99", "Max"].iter().enumerate() {
        rows.push(row(
            format!("node sync/cons gap ({label})"),
            RowFormat::IntegerOrFixed2,
            run.nodes
                .iter()
                .filter_map(|n| n.gap.map(|g| g[i]))
                .collect(),
        ));
    }

    OriginalReport {
        nodes: n_nodes as u64,
        blocks: run.blocks.len() as u64,
        removed_txs: removed,
        unpacked_txs: unpacked,
        total_txs: run.txs.len() as u64,
        txs_generated: tx_sum,
        duration_s: duration as f64,
        throughput: (duration > 0).then(|| tx_sum as f64 / duration as f64),
        slowest_packed_tx: slowest.map(|(_, h)| hex_h256(&h)),
        table: LatencyTable {
            method: "header-timestamp".into(),
            percentiles: pct.to_vec(),
            blocks: run.blocks.len() as u64,
            rows,
        },
    }
}
