//! `cfxm report` as a user runs it, the original's exact table layout, and `report.json` against
//! its checked-in schema.

use cfxm::analyze::fixture::FixtureSpec;

use super::{analyze, cfxm, root, run_dir};

/// A small run whose numbers are fixed by its seed.
fn small() -> FixtureSpec {
    FixtureSpec {
        nodes: 5,
        blocks: 8,
        seed: 3,
        ..FixtureSpec::default()
    }
}

#[test]
fn the_original_table_layout_is_exact() {
    let (dir, _) = run_dir(&small());
    let report = analyze(dir.path(), &[50.0, 90.0, 99.0]);
    let table = cfxm::analyze::render_original_table(&report);

    // Title row, percentile set and order, whatever the spec's percentiles are.
    let title = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = title
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "name_tmp", "Avg", "P10", "P30", "P50", "P80", "P90", "P95", "P99", "P999", "Max",
            "Cnt"
        ]
    );
    // Row names and order, blank rows included.
    let names: Vec<String> = table
        .lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim().to_string())
        .collect();
    let qs = [
        "Min", "Avg", "P10", "P30", "P50", "P80", "P90", "P95", "P99", "P999", "Max",
    ];
    let mut want: Vec<String> = Vec::new();
    for kind in ["Receive", "Sync", "Cons"] {
        want.extend(
            qs.iter()
                .map(|q| format!("block broadcast latency ({kind}/{q})")),
        );
        want.push(String::new());
    }
    for stage in [
        "HeaderReady",
        "BodyReady",
        "SyncGraph",
        "ConsensusGraphStart",
        "ConsensusGraphReady",
        "ComputeEpoch",
        "NotifyTxPool",
        "TxPoolUpdated",
    ] {
        want.extend(
            qs.iter()
                .map(|q| format!("block event elapsed ({stage}/{q})")),
        );
        want.push(String::new());
    }
    for custom in ["ConWorkerQueue", "SyncToCon0", "SyncToCon1"] {
        want.extend(
            qs.iter()
                .map(|q| format!("custom block event elapsed ({custom}/{q})")),
        );
        want.push(String::new());
    }
    want.extend(qs.iter().map(|q| format!("tx broadcast latency ({q})")));
    want.push(String::new());
    want.extend(
        qs.iter()
            .map(|q| format!("tx packed to block latency ({q})")),
    );
    want.push(String::new());
    for n in [
        "min tx packed to block latency",
        "min tx to ready pool latency",
        "by_block_ratio",
        "Tx wait to be packed elasped time",
        "block txs",
        "block size",
        "block referees",
        "block generation interval",
        "node sync/cons gap (Avg)",
        "node sync/cons gap (P50)",
        "node sync/cons gap (P90)",
        "node sync/cons gap (P99)",
        "node sync/cons gap (Max)",
    ] {
        want.push(n.to_string());
    }
    assert_eq!(names, want);

    // And the whole thing, numbers and rules included.
    let mut text = cfxm::analyze::render_text(&report);
    let start = text.find("Original report").unwrap();
    text = text[start..].to_string();
    insta::assert_snapshot!("original_layout", text);
}

#[test]
fn report_json_matches_its_schema_and_the_schema_is_current() {
    let checked_in = std::fs::read_to_string(root().join("schemas/report.schema.json")).unwrap();
    assert_eq!(
        checked_in,
        cfxm::analyze::json_schema_text(),
        "schemas/report.schema.json drifted from the code; run `cargo run -- schema --report > schemas/report.schema.json`"
    );
    let (code, stdout, _) = cfxm(&root(), &["schema", "--report"]);
    assert_eq!((code, stdout.as_str()), (Some(0), checked_in.as_str()));

    let schema: serde_json::Value = serde_json::from_str(&checked_in).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (dir, _) = run_dir(&FixtureSpec {
        missing: vec![(1, 2)],
        ..small()
    });
    let report = analyze(dir.path(), &[50.0, 99.9]);
    let doc: serde_json::Value =
        serde_json::from_str(&cfxm::analyze::render_json(&report)).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema is strict enough to catch a wrong document.
    let mut bad = doc.clone();
    bad["coverage"]["blocks_seen"] = serde_json::json!("eight");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn cfxm_report_prints_and_writes_every_file() {
    let (dir, _) = run_dir(&FixtureSpec {
        regions: vec!["ap-southeast-1".into(), "me-east-1".into()],
        ..small()
    });
    let run = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = cfxm(&root(), &["report", run, "--percentiles", "50,90,99"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("cfxm report: 5 nodes, 8 blocks (8 on every node)"),
        "{stdout}"
    );
    let headline = stdout.find("log-time latency (s)").unwrap();
    let original = stdout.find("name_tmp").unwrap();
    assert!(headline < original, "the headline comes first");
    assert!(
        stdout.contains(
            "| log-time latency (s)                  | Avg  | P50  | P90  | P99  | Max  | Cnt |"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("Receive latency by node group"));
    assert!(stderr.contains("wrote 9 files"), "{stderr}");
    for f in ["report.txt", "report.json", "report.md"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.txt")).unwrap(),
        stdout
    );
    for p in ["latency_cdf", "latency_by_group", "propagation"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("plots/{p}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{p}.svg");
        let png = std::fs::read(dir.path().join(format!("plots/{p}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{p}.png");
        assert!(png.len() > 5000, "{p}.png has content");
    }

    let (code, stdout, _) = cfxm(&root(), &["report", run, "--format", "json", "--no-write"]);
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["nodes"], 5);
    assert_eq!(doc["headline"]["method"], "generator-log-time");
    assert_eq!(doc["original"]["table"]["method"], "header-timestamp");

    let (code, stdout, _) = cfxm(
        &root(),
        &["report", run, "--format", "markdown", "--no-write"],
    );
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("## cfxm latency report\n"));
    assert!(stdout.contains("| `Receive/P50` |"), "{stdout}");
}

#[test]
fn bad_runs_fail_with_one_clear_error_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (code, stdout, stderr) = cfxm(&root(), &["report", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    insta::assert_snapshot!(
        "missing_run_dir",
        stderr.replace(missing.to_str().unwrap(), "[RUN_DIR]")
    );

    // Logs without any analysis line: the node logged at INFO.
    let node = dir.path().join("logs/10.0.0.1-0");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(
        node.join("conflux.log"),
        "2026-03-04T08:53:44.1+00:00 INFO  main                 [1       ] conflux      - Starting\n",
    )
    .unwrap();
    let run = dir.path().to_str().unwrap();
    let (code, _, stderr) = cfxm(&root(), &["report", run]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("hold no block lines") && stderr.contains("log_level"),
        "{stderr}"
    );
    assert!(!dir.path().join("report.txt").exists());

    let (code, _, stderr) = cfxm(&root(), &["report", run, "--percentiles", "0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("outside (0, 100]"), "{stderr}");
}
