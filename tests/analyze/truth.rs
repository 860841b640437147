//! Recovered figures against the fixture's ground truth.

use cfxm::analyze::fixture::{FixtureSpec, Truth};
use cfxm::analyze::{Compression, Report, Summary};

use super::{analyze, run_dir};

const PCT: [f64; 8] = [10.0, 30.0, 50.0, 80.0, 90.0, 95.0, 99.0, 99.9];

/// Linear-interpolation quantile, written independently of the analyzer.
fn linear(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
}

fn mean2(v: &[f64]) -> f64 {
    (v.iter().sum::<f64>() / v.len() as f64 * 100.0).round() / 100.0
}

/// The truth's headline Receive rows: per block Min, Avg, P…, Max across nodes, then the
/// across-block Avg, P…, Max of each.
fn truth_rows(truth: &Truth, pct: &[f64]) -> Vec<(String, Vec<f64>)> {
    let mut per_block: Vec<Vec<f64>> = truth.receive_latencies();
    for b in &mut per_block {
        b.sort_by(f64::total_cmp);
    }
    let mut labels = vec!["Min".to_string(), "Avg".to_string()];
    labels.extend(
        pct.iter()
            .map(|p| format!("P{}", format!("{p}").replace('.', ""))),
    );
    labels.push("Max".into());
    let mut rows = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let mut vals: Vec<f64> = per_block
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| match i {
                0 => b[0],
                1 => mean2(b),
                _ if i == labels.len() - 1 => b[b.len() - 1],
                _ => linear(b, pct[i - 2] / 100.0),
            })
            .collect();
        vals.sort_by(f64::total_cmp);
        let mut cols = vec![mean2(&vals)];
        cols.extend(pct.iter().map(|p| linear(&vals, p / 100.0)));
        cols.push(vals[vals.len() - 1]);
        rows.push((format!("block broadcast latency (Receive/{label})"), cols));
    }
    rows
}

fn cols(s: &Summary) -> Vec<f64> {
    let mut v = vec![s.avg.unwrap()];
    v.extend(s.percentiles.iter().map(|x| x.unwrap()));
    v.push(s.max.unwrap());
    v
}

fn row<'a>(report_rows: &'a [cfxm::analyze::TableRow], name: &str) -> &'a Summary {
    report_rows
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| r.summary.as_ref())
        .unwrap_or_else(|| panic!("no row `{name}`"))
}

/// Every cell of every Receive row within 1 ms of the truth. Avg cells are means rounded to 0.01
/// by definition (the original's), so they may sit one rounding step apart.
fn assert_receive_matches(report: &Report, truth: &Truth, pct: &[f64]) {
    for (name, want) in truth_rows(truth, pct) {
        let got = cols(row(&report.headline.rows, &name));
        assert_eq!(got.len(), want.len());
        let rounded_row = name.ends_with("/Avg)");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let rounded = rounded_row || i == 0;
            let tol = if rounded { 0.01 + 1e-9 } else { 0.001 };
            assert!(
                (g - w).abs() <= tol,
                "{name} column {i}: got {g}, truth {w} (tolerance {tol})"
            );
        }
    }
}

fn spec() -> FixtureSpec {
    FixtureSpec {
        nodes: 24,
        blocks: 60,
        seed: 11,
        regions: vec![
            "ap-southeast-1".into(),
            "cn-hongkong".into(),
            "me-east-1".into(),
        ],
        inter_region_ms: 60.0,
        ..FixtureSpec::default()
    }
}

