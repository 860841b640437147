//! Reads devnode logs the way the analysis does (conflux-node.md §3): the exact line prefix,
//! the message patterns, and the latency mapper's extraction rules (`parse_value`: the text
//! after the first occurrence of a prefix, up to the next suffix).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset};
use regex::Regex;

const H: &str = "0x[0-9a-f]{64}";

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}\+00:00) (DEBUG|INFO |WARN |ERROR|TRACE) (.{20}) \[(.{8})\] (.{12}) - (.*)$",
    )
    .unwrap()
});

fn header_re() -> String {
    format!(
        r"BlockHeader \{{ rlp_part: BlockHeaderRlpPart \{{ parent_hash: {H}, height: \d+, timestamp: \d+, author: 0x[0-9a-f]{{40}}, transactions_root: {H}, deferred_state_root: {H}, deferred_receipts_root: {H}, deferred_logs_bloom_hash: {H}, blame: \d+, difficulty: \d+, adaptive: (true|false), gas_limit: \d+, referee_hashes: \[({H}(, {H})*)?\], custom: \[\], nonce: \d+, pos_reference: None, base_price: None \}}, hash: Some\({H}\), pow_hash: Some\({H}\), approximated_rlp_size: \d+ \}}"
    )
}

/// Every message pattern of conflux-node.md §3.3 the devnode emits, by name.
static PATTERNS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let hdr = header_re();
    let re = |s: String| Regex::new(&format!("^{s}$")).unwrap();
    vec![
        ("received", re(format!(r"new block received: block_header={hdr}, tx_count=\d+, block_size=\d+"))),
        ("inserted", re(format!(r"new block inserted into graph: block_header={hdr}, tx_count=\d+, block_size=\d+"))),
        ("consensus", re(format!(r"insert new block into consensus: header_only=(true|false) block={hdr}"))),
        ("ratio", re(r"transaction received by block: ratio=(0|1|[0-9.e-]+)".into())),
        ("statistics", re(r"Statistics: StatisticsInner \{ sync_graph: SyncGraphStatistics \{ inserted_block_count: \d+, inserted_header_count: \d+ \}, consensus_graph: ConsensusGraphStatistics \{ inserted_block_count: \d+, activated_block_count: \d+, processed_block_count: \d+ \} \}".into())),
        ("sampled", re(format!(r"Sampled transaction {H} in (tx pool|block|packing block)"))),
        ("events", re(format!(r"Block events record (complete|partially complete)\. hash: {H}, start_timestamp: \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z(, [a-z_0-9]+: \d+)+"))),
    ]
});

/// One parsed line.
#[derive(Debug, Clone)]
pub struct Line {
    pub time: DateTime<FixedOffset>,
    pub level: String,
    pub target: String,
    pub msg: String,
    /// Which §3.3 pattern the message matched, if any.
    pub kind: Option<&'static str>,
}

/// The mapper's `parse_value`: text after the first `prefix`, up to the next `suffix`.
pub fn parse_value<'a>(line: &'a str, prefix: &str, suffix: Option<&str>) -> &'a str {
    let start = line.find(prefix).expect("prefix present") + prefix.len();
    match suffix {
        Some(s) => &line[start..start + line[start..].find(s).expect("suffix present")],
        None => &line[start..],
    }
}

/// Parses a whole log; panics on any line the analysis could not read.
pub fn parse(log: &str) -> Vec<Line> {
    assert!(log.ends_with('\n'), "the last line is complete");
    log.lines()
        .map(|l| {
            let c = PREFIX
                .captures(l)
                .unwrap_or_else(|| panic!("line does not follow the log4rs pattern: {l}"));
            let msg = c[6].to_owned();
            let kind = PATTERNS
                .iter()
                .find(|(_, re)| re.is_match(&msg))
                .map(|(k, _)| *k);
            // Only the analysis's lines may mention these texts; a near miss would make the
            // mapper crash or miscount.
            for (needle, k) in [
                ("Statistics", "statistics"),
                ("new block received", "received"),
                ("new block inserted into graph", "inserted"),
                ("insert new block into consensus", "consensus"),
                ("Sampled transaction", "sampled"),
                ("Block events record", "events"),
                ("transaction received by block", "ratio"),
            ] {
                if l.contains(needle) {
                    assert_eq!(
                        kind,
                        Some(k),
                        "a line mentions {needle:?} but is not one: {l}"
                    );
                }
            }
            Line {
                time: DateTime::parse_from_rfc3339(&c[1]).unwrap(),
                level: c[2].trim_end().to_owned(),
                target: c[5].to_owned(),
                msg,
                kind,
            }
        })
        .collect()
}

