//! Analyzer throughput and memory on a generated corpus of 200 node logs (≥ 1 GB), side by side
//! with a straightforward single-threaded baseline of the same parsing (the original mapper's
//! line-by-line substring tests, ported to Rust as anyone would first write them).
//!
//! Run: `cargo bench --bench analyze`. The corpora are generated once into
//! `target/analyze-bench/` and reused (delete that directory to regenerate). Each measurement runs
//! in a child process so its peak RSS (VmHWM) is its own; the page cache is warm for all of them
//! (the corpus was just written or read), so the figures are CPU throughput, not disk.
//!
//! Printed: MB/s (decompressed bytes, 10^6) by wall time, MB/s per CPU-second (user + system time
//! of the child: the per-core figure, and the one that holds on a busy shared machine), peak RSS,
//! and whether the baseline and the analyzer agree on the block lines they found. "RSS
//! independent of log size" shows as the same RSS on a corpus with the same blocks × nodes and
//! about 1.6 times the bytes.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cfxm::analyze::fixture::{self, FixtureSpec};
use cfxm::analyze::{AnalyzeOptions, Compression};

const NODES: usize = 200;
const BLOCKS: usize = 700;

fn corpus_spec(noise: usize, nodes: usize, compression: Compression) -> FixtureSpec {
    FixtureSpec {
        nodes,
        blocks: BLOCKS,
        seed: 2026,
        peers: 6,
        link_delay_ms: (10.0, 120.0),
        inter_region_ms: 80.0,
        regions: [
            "ap-southeast-1",
            "cn-hongkong",
            "ap-northeast-2",
            "ap-southeast-3",
            "ap-southeast-5",
            "ap-southeast-7",
            "me-east-1",
            "ap-southeast-6",
            "us-west-2",
        ]
        .map(String::from)
        .to_vec(),
        mean_interval_ms: 175.0,
        noise_lines_per_block: noise,
        // ≈ 3000 txs per block sampled at 1/128.
        sampled_txs_per_block: 20,
        compression,
        ..FixtureSpec::default()
    }
}

