//! Reading one node's log in a single streaming pass into a per-node summary.
//!
//! The log is read in large chunks; one Aho-Corasick search over each chunk finds the next line
//! holding any of the mapper's patterns (a SIMD "Teddy" search, so the gigabytes of unrelated DEBUG
//! lines cost a memory scan and nothing else), and only those lines are split out and parsed.
//! Memory is the chunk plus the node's summary, whose size is O(blocks + sampled txs): a node
//! keeps one entry per block (earliest time of each event, header fields, event stages), one per
//! sampled transaction, and its 5-second sync/consensus gap samples. Log size never enters.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, packed};

use super::line::{
    self, BlockEvent, EventRecord, Finders, H256, H256Map, HeaderFields, Parsed, TxSeen,
};

/// Bytes read per chunk: small enough that the kernel's copy lands in cache and the scan reads it
/// from there (4 MiB chunks ran at half the speed). Longer lines grow the buffer (to [`MAX_LINE`]).
const CHUNK: usize = 256 << 10;
/// A longer "line" means the file is not a log; it is reported and skipped.
const MAX_LINE: usize = 64 << 20;

/// Malformed lines quoted per node (the rest are counted).
const QUOTED_PROBLEMS: usize = 5;

/// The pattern matcher shared by all scan workers (immutable, `Sync`).
///
/// The packed "Teddy" searcher (SIMD over a few patterns) is several times faster on log text
/// than the general automaton, whose rare-byte prefilter fires constantly on English-like lines;
/// it needs SSSE3/AVX2 or NEON, so the automaton stays as the fallback.
pub(crate) struct Matcher {
    teddy: Option<packed::Searcher>,
    ac: AhoCorasick,
}

impl Matcher {
    pub(crate) fn new() -> Matcher {
        let teddy = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(line::PATTERNS)
            .build();
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(line::PATTERNS)
            .expect("the mapper patterns compile");
        Matcher { teddy, ac }
    }

    /// Start of the first pattern occurrence in `hay`.
    fn find(&self, hay: &[u8]) -> Option<usize> {
        match &self.teddy {
            Some(t) => t.find(hay).map(|m| m.start()),
            None => self.ac.find(hay).map(|m| m.start()),
        }
    }

    /// Bit mask of the patterns `line` holds.
    fn mask(&self, line: &[u8]) -> u32 {
        let mut mask = 0u32;
        match &self.teddy {
            Some(t) => {
                for m in t.find_iter(line) {
                    mask |= 1 << m.pattern().as_usize();
                }
            }
            None => {
                for m in self.ac.find_iter(line) {
                    mask |= 1 << m.pattern().as_usize();
                }
            }
        }
        mask
    }
}

/// The 8 standard event stages (conflux-node.md §3.3), in table order.
pub(crate) const STAGES: [&str; 8] = [
    "HeaderReady",
    "BodyReady",
    "SyncGraph",
    "ConsensusGraphStart",
    "ConsensusGraphReady",
    "ComputeEpoch",
    "NotifyTxPool",
    "TxPoolUpdated",
];

/// One block's event stages at one node, in milliseconds; NaN where the record lacks the stage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stages {
    pub standard: [f32; 8],
    /// Custom stage deltas (ms) and gauges (raw), by CamelCase name (`SyncToCon0`, `ConWorkerQueue`).
    pub custom: Vec<(Arc<str>, f32)>,
}

/// What one node saw of one block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeBlock {
    pub header: HeaderFields,
    /// Earliest log time (ns) of each event line; `None` if the node never logged it.
    pub receive: Option<i64>,
    pub sync: Option<i64>,
    pub cons: Option<i64>,
    /// Event lines logged more than once for this block (the earliest is kept).
    pub duplicates: u32,
    pub stages: Option<Box<Stages>>,
}

/// What one node saw of one sampled transaction (the mapper's `add_or_replace` rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NodeTx {
    /// Earliest time (ns) of any sample line for it.
    pub received: i64,
    /// Whether that earliest line was `in block`.
    pub by_block: bool,
    /// Time of the last `in packing block` line, if any.
    pub packed: Option<i64>,
    pub ready: Option<i64>,
}