#[test]
fn receive_latency_equals_the_truth_at_every_percentile() {
    let spec = spec();
    let (dir, truth) = run_dir(&spec);
    for pct in [&PCT[..], &[50.0, 99.0, 99.99]] {
        let report = analyze(dir.path(), pct);
        assert_eq!(report.nodes, 24);
        assert_eq!(report.headline.blocks, 60);
        assert_receive_matches(&report, &truth, pct);
    }

    // Per block, too: the coverage entries carry P50, P90 and Max of each block.
    let report = analyze(dir.path(), &PCT);
    for (b, t) in report.coverage.blocks.iter().zip(&truth.blocks) {
        assert_eq!(b.hash, t.hash);
        assert_eq!(
            b.generator.as_deref(),
            Some(truth.node_names[t.generator].as_str())
        );
        let mut lat: Vec<f64> = t
            .receive_ns
            .iter()
            .flatten()
            .map(|r| (r - t.generated_ns) as f64 / 1e9)
            .collect();
        lat.sort_by(f64::total_cmp);
        assert!((b.receive_p50.unwrap() - linear(&lat, 0.5)).abs() <= 0.001);
        assert!((b.receive_p90.unwrap() - linear(&lat, 0.9)).abs() <= 0.001);
        assert!((b.receive_max.unwrap() - lat[lat.len() - 1]).abs() <= 0.001);
        assert_eq!(
            b.nodes_received, 23,
            "the generator does not receive its block"
        );
        assert_eq!(b.nodes_synced, 24);
    }

    // Pooled over every (block, node): each CDF point sits on the truth's distribution.
    let mut pooled: Vec<f64> = truth.receive_latencies().concat();
    pooled.sort_by(f64::total_cmp);
    for [x, frac] in &report.distributions.receive {
        let k = (frac * pooled.len() as f64).round() as usize - 1;
        assert!(
            (x - pooled[k]).abs() <= 0.001,
            "CDF at {frac}: {x} vs {}",
            pooled[k]
        );
    }

    // Groups come from the fixture's hosts.json regions.
    let groups: Vec<&str> = report.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(groups, ["ap-southeast-1", "cn-hongkong", "me-east-1"]);
    assert_eq!(report.groups.iter().map(|g| g.nodes).sum::<u64>(), 24);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn the_header_method_shows_its_whole_second_bias() {
    let (dir, truth) = run_dir(&spec());
    let report = analyze(dir.path(), &PCT);
    let offsets: Vec<f64> = truth
        .blocks
        .iter()
        .map(|b| b.generated_ns as f64 / 1e9 - b.header_timestamp as f64)
        .collect();
    assert!(offsets.iter().all(|o| (0.0..1.0).contains(o)));
    let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
    assert!(
        mean > 0.2,
        "the fixture's blocks are spread over the second"
    );
    // The report's per-block bias is the truth's.
    let bias = &report.bias.per_block;
    assert!(
        (bias.avg.unwrap() - mean).abs() <= 0.01,
        "{bias:?} vs {mean}"
    );
    assert!(bias.max.unwrap() < 1.0);
    // Header-method Receive is log-time Receive plus the bias, row for row.
    for q in ["P10", "P50", "P90", "Max"] {
        let name = format!("block broadcast latency (Receive/{q})");
        let header = row(&report.original.table.rows, &name).avg.unwrap();
        let precise = row(&report.headline.rows, &name).avg.unwrap();
        assert!(
            (header - precise - mean).abs() <= 0.03,
            "{name}: header {header} − log time {precise} should be ≈ {mean}"
        );
    }
    assert!((report.bias.receive.avg.unwrap() - mean).abs() <= 0.02);
    // The original's Sync/Min is the generator itself: pure bias (the 2020 sample's 0.53 s).
    let sync_min = row(
        &report.original.table.rows,
        "block broadcast latency (Sync/Min)",
    );
    assert!((sync_min.avg.unwrap() - mean).abs() <= 0.02);
    let precise_sync_min = row(&report.headline.rows, "block broadcast latency (Sync/Min)");
    assert_eq!(precise_sync_min.max, Some(0.0));
}

#[test]
fn blocks_missing_on_some_nodes_are_counted_not_dropped() {
    let mut spec = spec();
    // Node 3 misses blocks 5..=10 (a restart); node 7 misses block 2; block 20's generator line
    // is lost (its generator misses it).
    let (_, probe) = run_dir(&FixtureSpec {
        compression: Compression::Plain,
        ..spec.clone()
    });
    let gen20 = probe.blocks[20].generator;
    spec.missing = (5..=10).map(|b| (3, b)).collect();
    spec.missing.push((7, 2));
    spec.missing.push((gen20, 20));
    let (dir, truth) = run_dir(&spec);
    let report = analyze(dir.path(), &PCT);
    let cov = &report.coverage;
    assert_eq!(cov.blocks_seen, 60);
    let incomplete = 8;
    assert_eq!(cov.blocks_incomplete, incomplete);
    assert_eq!(cov.blocks_complete, 60 - incomplete);
    assert_eq!(cov.blocks_without_generator, 1);
    assert_eq!(report.headline.blocks, 59);
    let node3 = &cov.nodes[3];
    assert_eq!(node3.node, truth.node_names[3]);
    assert_eq!(node3.blocks_synced, 54 - u64::from(gen20 == 3));
    assert_eq!(cov.nodes[7].blocks_synced, 59 - u64::from(gen20 == 7));
    let b5 = &cov.blocks[5];
    assert_eq!(b5.nodes_synced, 23);
    // Percentiles use the nodes that saw each block and still equal the truth.
    assert_receive_matches(&report, &truth, &PCT);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("not inserted by every node")),
        "{:?}",
        report.warnings
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("no generator line"))
    );
    let text = cfxm::analyze::render_text(&report);
    assert!(text.contains(&format!(
        "{incomplete} missing on some nodes (counted; their percentiles use the nodes that logged them)"
    )));
}

