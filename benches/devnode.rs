//! How light is a devnode? Runs N devnodes (default 30) as release processes on this machine,
//! connected like the original tool connects nodes (ring + random peers up to 8, dialled from
//! both ends), with the original's transaction load (17,000 TPS in total: each node generates
//! one transaction per 1e6·N/17000 µs) and block schedule (exponential gaps, mean 175 ms, a node
//! at most every 100 ms, `test_generateOneBlock(10000000, 460800)` on its own thread).
//!
//! Prints per-node CPU (share of one core, from /proc utime+stime) and memory (VmRSS now,
//! VmHWM peak), the generate-call latency, and the block propagation latency the logs show.
//!
//! `cargo bench --bench devnode` (env: DEVNODE_BENCH_NODES, DEVNODE_BENCH_SECS,
//! DEVNODE_BENCH_TPS).

#[path = "../tests/devnode/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/devnode/logcheck.rs"]
#[allow(dead_code)]
mod logcheck;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::seq::SliceRandom;
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// (VmRSS, VmHWM) in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(name: &str, unit: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let avg = v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{name:<34} avg {avg:>8.2} {unit}  p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2}  (n={})",
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    );
}

fn main() {
    let n = env("DEVNODE_BENCH_NODES", 30) as usize;
    let secs = env("DEVNODE_BENCH_SECS", 60);
    let tps = env("DEVNODE_BENCH_TPS", 17_000).max(1);
    let peers = 8.min(n - 1);
    let accounts = 100.min(100_000 / n);
    let period_us = 1_000_000 * n as u64 / tps;
    println!(
        "devnode bench: {n} nodes, {secs} s of blocks every 175 ms (mean), {tps} TPS in total \
         (generate_tx_period_us={period_us}, txgen_account_count={accounts}), peers {peers}"
    );

    // Other work on the machine shows in the latency tails (not in CPU time): say how much.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let root = tempfile::tempdir().unwrap();
    let secrets = harness::write_secrets(root.path(), n * accounts);
    let extra = format!(
        "generate_tx_period_us={period_us}\ntxgen_account_count={accounts}\n\
         metrics_report_interval_ms=3000\n"
    );
    let t = Instant::now();
    let nodes = harness::start(root.path(), n, &secrets, &extra);
    println!(
        "start + readiness of {n} nodes: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Ring + random peers, both ends dial.
    let mut rng = rand::rng();
    let mut edges = BTreeSet::new();
    for i in 0..n {
        let j = (i + 1) % n;
        edges.insert((i.min(j), i.max(j)));
    }
    for i in 0..n {
        let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        others.shuffle(&mut rng);
        for j in others {
            if edges.iter().filter(|(a, b)| *a == i || *b == i).count() >= peers {
                break;
            }
            edges.insert((i.min(j), i.max(j)));
        }
    }
    let t = Instant::now();
    for &(a, b) in &edges {
        harness::connect(&nodes, a, b);
    }
    let mut neighbours: HashMap<usize, Vec<&str>> = HashMap::new();
    for &(a, b) in &edges {
        neighbours.entry(a).or_default().push(&nodes[b].id);
        neighbours.entry(b).or_default().push(&nodes[a].id);
    }
    for (i, node) in nodes.iter().enumerate() {
        harness::wait_peers(node, &neighbours[&i]);
    }
    println!(
        "topology: {} edges, mean degree {:.1}, connected in {:.1} s",
        edges.len(),
        2.0 * edges.len() as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    for (i, node) in nodes.iter().enumerate() {
        node.ok(
            "test_sendUsableGenesisAccounts",
            Some(json!([i * accounts])),
        );
    }

    let pids: Vec<u32> = nodes.iter().map(|n| n.pid()).collect();
    let ticks0: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let t0 = Instant::now();

    // The block schedule of the original's block_generator.
    let call_ms = Arc::new(Mutex::new(Vec::new()));
    let generated = Arc::new(Mutex::new(HashMap::new()));
    let mut last_used = vec![Instant::now() - Duration::from_secs(1); n];
    let mut next = Instant::now();
    let mut handles = Vec::new();
    let nodes = Arc::new(nodes);
    while t0.elapsed() < Duration::from_secs(secs) {
        let gap: f64 = -175.0 * (1.0 - rng.random::<f64>()).ln();
        next += Duration::from_secs_f64(gap / 1000.0);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let free: Vec<usize> = (0..n)
            .filter(|&i| last_used[i].elapsed() >= Duration::from_millis(100))
            .collect();
        let Some(&i) = free.get(rng.random_range(0..free.len().max(1))) else {
            continue;
        };
        last_used[i] = Instant::now();
        let (nodes, call_ms, generated) = (nodes.clone(), call_ms.clone(), generated.clone());
        handles.push(std::thread::spawn(move || {
            let t = Instant::now();
            let hash = nodes[i].ok("test_generateOneBlock", Some(json!([10_000_000, 460_800])));
            call_ms
                .lock()
                .unwrap()
                .push(t.elapsed().as_secs_f64() * 1000.0);
            generated
                .lock()
                .unwrap()
                .insert(hash.as_str().unwrap().to_owned(), i);
        }));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let ticks1: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let mem: Vec<(u64, u64)> = pids.iter().map(|&p| memory_kb(p)).collect();
    for h in handles {
        h.join().unwrap();
    }
    let blocks = generated.lock().unwrap().len();
    let t = Instant::now();
    let best = harness::wait_converged(&nodes, blocks as u64 + 1, Duration::from_secs(120));
    println!(
        "{blocks} blocks in {elapsed:.1} s; all {n} nodes on best {}… {:.1} s after the last",
        &best[..10],
        t.elapsed().as_secs_f64()
    );

    let tck = 100.0;
    let cpu: Vec<f64> = ticks0
        .iter()
        .zip(&ticks1)
        .map(|(a, b)| (b - a) as f64 / tck / elapsed * 100.0)
        .collect();
    let total_cpu: f64 = cpu.iter().sum();
    summary("CPU per node (% of one core)", "%", cpu);
    println!(
        "{:<34} {total_cpu:.1} % of one core = {:.1} % of this machine's {} cores",
        "CPU, all nodes",
        total_cpu / std::thread::available_parallelism().map_or(1, |p| p.get()) as f64,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    summary(
        "RSS per node at the end",
        "MB",
        mem.iter().map(|m| m.0 as f64 / 1024.0).collect(),
    );
    summary(
        "peak RSS per node (VmHWM)",
        "MB",
        mem.iter().map(|m| m.1 as f64 / 1024.0).collect(),
    );
    summary(
        "test_generateOneBlock call",
        "ms",
        call_ms.lock().unwrap().clone(),
    );

    for node in nodes.iter() {
        node.signal("TERM");
    }
    let mut nodes = Arc::try_unwrap(nodes).ok().expect("all threads joined");
    for node in &mut nodes {
        assert_eq!(node.wait_exit(Duration::from_secs(10)).code(), Some(0));
    }
    let logs: Vec<logcheck::NodeLog> = nodes.iter().map(|n| logcheck::index(&n.log())).collect();
    let generated = generated.lock().unwrap();
    let mut receive = Vec::new();
    let mut txs = 0u64;
    let mut bytes = 0u64;
    for (hash, &g) in generated.iter() {
        let sent = logs[g].inserted[hash][0];
        let f = &logs[g].facts[hash];
        txs += f.txs.unwrap_or(0);
        bytes += f.size.unwrap_or(0);
        for (i, log) in logs.iter().enumerate() {
            if i != g {
                let got = log.received[hash][0];
                receive.push((got - sent).num_microseconds().unwrap() as f64 / 1000.0);
            }
        }
    }
    summary("block receive latency (precise)", "ms", receive);
    println!(
        "transactions in blocks: {txs} ({:.0} TPS), {:.1} KB per block on average",
        txs as f64 / elapsed,
        bytes as f64 / blocks.max(1) as f64 / 1024.0
    );
    let log_mb: f64 = nodes
        .iter()
        .map(|n| std::fs::metadata(n.dir.join("log/conflux.log")).map_or(0, |m| m.len()))
        .sum::<u64>() as f64
        / 1e6;
    println!("conflux.log written: {log_mb:.1} MB in total");
}
