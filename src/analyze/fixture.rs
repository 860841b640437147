//! Synthetic runs with known ground truth, for the analyzer's tests and benchmark.
//!
//! [`write_run`] lays out `RUN_DIR/logs/<ip>-0/conflux.log[.gz|.zst]` for N nodes as a massive run
//! would leave them, with the node's exact line formats (conflux-node.md §3.2–3.3): the log4rs
//! prefix with nanosecond timestamps, "new block received" (preceded by "transaction received by
//! block"), "new block inserted into graph", "insert new block into consensus" with full
//! `BlockHeader` Debug text, "Block events record complete" records, 5-second "Statistics" lines,
//! "Sampled transaction" lines, and unrelated DEBUG noise. Blocks travel a seeded random topology
//! (a ring plus random peers) whose per-link delays are known; a block reaches each node after the
//! shortest-path delay from its generator. [`Truth`] holds every time the logs encode.
//!
//! The generator is deterministic in its seed and uses its own small PRNG, so truths do not move
//! when a dependency changes its random streams.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::input::{Compression, compress};

/// What to generate.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    pub nodes: usize,
    pub blocks: usize,
    pub seed: u64,
    /// Random peers per node besides its ring neighbours.
    pub peers: usize,
    /// Per-link one-way delay, uniform in this range (ms).
    pub link_delay_ms: (f64, f64),
    /// Extra delay on links between nodes of different regions (ms).
    pub inter_region_ms: f64,
    /// Regions assigned round-robin to nodes; also written to `hosts.json` when not empty.
    pub regions: Vec<String>,
    /// Mean of the exponential gap between blocks (ms).
    pub mean_interval_ms: f64,
    /// Unix time (ns) of the first block.
    pub start_ns: i64,
    /// Unrelated DEBUG lines per node per block.
    pub noise_lines_per_block: usize,
    /// Sampled transactions per block.
    pub sampled_txs_per_block: usize,
    pub compression: Compression,
    /// (node, block) pairs whose lines the node never logs (the block never reached it). Dropping
    /// a generator's pair removes the block's generator line.
    pub missing: Vec<(usize, usize)>,
    /// (node, ms): that node's clock is off by this much; its log times shift, the truth does not.
    pub clock_skew_ms: Vec<(usize, f64)>,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        FixtureSpec {
            nodes: 8,
            blocks: 20,
            seed: 7,
            peers: 3,
            link_delay_ms: (20.0, 150.0),
            inter_region_ms: 0.0,
            regions: Vec::new(),
            mean_interval_ms: 500.0,
            // 2026-03-04T08:53:44.3Z: a fractional start so header timestamps lag by U[0,1).
            start_ns: 1_772_614_424_300_000_000,
            noise_lines_per_block: 4,
            sampled_txs_per_block: 2,
            compression: Compression::Plain,
            missing: Vec::new(),
            clock_skew_ms: Vec::new(),
        }
    }
}

/// One block as the logs encode it.
#[derive(Debug, Clone)]
pub struct TruthBlock {
    pub hash: String,
    pub generator: usize,
    /// Generation time: the generator's "inserted into graph" line (ns).
    pub generated_ns: i64,
    /// The header's whole-second timestamp.
    pub header_timestamp: i64,
    /// Per node: "new block received" time (ns); `None` at the generator and where missing.
    pub receive_ns: Vec<Option<i64>>,
    /// Per node: "inserted into graph" time; `None` where missing.
    pub sync_ns: Vec<Option<i64>>,
    pub cons_ns: Vec<Option<i64>>,
    pub txs: u32,
}

/// The ground truth of a generated run.
#[derive(Debug, Clone)]
pub struct Truth {
    pub node_names: Vec<String>,
    pub regions: Vec<String>,
    pub blocks: Vec<TruthBlock>,
    /// Bytes written before compression.
    pub bytes: u64,
}