#[test]
fn compressed_logs_give_the_same_report() {
    let base = FixtureSpec {
        nodes: 6,
        blocks: 15,
        ..FixtureSpec::default()
    };
    let (plain_dir, _) = run_dir(&base);
    let plain = analyze(plain_dir.path(), &PCT);
    for c in [Compression::Gzip, Compression::Zstd] {
        let (dir, _) = run_dir(&FixtureSpec {
            compression: c,
            ..base.clone()
        });
        let r = analyze(dir.path(), &PCT);
        assert_eq!(
            cfxm::analyze::render_original_table(&r),
            cfxm::analyze::render_original_table(&plain),
            "{c:?}"
        );
        assert_eq!(
            serde_json::to_value(&r.headline).unwrap(),
            serde_json::to_value(&plain.headline).unwrap()
        );
        assert!(
            r.input.disk_bytes < plain.input.disk_bytes / 3,
            "{c:?} compresses"
        );
        assert_eq!(r.input.bytes, plain.input.bytes);
    }
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let (dir, _) = run_dir(&FixtureSpec {
        nodes: 4,
        blocks: 5,
        ..FixtureSpec::default()
    });
    let log = dir.path().join("logs/10.1.0.2-0/conflux.log");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("2026-03-04T09:00:00.000000000+00:00 DEBUG x [1] y - new block received: block_header=BlockHeader { hash: Some(0x12) }\n");
    text.push_str("not a timestamp - Statistics: nothing\n");
    text.push_str("2026-03-04T09:00:01.000000000+00:00 DEBUG x [1] y - insert new block into consensus: header_only=false block=BlockHeader { rlp_part: BlockHe");
    std::fs::write(&log, text).unwrap();
    let report = analyze(dir.path(), &PCT);
    assert_eq!(report.input.malformed_lines, 3);
    let w = report
        .warnings
        .iter()
        .find(|w| w.contains("malformed"))
        .expect("a warning");
    assert!(
        w.contains("3 malformed line(s)") && w.contains("block hash"),
        "{w}"
    );
    assert!(report.warnings.iter().any(|w| w.contains("cut short")));
    assert_eq!(report.coverage.blocks_seen, 5);
}

#[test]
fn a_skewed_clock_is_named() {
    let (dir, truth) = run_dir(&FixtureSpec {
        nodes: 6,
        blocks: 12,
        clock_skew_ms: vec![(2, -400.0)],
        ..FixtureSpec::default()
    });
    let report = analyze(dir.path(), &PCT);
    let w = report
        .warnings
        .iter()
        .find(|w| w.contains("clocks are skewed"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(
        w.starts_with("1 node(s)") && w.contains(&truth.node_names[2]),
        "{w}"
    );
}

#[test]
fn a_cut_compressed_log_is_reported_and_what_it_holds_is_kept() {
    let (dir, truth) = run_dir(&FixtureSpec {
        nodes: 5,
        blocks: 80,
        compression: Compression::Zstd,
        ..FixtureSpec::default()
    });
    let path = dir
        .path()
        .join("logs")
        .join(&truth.node_names[1])
        .join("conflux.log.zst");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let report = analyze(dir.path(), &PCT);
    let cut = &report.coverage.nodes[1];
    assert!(cut.unreadable);
    assert!(
        cut.blocks_synced > 0 && cut.blocks_synced < 80,
        "what was read before the cut is kept: {cut:?}"
    );
    assert!(!report.coverage.nodes[0].unreadable);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("log unreadable past byte")),
        "{:?}",
        report.warnings
    );
    assert_eq!(report.nodes, 5);
    assert_eq!(report.coverage.blocks_seen, 80);
}

#[test]
fn max_blocks_keeps_the_earliest() {
    let (dir, truth) = run_dir(&FixtureSpec {
        nodes: 4,
        blocks: 12,
        ..FixtureSpec::default()
    });
    let opts = cfxm::analyze::AnalyzeOptions {
        max_blocks: Some(5),
        ..Default::default()
    };
    let report = cfxm::analyze::analyze_run(dir.path(), &opts).unwrap();
    assert_eq!(report.coverage.blocks_seen, 5);
    assert_eq!(report.original.blocks, 5);
    let hashes: Vec<&str> = report
        .coverage
        .blocks
        .iter()
        .map(|b| b.hash.as_str())
        .collect();
    let want: Vec<&str> = truth.blocks[..5].iter().map(|b| b.hash.as_str()).collect();
    assert_eq!(hashes, want);
}