/// A node's summary.
#[derive(Debug, Default)]
pub(crate) struct NodeScan {
    pub blocks: H256Map<NodeBlock>,
    pub txs: H256Map<NodeTx>,
    pub gaps: Vec<u64>,
    pub by_block_ratio: Vec<f32>,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Lines that held a pattern.
    pub matched_lines: u64,
    pub malformed_lines: u64,
    /// The first few malformed lines: byte offset and reason.
    pub problems: Vec<String>,
    /// Whether the log ended without a newline in the middle of a matching line.
    pub truncated_tail: bool,
    /// The read error that ended the scan early; what was read before it is kept.
    pub read_error: Option<String>,
    /// Earliest and latest timestamp of a matched line.
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    /// Custom stage names, interned: (snake name, stage or gauge) → CamelCase name.
    names: HashMap<(String, Option<u32>), Arc<str>>,
}

/// Which sampled transactions to track: keep a hash iff `hash[1] < keep_per_256` (all at 256).
/// Deterministic by hash, so every node keeps the same ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxFilter {
    pub keep_per_256: u16,
}

impl TxFilter {
    fn keeps(&self, h: &H256) -> bool {
        u16::from(h[1]) < self.keep_per_256
    }
}

/// Scans one log stream. `buf` is the worker's read buffer, reused across files so its pages are
/// touched once per worker rather than once per file. A read error (a corrupt or cut compressed
/// file) ends the scan but keeps everything read before it, noted in `read_error`.
pub(crate) fn scan(
    mut input: impl Read,
    matcher: &Matcher,
    tx_filter: TxFilter,
    buf: &mut Vec<u8>,
) -> NodeScan {
    let finders = Finders::default();
    let mut state = NodeScan::default();
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let mut filled = 0usize;
    // Decompressed offset of buf[0], for locating problems.
    let mut base = 0u64;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_LINE {
                // No newline in MAX_LINE bytes: drop this stretch and resynchronise.
                state.note_problem(base, "line longer than 64 MiB skipped");
                base += filled as u64;
                filled = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                state.read_error = Some(e.to_string());
                return state;
            }
        };
        state.bytes += n as u64;
        if n == 0 {
            if filled > 0 {
                // A last line without a newline: parse it if complete, else call it truncated.
                let before = state.malformed_lines;
                state.process(&buf[..filled], base, matcher, &finders, tx_filter);
                if state.malformed_lines > before {
                    state.truncated_tail = true;
                }
            }
            return state;
        }
        filled += n;
        // Process whole lines only; keep the partial tail for the next read.
        let Some(last_nl) = memchr::memrchr(b'\n', &buf[filled - n..filled]) else {
            continue;
        };
        let end = filled - n + last_nl + 1;
        state.process(&buf[..end], base, matcher, &finders, tx_filter);
        buf.copy_within(end..filled, 0);
        base += end as u64;
        filled -= end;
    }
}

impl NodeScan {
    fn note_problem(&mut self, offset: u64, why: &str) {
        self.malformed_lines += 1;
        if self.problems.len() < QUOTED_PROBLEMS {
            self.problems.push(format!("byte {offset}: {why}"));
        }
    }

    /// Handles every matching line of `chunk` (whole lines).
    fn process(
        &mut self,
        chunk: &[u8],
        base: u64,
        matcher: &Matcher,
        finders: &Finders,
        tx_filter: TxFilter,
    ) {
        let mut items = Vec::with_capacity(4);
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(m) = matcher.find(&chunk[pos..]) else {
                break;
            };
            let at = pos + m;
            let start = memchr::memrchr(b'\n', &chunk[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &chunk[at..]).map_or(chunk.len(), |i| at + i);
            let mut text = &chunk[start..end];
            if let [rest @ .., b'\r'] = text {
                text = rest;
            }
            // Which patterns the line holds: one more pass of the same searcher over the line.
            let mask = matcher.mask(text);
            self.line(
                text,
                mask,
                base + start as u64,
                finders,
                tx_filter,
                &mut items,
            );
            pos = end + 1;
        }
    }