impl Truth {
    /// Per block (with a logged generator), the Receive latencies (s) of the nodes that got it.
    pub fn receive_latencies(&self) -> Vec<Vec<f64>> {
        self.blocks
            .iter()
            .filter(|b| b.sync_ns[b.generator].is_some())
            .map(|b| {
                b.receive_ns
                    .iter()
                    .flatten()
                    .map(|t| (t - b.generated_ns) as f64 / 1e9)
                    .collect()
            })
            .collect()
    }
}

/// A small deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for c in h.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        h
    }
}

fn hex(h: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * h.len());
    s.push_str("0x");
    for b in h {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What a node logs, before formatting.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Ratio,
    Receive(usize),
    Sync(usize),
    Cons(usize),
    Record(usize),
    Tx(usize, u8),
    Stats,
    Noise(u32),
}

/// Writes the run below `dir` and returns its truth.
pub fn write_run(dir: &Path, spec: &FixtureSpec) -> std::io::Result<Truth> {
    let n = spec.nodes;
    assert!(n >= 2, "a run needs at least two nodes");
    let mut rng = Rng(spec.seed ^ 0x5EED);
    let regions: Vec<String> = (0..n)
        .map(|i| {
            spec.regions
                .get(i % spec.regions.len().max(1))
                .cloned()
                .unwrap_or_else(|| "local".into())
        })
        .collect();

    // Topology: ring + random peers, symmetric per-link delays (ms).
    let mut adj: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let link = |a: usize, b: usize, adj: &mut Vec<Vec<(usize, f64)>>, rng: &mut Rng| {
        if a == b || adj[a].iter().any(|(x, _)| *x == b) {
            return;
        }
        let (lo, hi) = spec.link_delay_ms;
        let mut d = lo + (hi - lo) * rng.unit();
        if regions[a] != regions[b] {
            d += spec.inter_region_ms;
        }
        adj[a].push((b, d));
        adj[b].push((a, d));
    };
    for a in 0..n {
        link(a, (a + 1) % n, &mut adj, &mut rng);
    }
    for a in 0..n {
        for _ in 0..spec.peers {
            let b = rng.below(n);
            link(a, b, &mut adj, &mut rng);
        }
    }
    let dist: Vec<Vec<f64>> = (0..n).map(|s| dijkstra(&adj, s)).collect();

    // Blocks.
    let missing: std::collections::HashSet<(usize, usize)> = spec.missing.iter().copied().collect();
    let mut blocks = Vec::with_capacity(spec.blocks);
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(spec.blocks);
    let mut t = spec.start_ns;
    let mut last_ts = 0i64;
    let mut tx_hashes: Vec<Vec<([u8; 32], usize, i64)>> = Vec::with_capacity(spec.blocks);
    for bi in 0..spec.blocks {
        if bi > 0 {
            t += (-(1.0 - rng.unit()).ln() * spec.mean_interval_ms * 1e6) as i64;
        }
        let generator = rng.below(n);
        let header_timestamp = (t.div_euclid(1_000_000_000)).max(last_ts);
        last_ts = header_timestamp;
        let hash = rng.hash();
        let mut receive_ns = vec![None; n];
        let mut sync_ns = vec![None; n];
        let mut cons_ns = vec![None; n];
        for node in 0..n {
            // Draw the same random numbers whether or not the pair is missing, so dropping a
            // pair changes nothing else in the run.
            let (j1, j2) = (rng.unit(), rng.unit());
            if missing.contains(&(node, bi)) {
                continue;
            }
            let sync = if node == generator {
                t
            } else {
                let r = t + (dist[generator][node] * 1e6) as i64;
                receive_ns[node] = Some(r);
                r + 800_000 + (j1 * 400_000.0) as i64
            };
            sync_ns[node] = Some(sync);
            cons_ns[node] = Some(sync + 1_500_000 + (j2 * 500_000.0) as i64);
        }
        let mut txs = Vec::new();
        for _ in 0..spec.sampled_txs_per_block {
            let mut h = rng.hash();
            h[0] &= 0x01; // sampled: first byte & 0xFE == 0
            let origin = rng.below(n);
            let created = t - 500_000_000 - (rng.unit() * 2e9) as i64;
            txs.push((h, origin, created));
        }
        tx_hashes.push(txs);
        hashes.push(hash);
        blocks.push(TruthBlock {
            hash: hex(&hash),
            generator,
            generated_ns: t,
            header_timestamp,
            receive_ns,
            sync_ns,
            cons_ns,
            txs: 100 + rng.below(3000) as u32,
        });
    }

    let node_names: Vec<String> = (0..n)
        .map(|i| format!("10.{}.{}.{}-0", 1 + i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    if !spec.regions.is_empty() {
        let hosts: Vec<_> = (0..n)
            .map(|i| crate::state::hosts_json::HostRecord {
                ip: node_names[i]
                    .trim_end_matches("-0")
                    .parse()
                    .expect("generated IPs parse"),
                nodes_per_host: 1,
                ssh_user: "root".into(),
                ssh_key_path: "./keys/ssh-key.pem".into(),
                provider: "local".into(),
                region: regions[i].clone(),
                zone: format!("{}a", regions[i]),
                instance_id: format!("i-{i}"),
                private_ip: None,
            })
            .collect();
        std::fs::write(
            dir.join("hosts.json"),
            crate::state::hosts_json::render(&hosts),
        )?;
    }

    // Node logs, written by a few threads (each node's log is independent).
    let total = std::sync::atomic::AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n);
    let ctx = Ctx {
        spec,
        blocks: &blocks,
        hashes: &hashes,
        txs: &tx_hashes,
        dist: &dist,
    };
    std::thread::scope(|s| -> std::io::Result<()> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            handles.push(s.spawn(|| -> std::io::Result<()> {
                loop {
                    let node = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if node >= n {
                        return Ok(());
                    }
                    let text = ctx.node_log(node);
                    total.fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let nd = logs.join(&node_names[node]);
                    std::fs::create_dir_all(&nd)?;
                    let mut f = std::fs::File::create(nd.join(spec.compression.file_name()))?;
                    f.write_all(&compress(&text, spec.compression))?;
                }
            }));
        }
        for h in handles {
            h.join().expect("fixture writer thread")?;
        }
        Ok(())
    })?;
    Ok(Truth {
        node_names,
        regions,
        blocks,
        bytes: total.into_inner(),
    })
}