/// What the mapper extracts from a block line.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockFacts {
    pub hash: String,
    pub parent: String,
    pub height: u64,
    pub timestamp: u64,
    pub referees: Vec<String>,
    pub txs: Option<u64>,
    pub size: Option<u64>,
}

pub fn block_facts(msg: &str, with_counts: bool) -> BlockFacts {
    let hash = parse_value(msg, "hash: Some(", Some(")")).to_owned();
    assert_eq!(hash.len(), 66);
    let referees: Vec<String> = parse_value(msg, "referee_hashes: [", Some("]"))
        .split(',')
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    assert!(referees.iter().all(|r| r.len() == 66));
    BlockFacts {
        hash,
        parent: parse_value(msg, "parent_hash: ", Some(",")).to_owned(),
        height: parse_value(msg, "height: ", Some(",")).parse().unwrap(),
        timestamp: parse_value(msg, "timestamp: ", Some(",")).parse().unwrap(),
        referees,
        txs: with_counts.then(|| parse_value(msg, "tx_count=", Some(",")).parse().unwrap()),
        size: with_counts.then(|| parse_value(msg, "block_size=", None).parse().unwrap()),
    }
}

/// A node's view of its log: per block and stage, the log times.
#[derive(Default, Debug)]
pub struct NodeLog {
    pub received: HashMap<String, Vec<DateTime<FixedOffset>>>,
    pub inserted: HashMap<String, Vec<DateTime<FixedOffset>>>,
    pub consensus: HashMap<String, Vec<DateTime<FixedOffset>>>,
    pub events: HashMap<String, Vec<String>>,
    pub facts: HashMap<String, BlockFacts>,
    pub statistics: Vec<(u64, u64)>,
    pub sampled: Vec<(String, String)>,
    pub ratios: usize,
    pub lines: Vec<Line>,
}

/// Parses and indexes a node's log, checking the mapper's per-line rules on the way.
pub fn index(log: &str) -> NodeLog {
    let lines = parse(log);
    let mut n = NodeLog::default();
    for (i, l) in lines.iter().enumerate() {
        match l.kind {
            Some("received") => {
                assert_eq!(
                    lines[i - 1].kind,
                    Some("ratio"),
                    "\"transaction received by block\" precedes \"new block received\""
                );
                let f = block_facts(&l.msg, true);
                n.received.entry(f.hash.clone()).or_default().push(l.time);
                n.facts.insert(f.hash.clone(), f);
            }
            Some("inserted") => {
                let f = block_facts(&l.msg, true);
                n.inserted.entry(f.hash.clone()).or_default().push(l.time);
                n.facts.insert(f.hash.clone(), f);
            }
            Some("consensus") => {
                let f = block_facts(&l.msg, false);
                n.consensus.entry(f.hash.clone()).or_default().push(l.time);
            }
            Some("ratio") => {
                let r: f64 = parse_value(&l.msg, "ratio=", None).parse().unwrap();
                assert!((0.0..=1.0).contains(&r));
                n.ratios += 1;
            }
            Some("statistics") => {
                assert_eq!(l.level, "INFO");
                let a: u64 = parse_value(
                    &l.msg,
                    "SyncGraphStatistics { inserted_block_count: ",
                    Some(","),
                )
                .parse()
                .unwrap();
                let c: u64 = parse_value(
                    &l.msg,
                    "ConsensusGraphStatistics { inserted_block_count: ",
                    Some(","),
                )
                .parse()
                .unwrap();
                assert!(a >= c, "the mapper asserts sync ≥ consensus");
                n.statistics.push((a, c));
            }
            Some("sampled") => {
                let h = parse_value(&l.msg, "Sampled transaction ", Some(" ")).to_owned();
                let first = u8::from_str_radix(&h[2..4], 16).unwrap();
                assert_eq!(first & 0xFE, 0, "sampled by the hash's first byte: {h}");
                let how = l.msg.rsplit_once(&h).unwrap().1.trim().to_owned();
                n.sampled.push((h, how));
            }
            Some("events") => {
                let body = l.msg.split_once(". ").unwrap().1;
                let mut keys = Vec::new();
                let mut hash = String::new();
                for item in body.split(", ") {
                    let (k, v) = item.split_once(": ").expect("key: value");
                    match k {
                        "hash" => hash = v.to_owned(),
                        "start_timestamp" => {}
                        _ => {
                            v.parse::<u64>().expect("integer nanoseconds");
                        }
                    }
                    keys.push(k.to_owned());
                }
                n.events.entry(hash).or_default().push(keys.join(","));
            }
            _ => {}
        }
    }
    n.lines = lines;
    n
}