    fn line<'a>(
        &mut self,
        text: &'a [u8],
        mask: u32,
        offset: u64,
        finders: &Finders,
        tx_filter: TxFilter,
        items: &mut Vec<Result<Parsed<'a>, line::Malformed>>,
    ) {
        self.matched_lines += 1;
        let Some(t) = line::timestamp_ns(text) else {
            self.note_problem(offset, "no RFC 3339 timestamp at the start of the line");
            return;
        };
        self.first_ns = Some(self.first_ns.map_or(t, |f| f.min(t)));
        self.last_ns = Some(self.last_ns.map_or(t, |l| l.max(t)));
        items.clear();
        finders.parse(text, mask, items);
        for item in items.drain(..) {
            match item {
                Err(line::Malformed(why)) => self.note_problem(offset, why),
                Ok(Parsed::Block(ev, header)) => self.block(ev, *header, t),
                Ok(Parsed::ByBlockRatio(r)) => self.by_block_ratio.push(r as f32),
                Ok(Parsed::Gap(g)) => self.gaps.push(g),
                Ok(Parsed::Events(rec)) => {
                    if let Err(why) = self.events(&rec) {
                        self.note_problem(offset, why);
                    }
                }
                Ok(Parsed::Tx(h, seen)) => {
                    if tx_filter.keeps(&h) {
                        self.tx(h, seen, t);
                    }
                }
            }
        }
    }

    fn block(&mut self, ev: BlockEvent, header: HeaderFields, t: i64) {
        let entry = self.blocks.entry(header.hash).or_insert_with(|| NodeBlock {
            header: header.clone(),
            receive: None,
            sync: None,
            cons: None,
            duplicates: 0,
            stages: None,
        });
        if entry.header.txs.is_none() {
            entry.header.txs = header.txs;
            entry.header.size = header.size;
        }
        let slot = match ev {
            BlockEvent::Receive => &mut entry.receive,
            BlockEvent::Sync => &mut entry.sync,
            BlockEvent::Cons => &mut entry.cons,
        };
        match slot {
            None => *slot = Some(t),
            Some(old) => {
                entry.duplicates += 1;
                *old = (*old).min(t);
            }
        }
    }

    /// Attaches a record to a block this node already logged (the mapper's rule).
    fn events(&mut self, rec: &EventRecord<'_>) -> Result<(), &'static str> {
        let Some(block) = self.blocks.get_mut(&rec.hash) else {
            return Ok(());
        };
        if block.stages.is_some() {
            block.duplicates += 1;
            return Ok(());
        }
        let names = &mut self.names;
        let stages = stages_of(rec, &mut |name, stage| {
            names
                .entry((name.to_string(), stage))
                .or_insert_with(|| {
                    let camel = snake_to_camel(name);
                    match stage {
                        Some(k) => format!("{camel}{k}").into(),
                        None => camel.into(),
                    }
                })
                .clone()
        })?;
        if let Some(block) = self.blocks.get_mut(&rec.hash) {
            block.stages = Some(Box::new(stages));
        }
        Ok(())
    }

    fn tx(&mut self, h: H256, seen: TxSeen, t: i64) {
        let e = self.txs.entry(h).or_insert(NodeTx {
            received: t,
            by_block: seen == TxSeen::Block,
            packed: None,
            ready: None,
        });
        if t < e.received {
            e.received = t;
            e.by_block = seen == TxSeen::Block;
        }
        match seen {
            TxSeen::Packing => e.packed = Some(t),
            TxSeen::Ready => e.ready = Some(t),
            TxSeen::Pool | TxSeen::Block => {}
        }
    }
}

/// The mapper's stage arithmetic (§3.3): deltas of nanosecond marks, in milliseconds.
fn stages_of(
    rec: &EventRecord<'_>,
    name_of: &mut impl FnMut(&str, Option<u32>) -> Arc<str>,
) -> Result<Stages, &'static str> {
    let get = |k: &str| {
        rec.values
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
    };
    let need = |k: &'static str| get(k).ok_or(k);
    let ms = |a: i64, b: i64| ((b - a) as f64 / 1e6) as f32;
    let header = need("header_ready").map_err(|_| "record without `header_ready`")?;
    let body = need("body_ready").map_err(|_| "record without `body_ready`")?;
    let sync = need("sync_graph").map_err(|_| "record without `sync_graph`")?;
    let insert =
        need("consensys_graph_insert").map_err(|_| "record without `consensys_graph_insert`")?;
    let ready =
        need("consensys_graph_ready").map_err(|_| "record without `consensys_graph_ready`")?;
    let mut standard = [f32::NAN; 8];
    standard[0] = (header as f64 / 1e6) as f32;
    standard[1] = ms(header, body);
    standard[2] = ms(body, sync);
    standard[3] = ms(sync, insert);
    standard[4] = ms(insert, ready);
    if let Some(compute) = get("compute_epoch") {
        let notify = need("notify_tx_pool").map_err(|_| "record without `notify_tx_pool`")?;
        let updated = need("tx_pool_updated").map_err(|_| "record without `tx_pool_updated`")?;
        standard[5] = ms(ready, compute);
        standard[6] = ms(compute, notify);
        standard[7] = ms(notify, updated);
    }
    // custom_<name>_<k>: stage marks → `<Name><k>` = (mark k+1 − mark k) / 1e6, for consecutive
    // k from 0; gauge_<name>: `<Name>` = the raw value.
    let mut marks: Vec<(&str, u32, i64)> = Vec::new();
    let mut custom = Vec::new();
    for (k, v) in &rec.values {
        if let Some(rest) = k.strip_prefix("custom_") {
            if let Some((name, stage)) = rest.rsplit_once('_')
                && !name.is_empty()
                && !stage.is_empty()
                && stage.bytes().all(|b| b.is_ascii_digit())
                && let Ok(stage) = stage.parse::<u32>()
            {
                marks.push((name, stage, *v));
            }
        } else if let Some(name) = k.strip_prefix("gauge_")
            && !name.is_empty()
        {
            custom.push((name_of(name, None), *v as f32));
        }
    }
    marks.sort_unstable();
    let mut i = 0;
    while i < marks.len() {
        let name = marks[i].0;
        let mut j = i;
        while j < marks.len() && marks[j].0 == name {
            j += 1;
        }
        let group = &marks[i..j];
        let at = |s: u32| group.iter().find(|m| m.1 == s).map(|m| m.2);
        let mut s = 0;
        while let (Some(a), Some(b)) = (at(s), at(s + 1)) {
            custom.push((name_of(name, Some(s)), ms(a, b)));
            s += 1;
        }
        i = j;
    }
    Ok(Stages { standard, custom })
}

