//! Six devnodes: readiness, node-id recovery, a ring plus random edges dialled from both ends,
//! 100 blocks on random nodes (some at once, to fork the DAG), convergence, exactly-once
//! logging per stage, and a clean SIGTERM.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::harness;
use super::logcheck::{self, NodeLog};

const N: usize = 6;
const BLOCKS: usize = 100;

/// Ring i–(i+1), then random distinct neighbours until every degree reaches `peers` (the
/// original tool's topology generator).
fn topology(n: usize, peers: usize, seed: u64) -> BTreeSet<(usize, usize)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut edges = BTreeSet::new();
    for i in 0..n {
        edges.insert((i.min((i + 1) % n), i.max((i + 1) % n)));
    }
    let degree =
        |e: &BTreeSet<(usize, usize)>, i| e.iter().filter(|(a, b)| *a == i || *b == i).count();
    for i in 0..n {
        let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        others.shuffle(&mut rng);
        for j in others {
            if degree(&edges, i) >= peers {
                break;
            }
            edges.insert((i.min(j), i.max(j)));
        }
    }
    edges
}

#[test]
fn six_nodes_gossip_every_block_to_every_node_and_log_it_once_per_stage() {
    let root = tempfile::tempdir().unwrap();
    let secrets = harness::write_secrets(root.path(), 1000);
    let mut nodes = harness::start(root.path(), N, &secrets, "");
    // Every node is up by now (they start one after another).
    let started = std::time::Instant::now();

    // Node ids are distinct, and each is what peers see after the handshake.
    let ids: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), N);

    let edges = topology(N, 3, 42);
    for &(a, b) in &edges {
        harness::connect(&nodes, a, b);
    }
    let mut neighbours: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(a, b) in &edges {
        neighbours.entry(a).or_default().push(b);
        neighbours.entry(b).or_default().push(a);
    }
    for (i, node) in nodes.iter().enumerate() {
        let want: Vec<&str> = neighbours[&i]
            .iter()
            .map(|&j| nodes[j].id.as_str())
            .collect();
        harness::wait_peers(node, &want);
    }
    // Both ends dialled every edge; each node keeps exactly one session per neighbour.
    std::thread::sleep(Duration::from_millis(300));
    for (i, node) in nodes.iter().enumerate() {
        let info = node.ok("test_getPeerInfo", None);
        let shown: BTreeSet<String> = info
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["nodeid"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = neighbours[&i]
            .iter()
            .map(|&j| nodes[j].id.clone())
            .collect();
        assert_eq!(shown, want, "node {i}: one session per neighbour");
        assert_eq!(info.as_array().unwrap().len(), want.len());
    }

    // All on genesis, then transactions from disjoint account ranges.
    harness::wait_converged(&nodes, 1, Duration::from_secs(10));
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.ok("test_sendUsableGenesisAccounts", Some(json!([i * 20]))),
            json!("0x31")
        );
    }
    std::thread::sleep(Duration::from_millis(600));

    // 100 blocks on random nodes; every tenth round fires three nodes at once.
    let mut rng = rand::rng();
    let mut generated: HashMap<String, usize> = HashMap::new();
    while generated.len() < BLOCKS {
        if generated.len() % 10 == 9 && generated.len() + 3 <= BLOCKS {
            let mut picks: Vec<usize> = (0..N).collect();
            picks.shuffle(&mut rng);
            std::thread::scope(|s| {
                let handles: Vec<_> = picks[..3]
                    .iter()
                    .map(|&i| {
                        let node = &nodes[i];
                        s.spawn(move || {
                            (
                                i,
                                node.ok(
                                    "test_generateOneBlock",
                                    Some(json!([10_000_000, 460_800])),
                                ),
                            )
                        })
                    })
                    .collect();
                for h in handles {
                    let (i, hash) = h.join().unwrap();
                    generated.insert(hash.as_str().unwrap().to_owned(), i);
                }
            });
        } else {
            let i = rng.random_range(0..N);
            let hash = nodes[i].ok("test_generateOneBlock", Some(json!([10_000_000, 460_800])));
            let hash = hash.as_str().unwrap().to_owned();
            assert!(
                hash.len() == 66
                    && hash[2..]
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "^0x[0-9a-f]{{64}}$: {hash}"
            );
            generated.insert(hash, i);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
    }
    let best = harness::wait_converged(&nodes, BLOCKS as u64 + 1, Duration::from_secs(30));
    assert!(generated.contains_key(&best) || best.len() == 66);
    let epoch = nodes[0].ok("cfx_epochNumber", None);
    for n in &nodes {
        assert_eq!(
            n.ok("cfx_epochNumber", Some(json!(["latest_mined"]))),
            epoch
        );
        let status = n.ok("cfx_getStatus", None);
        assert_eq!(status["bestHash"], json!(best));
        assert_eq!(status["blockNumber"], json!(format!("{:#x}", BLOCKS + 1)));
    }
    let goodput = nodes[0].ok("test_getGoodPut", None);
    assert!(goodput.as_str().unwrap().starts_with("full: ") || goodput == json!("-1"));

    // Let every node write its 5-second Statistics line, then SIGTERM: each node flushes and
    // exits 0 within a few seconds.
    std::thread::sleep(Duration::from_millis(5500).saturating_sub(started.elapsed()));
    for n in &nodes {
        n.signal("TERM");
    }
    for n in &mut nodes {
        let st = n.wait_exit(Duration::from_secs(5));
        assert_eq!(st.code(), Some(0), "node {} exit", n.index);
    }

    let logs: Vec<NodeLog> = nodes.iter().map(|n| logcheck::index(&n.log())).collect();
    let mut tx_total = 0;
    for (i, log) in logs.iter().enumerate() {
        for (hash, &generator) in &generated {
            let count = |m: &HashMap<String, Vec<_>>| m.get(hash).map_or(0, Vec::len);
            assert_eq!(count(&log.inserted), 1, "node {i}: inserted {hash} once");
            assert_eq!(count(&log.consensus), 1, "node {i}: consensus {hash} once");
            let received = if i == generator { 0 } else { 1 };
            assert_eq!(count(&log.received), received, "node {i}: received {hash}");
            assert_eq!(
                log.events.get(hash).map_or(0, Vec::len),
                1,
                "node {i}: one event record"
            );
            let keys = &log.events[hash][0];
            assert!(
                keys.starts_with(
                    "hash,start_timestamp,header_ready,body_ready,sync_graph,\
                     consensys_graph_insert,consensys_graph_ready"
                ),
                "{keys}"
            );
        }
        // Every block the node logged is one of ours (no genesis line, nothing extra).
        assert_eq!(log.inserted.len(), BLOCKS, "node {i}");
        assert_eq!(
            log.ratios,
            BLOCKS - generated.values().filter(|&&g| g == i).count()
        );
        // Consensus follows the sync graph; both follow the receipt.
        for (hash, t) in &log.inserted {
            assert!(log.consensus[hash][0] >= t[0]);
            if let Some(r) = log.received.get(hash) {
                assert!(t[0] >= r[0]);
            }
        }
        assert!(
            !log.statistics.is_empty(),
            "node {i}: a Statistics line every 5 s"
        );
        for l in &log.lines {
            match l.kind {
                Some("inserted" | "received" | "ratio") => assert_eq!(l.target, "cfxcore::syn"),
                Some("consensus") => assert_eq!(l.target, "cfxcore::con"),
                Some("statistics") => assert_eq!(l.target, "cfxcore::sta"),
                _ => {}
            }
        }
        let last = log.lines.last().unwrap();
        assert!(
            last.msg.contains("shut down"),
            "node {i} ends with its shutdown line"
        );
        tx_total += log.facts.values().map(|f| f.txs.unwrap()).sum::<u64>();
    }

    // What the analysis derives per block is the same on every node.
    for hash in generated.keys() {
        let facts: Vec<_> = logs.iter().map(|l| l.facts[hash].clone()).collect();
        assert!(facts.iter().all(|f| *f == facts[0]), "{hash}");
        let f = &facts[0];
        let gen_time = logs[generated[hash]].inserted[hash][0];
        assert!(
            f.timestamp <= gen_time.timestamp() as u64,
            "header time is whole seconds"
        );
        assert!(f.timestamp + 2 >= gen_time.timestamp() as u64);
        if let Some(parent) = generated.keys().find(|h| **h == f.parent) {
            let p = &logs[0].facts[parent];
            assert_eq!(f.height, p.height + 1);
            assert!(f.timestamp >= p.timestamp);
        }
        assert!(f.size.unwrap() <= 460_800);
    }
    assert!(tx_total > 0, "blocks carry generated transactions");
    assert!(
        logs.iter()
            .any(|l| l.facts.values().any(|f| !f.referees.is_empty())),
        "concurrent blocks give the DAG referees"
    );
    // Sampled transactions: seen in pools, and packed by generators.
    let sampled: Vec<&(String, String)> = logs.iter().flat_map(|l| &l.sampled).collect();
    assert!(sampled.iter().any(|(_, how)| how == "in tx pool"));
    assert!(sampled.iter().any(|(_, how)| how == "in packing block"));

    let re = regex::Regex::new(r"^\d{13}, [0-9a-z_]+, Group, \{[^}]+\}$").unwrap();
    for n in &nodes {
        let metrics = n.metrics();
        assert!(metrics.ends_with('\n'));
        assert!(metrics.lines().all(|l| re.is_match(l)), "{metrics}");
        assert!(metrics.contains("system_metrics, Group, {good_tps.count: "));
        assert!(metrics.contains("inflight_tx_pool_size: "));
        assert!(metrics.contains("txpool, Group, {stat_unpacked_txs: "));
        assert!(metrics.contains("stat_ready_accounts: "));
    }
}
