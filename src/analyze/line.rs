//! One `conflux.log` line: its timestamp and the fields the original's mapper extracts.
//!
//! The line format is the massive-test node's log4rs pattern (conflux-node.md §3.2):
//! `{d} {level:5.5} {thread:<20.20} [{tid:8.8}] {target:12.12} - {message}`, where `{d}` is chrono
//! `%+` (RFC 3339 with up to nanoseconds). Matching follows the original mapper
//! (`stat_latency_map_reduce.py::parse_log_line`, §3.3): a plain substring test per pattern, and
//! every field is "the text after the first occurrence of `key` up to the next delimiter". Unlike
//! the mapper, a line that matches but does not parse is reported as malformed instead of aborting
//! the whole run, and times keep their full nanosecond precision (the mapper rounds to 0.01 s).
//!
//! Everything here works on bytes: logs are ASCII in the parts we read, and skipping UTF-8
//! validation of gigabytes of unrelated lines is a large part of the analyzer's speed.

use memchr::memmem;

/// The substrings the mapper tests, in the order it tests them.
pub(crate) const PATTERNS: [&str; 7] = [
    "transaction received by block",
    "new block received",
    "new block inserted into graph",
    "insert new block into consensus",
    "Block events record ",
    "Statistics",
    "Sampled transaction",
];

/// A 32-byte hash (block or transaction), parsed from `0x` + 64 hex digits.
pub(crate) type H256 = [u8; 32];

/// Hashes already are uniformly random: folding their words (FxHash-style) is enough and much
/// cheaper than SipHash on the hot path. Logs come from our own nodes, not from an adversary.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct H256Hasher(u64);

impl std::hash::Hasher for H256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by hashes.
pub(crate) type H256Map<V> =
    std::collections::HashMap<H256, V, std::hash::BuildHasherDefault<H256Hasher>>;

/// Which block event a block line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockEvent {
    /// `new block received`: the block arrived from a peer (never logged by its generator).
    Receive,
    /// `new block inserted into graph`: once per block per node, the generator included.
    Sync,
    /// `insert new block into consensus`.
    Cons,
}

/// The block header fields the mapper reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub hash: H256,
    pub parent: H256,
    pub height: u64,
    /// Whole unix seconds, as the header stores them.
    pub timestamp: i64,
    pub referees: u32,
    /// `tx_count=` and `block_size=`; absent on the consensus line.
    pub txs: Option<u32>,
    pub size: Option<u64>,
}

/// How a transaction sample line saw the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxSeen {
    /// `in tx pool` (own txgen or gossip) and anything unrecognised, as the mapper treats it.
    Pool,
    /// `in block`: recovered from a received block.
    Block,
    /// `in packing block`: packed by this node's block generator.
    Packing,
    /// `in ready pool`: no node emits it (§3.3), kept for completeness.
    Ready,
}

/// A block-event record: stage times in nanoseconds since the node first heard of the block.
/// Keys borrow from the line: records are frequent and their keys few, so no allocation here.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRecord<'a> {
    pub hash: H256,
    /// `key: value` pairs after `start_timestamp`, values as logged (ns, or raw gauges).
    pub values: Vec<(&'a str, i64)>,
}

/// What one matched line says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed<'a> {
    Block(BlockEvent, Box<HeaderFields>),
    ByBlockRatio(f64),
    Events(EventRecord<'a>),
    /// `SyncGraphStatistics.inserted_block_count − ConsensusGraphStatistics.inserted_block_count`.
    Gap(u64),
    Tx(H256, TxSeen),
}

/// Why a matched line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// Finders built once per scan; `memmem::Finder` precomputes its search tables.
pub(crate) struct Finders {
    hash_some: memmem::Finder<'static>,
    parent: memmem::Finder<'static>,
    height: memmem::Finder<'static>,
    timestamp: memmem::Finder<'static>,
    referees: memmem::Finder<'static>,
    tx_count: memmem::Finder<'static>,
    block_size: memmem::Finder<'static>,
    sync_stat: memmem::Finder<'static>,
    cons_stat: memmem::Finder<'static>,
    ratio: memmem::Finder<'static>,
    pattern: Vec<memmem::Finder<'static>>,
}

impl Default for Finders {
    fn default() -> Self {
        let f = |needle: &'static [u8]| memmem::Finder::new(needle);
        Finders {
            hash_some: f(b"hash: Some("),
            parent: f(b"parent_hash: "),
            height: f(b"height: "),
            timestamp: f(b"timestamp: "),
            referees: f(b"referee_hashes: ["),
            tx_count: f(b"tx_count="),
            block_size: f(b"block_size="),
            sync_stat: f(b"SyncGraphStatistics { inserted_block_count: "),
            cons_stat: f(b"ConsensusGraphStatistics { inserted_block_count: "),
            ratio: f(b"ratio="),
            pattern: PATTERNS.iter().map(|p| f(p.as_bytes())).collect(),
        }
    }
}

