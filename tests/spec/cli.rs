//! `cfxm validate` and `cfxm schema` as a user runs them.

use super::{cfxm, root};

#[test]
fn every_example_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        seen += 1;
        let rel = format!("examples/{}", path.file_name().unwrap().to_str().unwrap());
        let out = cfxm(&root(), &["validate", "-f", &rel]);
        assert_eq!(out.code, Some(0), "{rel}:\n{}", out.transcript());
        assert!(out.stdout.starts_with("ok: "), "{rel}: {}", out.stdout);
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            first.starts_with("# yaml-language-server: $schema=../schemas/spec.schema.json\n"),
            "{rel} must start with the schema modeline"
        );
    }
    assert!(seen >= 4);
}

#[test]
fn the_10k_example_sums_as_the_original() {
    let out = cfxm(&root(), &["validate", "-f", "examples/aliyun-10k.yaml"]);
    assert_eq!(
        out.stdout,
        "ok: latency-10k, 2 clouds, 9 regions, 10,000 nodes on at most 10,000 hosts\n"
    );
}

#[test]
fn schema_matches_the_checked_in_copy() {
    let out = cfxm(&root(), &["schema"]);
    assert_eq!(out.code, Some(0));
    let checked_in = std::fs::read_to_string(root().join("schemas/spec.schema.json")).unwrap();
    assert!(
        out.stdout == checked_in,
        "schemas/spec.schema.json drifted from the code; run `cargo run -- schema > schemas/spec.schema.json`"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let ok = cfxm(
        &root(),
        &["validate", "-f", "examples/local.yaml", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["nodes"], 12);
    assert_eq!(v["clouds"], serde_json::json!(["local"]));

    let dir = root().join("tests/fixtures/bad-specs");
    let bad = cfxm(
        &dir,
        &["validate", "-f", "several-errors.yaml", "--format", "json"],
    );
    assert_eq!(bad.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let errors = v["errors"].as_array().unwrap();
    assert!(errors.len() >= 5, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e["line"].as_u64().is_some() && e["code"].is_string())
    );
}

#[test]
fn missing_spec_file_says_how_to_pass_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cfxm(tmp.path(), &["validate"]);
    assert_eq!(out.code, Some(1));
    insta::assert_snapshot!(out.transcript(), @r"
    exit: Some(1)
    --- stdout
    --- stderr
    cfxm::spec::read

      × cannot read `cfxm.yaml`: No such file or directory (os error 2)
      help: pass the spec with `-f FILE` (the default is `./cfxm.yaml`); examples are in `examples/`

    error: `cfxm.yaml` has 1 problem
    ");
}

#[test]
fn a_50_mb_file_is_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = String::from("name: demo\nowner: alice\nnotes: |\n");
    let line = "  0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    while big.len() < 50 * 1024 * 1024 {
        big.push_str(line);
    }
    std::fs::write(tmp.path().join("big.yaml"), big).unwrap();
    let started = std::time::Instant::now();
    let out = cfxm(tmp.path(), &["validate", "-f", "big.yaml"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("a spec is at most 4,194,304 bytes"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let out = cfxm(&root(), &["validate", "--no-such-flag"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("--no-such-flag"));
    let help = cfxm(&root(), &["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("validate"));
}