struct Ctx<'a> {
    spec: &'a FixtureSpec,
    blocks: &'a [TruthBlock],
    hashes: &'a [[u8; 32]],
    txs: &'a [Vec<([u8; 32], usize, i64)>],
    dist: &'a [Vec<f64>],
}

impl Ctx<'_> {
    /// One node's whole log, time-ordered.
    fn node_log(&self, node: usize) -> Vec<u8> {
        let mut rng = Rng(self
            .spec
            .seed
            .wrapping_mul(31)
            .wrapping_add(node as u64 + 1));
        let mut evs: Vec<(i64, Ev)> = Vec::new();
        let mut first = i64::MAX;
        let mut last = i64::MIN;
        for (bi, b) in self.blocks.iter().enumerate() {
            let Some(sync) = b.sync_ns[node] else {
                continue;
            };
            if let Some(r) = b.receive_ns[node] {
                evs.push((r, Ev::Ratio));
                evs.push((r, Ev::Receive(bi)));
            }
            evs.push((sync, Ev::Sync(bi)));
            let cons = b.cons_ns[node].expect("cons with sync");
            evs.push((cons, Ev::Cons(bi)));
            evs.push((cons + 200_000, Ev::Record(bi)));
            first = first.min(b.receive_ns[node].unwrap_or(sync));
            last = last.max(cons);
            // Sampled transactions of this block as this node sees them.
            for (ti, (_, origin, created)) in self.txs[bi].iter().enumerate() {
                let gossip = created
                    + (self.dist[*origin][node] * 1e6) as i64
                    + if *origin == node {
                        0
                    } else {
                        (rng.unit() * 2e8) as i64
                    };
                let block_arrival = b.receive_ns[node].unwrap_or(i64::MAX);
                if node == b.generator {
                    evs.push((gossip, Ev::Tx(bi, (ti as u8) << 2)));
                    evs.push((sync - 500_000, Ev::Tx(bi, ((ti as u8) << 2) | 2)));
                } else if gossip < block_arrival {
                    evs.push((gossip, Ev::Tx(bi, (ti as u8) << 2)));
                } else {
                    evs.push((block_arrival, Ev::Tx(bi, ((ti as u8) << 2) | 1)));
                }
            }
            for k in 0..self.spec.noise_lines_per_block {
                let at = sync - (rng.unit() * 1e8) as i64;
                evs.push((at, Ev::Noise((bi * 131 + k) as u32)));
            }
        }
        if first <= last {
            let mut s = first - 1_000_000_000;
            while s <= last + 5_000_000_000 {
                evs.push((s, Ev::Stats));
                s += 5_000_000_000;
            }
        }
        evs.sort_by_key(|e| e.0);

        let skew_ns = self
            .spec
            .clock_skew_ms
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, ms)| (ms * 1e6) as i64)
            .sum::<i64>();
        let mut out = Vec::with_capacity(evs.len() * 700);
        let mut line = String::with_capacity(2048);
        let (mut synced, mut consed) = (1u64, 1u64);
        for (t, ev) in evs {
            line.clear();
            let (level, thread, target) = match ev {
                Ev::Stats => ("INFO ", "Statistics", "cfxcore::sta"),
                Ev::Cons(_) | Ev::Record(_) => ("DEBUG", "Consensus Worker", "cfxcore::con"),
                Ev::Noise(_) => ("DEBUG", "IO Worker #2", "network::ses"),
                _ => ("DEBUG", "IO Worker #1", "cfxcore::syn"),
            };
            push_time(&mut line, t + skew_ns);
            let _ = write!(
                line,
                " {level} {thread:<20.20} [{tid:<8.8}] {target:<12.12} - ",
                tid = 4000 + node
            );
            match ev {
                Ev::Ratio => line.push_str("transaction received by block: ratio=0"),
                Ev::Receive(bi) => {
                    line.push_str("new block received: block_header=");
                    self.header(&mut line, bi);
                    let b = &self.blocks[bi];
                    let _ = write!(line, ", tx_count={}, block_size={}", b.txs, b.txs * 102);
                }
                Ev::Sync(bi) => {
                    synced += 1;
                    line.push_str("new block inserted into graph: block_header=");
                    self.header(&mut line, bi);
                    let b = &self.blocks[bi];
                    let _ = write!(line, ", tx_count={}, block_size={}", b.txs, b.txs * 102);
                }
                Ev::Cons(bi) => {
                    consed += 1;
                    line.push_str("insert new block into consensus: header_only=false block=");
                    self.header(&mut line, bi);
                }
                Ev::Record(bi) => {
                    let mine = self.blocks[bi].generator == node;
                    let (h, b) = if mine { (0, 0) } else { (310_000, 2_400_000) };
                    let _ = write!(
                        line,
                        "Block events record complete. hash: {}, start_timestamp: ",
                        self.blocks[bi].hash
                    );
                    push_time(&mut line, t - 5_000_000);
                    line.truncate(line.len() - 6);
                    line.push('Z');
                    let _ = write!(
                        line,
                        ", header_ready: {h}, body_ready: {b}, sync_graph: {}, consensys_graph_insert: {}, consensys_graph_ready: {}, compute_epoch: {}, notify_tx_pool: {}, tx_pool_updated: {}, custom_sync_to_con_0: {}, custom_sync_to_con_1: {}, custom_sync_to_con_2: {}, gauge_con_worker_queue: {}",
                        b + 900_000,
                        b + 1_200_000,
                        b + 2_900_000,
                        b + 4_000_000,
                        b + 4_100_000,
                        b + 4_600_000,
                        b + 900_000,
                        b + 1_000_000,
                        b + 1_150_000,
                        bi % 3
                    );
                }
                Ev::Tx(bi, code) => {
                    let (h, _, _) = self.txs[bi][usize::from(code >> 2)];
                    let how = match code & 3 {
                        0 => "in tx pool",
                        1 => "in block",
                        _ => "in packing block",
                    };
                    let _ = write!(line, "Sampled transaction {} {how}", hex(&h));
                }
                Ev::Stats => {
                    let _ = write!(
                        line,
                        "Statistics: StatisticsInner {{ sync_graph: SyncGraphStatistics {{ inserted_block_count: {synced}, inserted_header_count: {synced} }}, consensus_graph: ConsensusGraphStatistics {{ inserted_block_count: {consed}, activated_block_count: {consed}, processed_block_count: {consed} }} }}"
                    );
                }
                Ev::Noise(k) => {
                    let _ = write!(
                        line,
                        "Session {} sent packet to peer 0x{:016x}: protocol=cfx msg_id={} size={} throttled=false queue_len={} elapsed_us={}",
                        k % 64,
                        u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        k % 37,
                        200 + k % 1400,
                        k % 9,
                        k % 5000
                    );
                }
            }
            line.push('\n');
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    /// The `BlockHeader` Debug text, field names in the node's order.
    fn header(&self, s: &mut String, bi: usize) {
        let b = &self.blocks[bi];
        let zero = "0x0000000000000000000000000000000000000000000000000000000000000000";
        let parent = if bi == 0 {
            zero.to_string()
        } else {
            hex(&self.hashes[bi - 1])
        };
        let referees: Vec<String> = (2..=3)
            .filter(|k| bi >= *k && bi.is_multiple_of(*k))
            .map(|k| hex(&self.hashes[bi - k]))
            .collect();
        let _ = write!(
            s,
            "BlockHeader {{ rlp_part: BlockHeaderRlpPart {{ parent_hash: {parent}, height: {}, timestamp: {}, author: 0x{:040x}, transactions_root: {zero}, deferred_state_root: {zero}, deferred_receipts_root: {zero}, deferred_logs_bloom_hash: {zero}, blame: 0, difficulty: 1000, adaptive: false, gas_limit: 120000000, referee_hashes: [{}], custom: [], nonce: 0x{:x}, pos_reference: None, base_price: None }}, hash: Some({}), pow_hash: Some({zero}), approximated_rlp_size: {} }}",
            bi + 1,
            b.header_timestamp,
            b.generator + 1,
            referees.join(", "),
            bi * 7919 + 1,
            b.hash,
            b.txs * 102 + 600
        );
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+00:00` (chrono `%+` of a UTC time with nanoseconds).
fn push_time(s: &mut String, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}+00:00",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[derive(PartialEq)]
struct Item(f64, usize);
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

/// Shortest one-way delays (ms) from `src`.
fn dijkstra(adj: &[Vec<(usize, f64)>], src: usize) -> Vec<f64> {
    let mut dist = vec![f64::INFINITY; adj.len()];
    dist[src] = 0.0;
    let mut heap = BinaryHeap::new();
    heap.push(Item(0.0, src));
    while let Some(Item(d, u)) = heap.pop() {
        if d > dist[u] {
            continue;
        }
        for &(v, w) in &adj[u] {
            let nd = d + w;
            if nd < dist[v] {
                dist[v] = nd;
                heap.push(Item(nd, v));
            }
        }
    }
    dist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_matches_chrono() {
        for ns in [0i64, 1_772_614_424_123_456_789, 951_782_400_000_000_001] {
            let mut s = String::new();
            push_time(&mut s, ns);
            let c = chrono::DateTime::from_timestamp_nanos(ns)
                .format("%Y-%m-%dT%H:%M:%S%.9f+00:00")
                .to_string();
            assert_eq!(s, c);
            assert_eq!(super::super::line::timestamp_ns(s.as_bytes()), Some(ns));
        }
    }
}