impl Finders {
    /// Which of [`PATTERNS`] the line holds, as a bit mask (bit i = pattern i).
    #[cfg(test)]
    pub(crate) fn mask(&self, line: &[u8]) -> u32 {
        let mut m = 0;
        for (i, f) in self.pattern.iter().enumerate() {
            if f.find(line).is_some() {
                m |= 1 << i;
            }
        }
        m
    }

    /// Every item the line carries, in the mapper's order (a line can, in principle, match more
    /// than one pattern; the mapper tests them all). `mask` says which patterns the line holds
    /// ([`Finders::mask`], or the scanner's own search).
    pub(crate) fn parse<'a>(
        &self,
        line: &'a [u8],
        mask: u32,
        out: &mut Vec<Result<Parsed<'a>, Malformed>>,
    ) {
        let has = |i: usize| mask & (1 << i) != 0;
        if has(0) {
            out.push(self.ratio_of(line));
        }
        for (i, ev) in [
            (1, BlockEvent::Receive),
            (2, BlockEvent::Sync),
            (3, BlockEvent::Cons),
        ] {
            if has(i) {
                out.push(
                    self.header(line, ev != BlockEvent::Cons)
                        .map(|h| Parsed::Block(ev, Box::new(h))),
                );
            }
        }
        if let Some(at) = has(4).then(|| self.pattern[4].find(line)).flatten() {
            // The mapper takes only `complete` and `partially complete`; `incomplete` is ignored.
            let rest = &line[at + PATTERNS[4].len()..];
            if rest.starts_with(b"complete. ") || rest.starts_with(b"partially complete. ") {
                out.push(events(rest).map(Parsed::Events));
            }
        }
        if has(5) {
            out.push(self.gap(line));
        }
        if let Some(at) = has(6).then(|| self.pattern[6].find(line)).flatten() {
            out.push(tx_sample(&line[at + PATTERNS[6].len()..]));
        }
    }

    fn ratio_of(&self, line: &[u8]) -> Result<Parsed<'static>, Malformed> {
        let at = self.ratio.find(line).ok_or(Malformed("`ratio=` missing"))?;
        let text = std::str::from_utf8(trim(&line[at + 6..])).map_err(|_| Malformed("ratio"))?;
        text.parse::<f64>()
            .map(Parsed::ByBlockRatio)
            .map_err(|_| Malformed("`ratio=` is not a number"))
    }

    fn gap(&self, line: &[u8]) -> Result<Parsed<'static>, Malformed> {
        let num = |f: &memmem::Finder<'_>, what: &'static str| -> Result<u64, Malformed> {
            let at = f.find(line).ok_or(Malformed(what))? + f.needle().len();
            parse_u64(until(&line[at..], b',')).ok_or(Malformed(what))
        };
        let sync = num(&self.sync_stat, "SyncGraphStatistics count")?;
        let cons = num(&self.cons_stat, "ConsensusGraphStatistics count")?;
        sync.checked_sub(cons)
            .map(Parsed::Gap)
            .ok_or(Malformed("sync graph count below consensus count"))
    }

    /// The header fields, each from its first occurrence (the mapper's rule).
    fn header(&self, line: &[u8], with_body: bool) -> Result<HeaderFields, Malformed> {
        let after = |f: &memmem::Finder<'_>, what: &'static str| -> Result<&[u8], Malformed> {
            f.find(line)
                .map(|at| &line[at + f.needle().len()..])
                .ok_or(Malformed(what))
        };
        let hash = parse_h256(until(after(&self.hash_some, "`hash: Some(`")?, b')'))
            .ok_or(Malformed("block hash is not 0x + 64 hex digits"))?;
        let parent = parse_h256(until(after(&self.parent, "`parent_hash: `")?, b','))
            .ok_or(Malformed("parent hash is not 0x + 64 hex digits"))?;
        let height = parse_u64(until(after(&self.height, "`height: `")?, b','))
            .ok_or(Malformed("height is not a number"))?;
        let timestamp = parse_u64(until(after(&self.timestamp, "`timestamp: `")?, b','))
            .ok_or(Malformed("timestamp is not a number"))? as i64;
        let list = until(after(&self.referees, "`referee_hashes: [`")?, b']');
        let mut referees = 0;
        for r in list.split(|b| *b == b',') {
            let r = trim(r);
            if !r.is_empty() {
                parse_h256(r).ok_or(Malformed("referee hash is not 0x + 64 hex digits"))?;
                referees += 1;
            }
        }
        let (txs, size) = if with_body {
            let txs = parse_u64(until(after(&self.tx_count, "`tx_count=`")?, b','))
                .ok_or(Malformed("tx_count is not a number"))?;
            let size = parse_u64(trim(after(&self.block_size, "`block_size=`")?))
                .ok_or(Malformed("block_size is not a number"))?;
            (Some(txs as u32), Some(size))
        } else {
            (None, None)
        };
        Ok(HeaderFields {
            hash,
            parent,
            height,
            timestamp,
            referees,
            txs,
            size,
        })
    }
}