/// `sync_to_con` → `SyncToCon`, as Python's `str.capitalize` per word does.
fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split('_') {
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_like_the_mapper() {
        assert_eq!(snake_to_camel("sync_to_con"), "SyncToCon");
        assert_eq!(snake_to_camel("cmpt_recover_RATE"), "CmptRecoverRate");
    }

    #[test]
    fn custom_stages_are_consecutive_deltas() {
        let rec = EventRecord {
            hash: [0; 32],
            values: vec![
                ("header_ready", 1_000_000),
                ("body_ready", 3_000_000),
                ("sync_graph", 4_000_000),
                ("consensys_graph_insert", 6_000_000),
                ("consensys_graph_ready", 7_000_000),
                ("custom_sync_to_con_0", 0),
                ("custom_sync_to_con_1", 2_000_000),
                ("custom_sync_to_con_2", 5_000_000),
                ("custom_sync_to_con_4", 9_000_000),
                ("gauge_con_worker_queue", 3),
            ],
        };
        let s = stages_of(&rec, &mut |n, k| {
            let c = snake_to_camel(n);
            k.map_or(c.clone(), |k| format!("{c}{k}")).into()
        })
        .unwrap();
        assert_eq!(&s.standard[..5], &[1.0, 2.0, 1.0, 2.0, 1.0]);
        assert!(s.standard[5].is_nan());
        assert_eq!(
            s.custom,
            vec![
                (Arc::from("ConWorkerQueue"), 3.0),
                (Arc::from("SyncToCon0"), 2.0),
                (Arc::from("SyncToCon1"), 3.0),
            ]
        );
    }

    #[test]
    fn chunk_boundaries_and_a_missing_final_newline() {
        let h = "0x".to_string() + &"ab".repeat(32);
        let mut log = String::new();
        for i in 0..2000 {
            log.push_str(&format!(
                "2026-03-04T08:53:{:02}.000000001+00:00 DEBUG t [1] x - noise line {i}\n",
                i % 60
            ));
            log.push_str(&format!(
                "2026-03-04T08:53:{:02}.5+00:00 DEBUG t [1] x - Sampled transaction {h} in tx pool\n",
                i % 60
            ));
        }
        log.push_str("2026-03-04T08:52:00Z DEBUG t [1] x - transaction received by block: ratio=1");
        // A reader that hands out 7 bytes at a time exercises every boundary.
        struct Drip<'a>(&'a [u8]);
        impl Read for Drip<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let all = TxFilter { keep_per_256: 256 };
        let s = scan(Drip(log.as_bytes()), &Matcher::new(), all, &mut Vec::new());
        assert_eq!(s.matched_lines, 2001);
        assert_eq!(s.malformed_lines, 0);
        assert_eq!(s.by_block_ratio, vec![1.0]);
        assert_eq!(s.txs.len(), 1);
        assert_eq!(s.bytes, log.len() as u64);
        let t0 = line::timestamp_ns(b"2026-03-04T08:53:00.5+00:00").unwrap();
        assert_eq!(s.txs.values().next().unwrap().received, t0);
        assert!(!s.truncated_tail);

        let cut = &log[..log.len() - 3];
        let s = scan(cut.as_bytes(), &Matcher::new(), all, &mut Vec::new());
        assert_eq!(s.by_block_ratio, Vec::<f32>::new());
        assert!(s.truncated_tail, "a cut last line is reported as truncated");
    }
}