fn main() {
    if let Ok(role) = std::env::var("CFXM_BENCH_CHILD") {
        child(&role);
        return;
    }
    let base = target_dir().join("analyze-bench");
    let one = ensure(
        &base.join("corpus-1x"),
        corpus_spec(6, NODES, Compression::Plain),
    );
    let two = ensure(
        &base.join("corpus-2x"),
        corpus_spec(30, NODES, Compression::Plain),
    );
    let zst = ensure(
        &base.join("corpus-zst-20"),
        corpus_spec(6, 20, Compression::Zstd),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!("\nanalyzer benchmark: {NODES} nodes x {BLOCKS} blocks, {cores} cores");
    println!(
        "{:<44} {:>8} {:>7} {:>7} {:>7} {:>10} {:>9}",
        "run", "GB read", "wall s", "CPU s", "MB/s", "MB/s/CPU-s", "peak RSS"
    );
    // (label, corpus, child role)
    let runs: [(&str, &Path, String); 6] = [
        (
            "analyzer, all cores, 1x corpus",
            &one,
            format!("analyzer:{cores}"),
        ),
        ("analyzer, 1 thread, 1x corpus", &one, "analyzer:1".into()),
        ("baseline, 1 thread, 1x corpus", &one, "baseline".into()),
        (
            "analyzer, all cores, 2x corpus (same blocks)",
            &two,
            format!("analyzer:{cores}"),
        ),
        (
            "analyzer, 1 thread, 2x corpus (same blocks)",
            &two,
            "analyzer:1".into(),
        ),
        (
            "analyzer, all cores, 20 nodes .zst",
            &zst,
            format!("analyzer:{cores}"),
        ),
    ];
    let mut found: HashMap<String, String> = HashMap::new();
    for (label, dir, role) in runs {
        let r = spawn(&role, dir);
        println!(
            "{label:<44} {:>8.2} {:>7.2} {:>7.2} {:>7.0} {:>10.0} {:>6} MB",
            r.bytes as f64 / 1e9,
            r.secs,
            r.cpu_s,
            r.bytes as f64 / 1e6 / r.secs,
            r.bytes as f64 / 1e6 / r.cpu_s,
            r.rss_kb / 1024
        );
        if dir == one.as_path() {
            found.insert(role.split(':').next().unwrap_or("").into(), r.check);
        }
    }
    let agree = found.get("analyzer") == found.get("baseline");
    println!(
        "baseline and analyzer agree on the block lines found: {} ({})",
        if agree { "yes" } else { "NO" },
        found.get("analyzer").cloned().unwrap_or_default()
    );
}

struct Outcome {
    bytes: u64,
    secs: f64,
    cpu_s: f64,
    rss_kb: u64,
    check: String,
}

fn spawn(role: &str, dir: &Path) -> Outcome {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("CFXM_BENCH_CHILD", role)
        .env("CFXM_BENCH_DIR", dir)
        .output()
        .expect("bench child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "child {role} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |k: &str| -> String {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or("0")
            .to_string()
    };
    Outcome {
        bytes: field("bytes").parse().unwrap_or(0),
        secs: field("secs").parse().unwrap_or(f64::NAN),
        cpu_s: field("cpu_s").parse().unwrap_or(f64::NAN),
        rss_kb: field("rss_kb").parse().unwrap_or(0),
        check: field("check"),
    }
}

fn child(role: &str) {
    let dir = PathBuf::from(std::env::var("CFXM_BENCH_DIR").expect("CFXM_BENCH_DIR"));
    let started = Instant::now();
    let (bytes, check) = match role.split_once(':') {
        Some(("analyzer", threads)) => {
            let opts = AnalyzeOptions {
                threads: threads.parse().ok(),
                ..AnalyzeOptions::default()
            };
            let r = cfxm::analyze::analyze_run(&dir, &opts).expect("analysis");
            let receive: u64 = r.coverage.blocks.iter().map(|b| b.nodes_received).sum();
            let synced: u64 = r.coverage.blocks.iter().map(|b| b.nodes_synced).sum();
            let cons: u64 = r.coverage.blocks.iter().map(|b| b.nodes_cons).sum();
            (
                r.input.bytes,
                format!(
                    "blocks:{}/receive:{receive}/sync:{synced}/cons:{cons}",
                    r.coverage.blocks_seen
                ),
            )
        }
        _ => baseline(&dir),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT bytes={bytes} secs={secs:.3} cpu_s={:.3} rss_kb={} check={check}",
        cpu_seconds(),
        peak_rss_kb()
    );
}

/// User + system time of this process, all threads (`/proc/self/stat` fields 14 and 15, in clock
/// ticks of 1/100 s, the Linux default).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the `(comm)` field, field 3 (state) is index 0, so utime (14) is index 11.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Generates a corpus unless a complete one is there (its `corpus.done` marker names the spec).
fn ensure(dir: &Path, spec: FixtureSpec) -> PathBuf {
    let marker = dir.join("corpus.done");
    let want = format!("{spec:?}");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return dir.to_path_buf();
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("corpus dir");
    eprintln!("generating {} (once) ...", dir.display());
    let t = Instant::now();
    let truth = fixture::write_run(dir, &spec).expect("corpus written");
    eprintln!(
        "  {:.2} GB in {:.1} s",
        truth.bytes as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, want).expect("marker");
    dir.to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// ---- The baseline: the mapper's algorithm, line by line, with std strings and chrono.

#[derive(Default)]
struct BaseBlock {
    timestamp: i64,
    receive: Vec<f64>,
    sync: Vec<f64>,
    cons: Vec<f64>,
    events: Vec<HashMap<String, i64>>,
}

fn value<'a>(line: &'a str, prefix: &str, suffix: Option<&str>) -> &'a str {
    let start = line.find(prefix).map(|i| i + prefix.len()).unwrap_or(0);
    let end = suffix
        .and_then(|s| line[start..].find(s).map(|i| start + i))
        .unwrap_or(line.len());
    &line[start..end]
}

fn baseline(dir: &Path) -> (u64, String) {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir.join("logs")).expect("logs dir") {
        let p = e.expect("entry").path().join("conflux.log");
        if p.is_file() {
            files.push(p);
        }
    }
    let mut bytes = 0u64;
    let mut blocks: HashMap<String, BaseBlock> = HashMap::new();
    let mut ratios = Vec::new();
    let mut gaps = Vec::new();
    let mut txs: HashMap<String, Vec<f64>> = HashMap::new();
    for f in files {
        let reader = std::io::BufReader::new(std::fs::File::open(f).expect("log"));
        for line in reader.lines() {
            let line = line.expect("utf-8 line");
            bytes += line.len() as u64 + 1;
            let time = || {
                chrono::DateTime::parse_from_rfc3339(value(&line, "", Some(" ")))
                    .expect("timestamp")
                    .timestamp_nanos_opt()
                    .expect("in range") as f64
                    / 1e9
            };
            if line.contains("transaction received by block") {
                ratios.push(
                    value(&line, "ratio=", None)
                        .trim()
                        .parse::<f64>()
                        .expect("ratio"),
                );
            }
            for (pat, kind) in [
                ("new block received", 0),
                ("new block inserted into graph", 1),
                ("insert new block into consensus", 2),
            ] {
                if line.contains(pat) {
                    let hash = value(&line, "hash: Some(", Some(")")).to_string();
                    let ts: i64 = value(&line, "timestamp: ", Some(",")).parse().expect("ts");
                    let _height: u64 = value(&line, "height: ", Some(",")).parse().expect("h");
                    let _parent = value(&line, "parent_hash: ", Some(",")).to_string();
                    let referees: Vec<String> = value(&line, "referee_hashes: [", Some("]"))
                        .split(',')
                        .map(|r| r.trim().to_string())
                        .filter(|r| !r.is_empty())
                        .collect();
                    assert!(referees.iter().all(|r| r.len() == 66));
                    if kind != 2 {
                        let _txs: u64 = value(&line, "tx_count=", Some(",")).parse().expect("n");
                        let _size: u64 = value(&line, "block_size=", None)
                            .trim()
                            .parse()
                            .expect("size");
                    }
                    let b = blocks.entry(hash).or_default();
                    b.timestamp = ts;
                    let lat =
                        (((time() * 100.0).round() / 100.0 - ts as f64) * 100.0).round() / 100.0;
                    [&mut b.receive, &mut b.sync, &mut b.cons][kind].push(lat);
                }
            }
            if line.contains("Block events record complete")
                || line.contains("Block events record partially complete")
            {
                let body = value(&line, "complete. ", None);
                let mut rec = HashMap::new();
                let mut hash = String::new();
                for item in body.split(", ") {
                    let (k, v) = item.split_once(": ").expect("k: v");
                    match k {
                        "hash" => hash = v.to_string(),
                        "start_timestamp" => {}
                        _ => {
                            rec.insert(k.to_string(), v.parse::<i64>().expect("int"));
                        }
                    }
                }
                if let Some(b) = blocks.get_mut(&hash) {
                    b.events.push(rec);
                }
            }
            if line.contains("Statistics") {
                let a: u64 = value(
                    &line,
                    "SyncGraphStatistics { inserted_block_count: ",
                    Some(","),
                )
                .parse()
                .expect("sync");
                let c: u64 = value(
                    &line,
                    "ConsensusGraphStatistics { inserted_block_count: ",
                    Some(","),
                )
                .parse()
                .expect("cons");
                gaps.push(a - c);
            }
            if line.contains("Sampled transaction") {
                let h = value(&line, "Sampled transaction ", Some(" ")).to_string();
                txs.entry(h).or_default().push(time());
            }
        }
    }
    let receive: usize = blocks.values().map(|b| b.receive.len()).sum();
    let sync: usize = blocks.values().map(|b| b.sync.len()).sum();
    let cons: usize = blocks.values().map(|b| b.cons.len()).sum();
    // The other extracted data is built, as the mapper builds it, and not reported further.
    std::hint::black_box((&ratios, &gaps, &txs, &blocks));
    (
        bytes,
        format!(
            "blocks:{}/receive:{receive}/sync:{sync}/cons:{cons}",
            blocks.len()
        ),
    )
}