/// `complete. hash: 0x…, start_timestamp: …, key: n, …` → the record.
fn events(rest: &[u8]) -> Result<EventRecord<'_>, Malformed> {
    let dot = memchr::memchr(b'.', rest).ok_or(Malformed("record"))?;
    let body = std::str::from_utf8(trim(&rest[dot + 1..]))
        .map_err(|_| Malformed("record is not UTF-8"))?;
    let mut hash = None;
    let mut values = Vec::with_capacity(12);
    for item in body.split(", ") {
        let (k, v) = item
            .split_once(": ")
            .ok_or(Malformed("record item is not `key: value`"))?;
        match k {
            "hash" => {
                hash = Some(
                    parse_h256(v.as_bytes()).ok_or(Malformed("record hash is not 0x + 64 hex"))?,
                )
            }
            "start_timestamp" => {}
            _ => values.push((
                k,
                v.parse::<i64>()
                    .map_err(|_| Malformed("record value is not an integer"))?,
            )),
        }
    }
    Ok(EventRecord {
        hash: hash.ok_or(Malformed("record without hash"))?,
        values,
    })
}

/// ` <hash> in tx pool` → the sample.
fn tx_sample(rest: &[u8]) -> Result<Parsed<'static>, Malformed> {
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let hash = parse_h256(&rest[..end]).ok_or(Malformed("sampled tx hash"))?;
    let tail = &rest[end..];
    let seen = if tail.starts_with(b" in block") {
        TxSeen::Block
    } else if tail.starts_with(b" in packing block") {
        TxSeen::Packing
    } else if tail.starts_with(b" in ready pool") {
        TxSeen::Ready
    } else {
        TxSeen::Pool
    };
    Ok(Parsed::Tx(hash, seen))
}

fn until(s: &[u8], delim: u8) -> &[u8] {
    match memchr::memchr(delim, s) {
        Some(i) => &s[..i],
        None => s,
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// `0x` + 64 hex digits (either case) → bytes.
pub(crate) fn parse_h256(s: &[u8]) -> Option<H256> {
    let s = trim(s);
    let hex = s.strip_prefix(b"0x")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    // Table lookups and one validity check at the end: no branch per digit.
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= (hi | lo) & 0x80;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// Hex digit values; 0x80 marks a byte that is not a hex digit.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// `0x` + lowercase hex.
pub(crate) fn hex_h256(h: &H256) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in h {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// The line's timestamp in nanoseconds since the Unix epoch (UTC).
///
/// Accepts the first space-separated token in RFC 3339 form, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]`
/// followed by `Z` or `±HH:MM`, optionally preceded by a grep prefix ending in `conflux.log:` (the
/// mapper accepts those too). A hand-rolled parser: this runs once per matched line and chrono's
/// general parser would dominate the profile.
pub(crate) fn timestamp_ns(line: &[u8]) -> Option<i64> {
    let mut s = line;
    if !s.first()?.is_ascii_digit() {
        let at = memmem::find(s, b"conflux.log:")?;
        s = &s[at + 12..];
    }
    let end = memchr::memchr(b' ', s).unwrap_or(s.len());
    let s = &s[..end];
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if s[10] != b'T' && s[10] != b't' {
        return None;
    }
    let num = |a: usize, b: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in &s[a..b] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                frac_ns = frac_ns * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if digits == 0 {
            return None;
        }
        frac_ns *= 10i64.pow(9 - digits as u32);
    }
    let offset_s = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        sign @ (b'+' | b'-') if s.len() == i + 6 && s[i + 3] == b':' => {
            let off = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some(secs * 1_000_000_000 + frac_ns)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const P: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

    fn header(h: &str) -> String {
        format!(
            "BlockHeader {{ rlp_part: BlockHeaderRlpPart {{ parent_hash: {P}, height: 42, timestamp: 1772614424, author: 0x1234567890123456789012345678901234567890, transactions_root: {P}, deferred_state_root: {P}, deferred_receipts_root: {P}, deferred_logs_bloom_hash: {P}, blame: 0, difficulty: 4, adaptive: false, gas_limit: 120000000, referee_hashes: [{P}, {P}], custom: [], nonce: 0x1, pos_reference: None, base_price: None }}, hash: Some({h}), pow_hash: Some({P}), approximated_rlp_size: 610 }}"
        )
    }

    fn parse(line: &str) -> Vec<Result<Parsed<'_>, Malformed>> {
        let mut out = Vec::new();
        let f = Finders::default();
        f.parse(line.as_bytes(), f.mask(line.as_bytes()), &mut out);
        out
    }

    #[test]
    fn timestamps_are_exact_to_the_nanosecond() {
        let t = timestamp_ns(b"2026-03-04T08:53:44.123456789+00:00 DEBUG x").unwrap();
        let chrono = chrono::DateTime::parse_from_rfc3339("2026-03-04T08:53:44.123456789+00:00")
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        assert_eq!(t, chrono);
        assert_eq!(
            timestamp_ns(b"2026-03-04T16:53:44.5+08:00 INFO").unwrap(),
            chrono - 123_456_789 + 500_000_000
        );
        assert_eq!(
            timestamp_ns(b"2026-03-04T08:53:44Z x").unwrap(),
            chrono - 123_456_789
        );
        assert_eq!(
            timestamp_ns(b"./n1/conflux.log:2026-03-04T08:53:44Z x").unwrap(),
            chrono - 123_456_789
        );
        assert_eq!(timestamp_ns(b"garbage"), None);
        assert_eq!(timestamp_ns(b"2026-13-04T08:53:44Z x"), None);
    }

    #[test]
    fn block_lines_give_header_fields() {
        let line = format!(
            "2026-03-04T08:53:44.123456789+00:00 DEBUG IO Worker #1         [1234    ] cfxcore::syn - new block received: block_header={}, tx_count=17, block_size=1734",
            header(H)
        );
        let got = parse(&line);
        let Ok(Parsed::Block(BlockEvent::Receive, h)) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(hex_h256(&h.hash), H);
        assert_eq!(hex_h256(&h.parent), P);
        assert_eq!(
            (h.height, h.timestamp, h.referees, h.txs, h.size),
            (42, 1772614424, 2, Some(17), Some(1734))
        );
        let cons = format!(
            "2026-03-04T08:53:44.2+00:00 DEBUG Consensus Worker     [1       ] cfxcore::con - insert new block into consensus: header_only=false block={}",
            header(H)
        );
        assert!(
            matches!(&parse(&cons)[0], Ok(Parsed::Block(BlockEvent::Cons, h)) if h.txs.is_none())
        );
    }

    #[test]
    fn other_patterns() {
        assert_eq!(
            parse("t - transaction received by block: ratio=0.25"),
            vec![Ok(Parsed::ByBlockRatio(0.25))]
        );
        assert_eq!(
            parse(
                "t INFO - Statistics: StatisticsInner { sync_graph: SyncGraphStatistics { inserted_block_count: 12, inserted_header_count: 12 }, consensus_graph: ConsensusGraphStatistics { inserted_block_count: 9, activated_block_count: 9, processed_block_count: 9 } }"
            ),
            vec![Ok(Parsed::Gap(3))]
        );
        let tx = format!("t - Sampled transaction {H} in packing block");
        assert!(matches!(&parse(&tx)[0], Ok(Parsed::Tx(_, TxSeen::Packing))));
        let ev = format!(
            "t - Block events record complete. hash: {H}, start_timestamp: 2026-03-04T08:53:44.123456789Z, header_ready: 100, body_ready: 200, sync_graph: 300, consensys_graph_insert: 400, consensys_graph_ready: 500, custom_sync_to_con_0: 1, gauge_con_worker_queue: 3"
        );
        let Ok(Parsed::Events(e)) = &parse(&ev)[0] else {
            panic!()
        };
        assert_eq!(e.values.len(), 7);
        assert_eq!(e.values[0], ("header_ready", 100));
        assert!(parse(&ev.replace("complete.", "incomplete.")).is_empty());
    }

    #[test]
    fn broken_lines_are_malformed_not_panics() {
        let bad = [
            "t - new block received: block_header=BlockHeader { hash: Some(0x12) }",
            "t - Statistics: something else",
            "t INFO - Statistics: StatisticsInner { sync_graph: SyncGraphStatistics { inserted_block_count: 1, x }, consensus_graph: ConsensusGraphStatistics { inserted_block_count: 9, y } }",
            "t - transaction received by block: ratio=abc",
            "t - Sampled transaction 0xzz in block",
            "t - Block events record complete. hash: 0x1, header_ready: x",
        ];
        for line in bad {
            let got = parse(line);
            assert!(
                !got.is_empty() && got.iter().all(Result::is_err),
                "{line}: {got:?}"
            );
        }
    }
}
