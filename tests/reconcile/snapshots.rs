//! Plan snapshots (text, markdown, json) for a small spec and a 10,000-node spec against an
//! empty emulated cloud; the JSON validated by `schemas/plan.schema.json`, which must match the
//! code.

use super::{World, quick_boot, spec_yaml};

/// The original tool's 10,000-node template, Aliyun part: 9,950 nodes in 8 regions.
const TEN_K: &str = "name: latency-10k
owner: alice
cloud:
  aliyun:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: ecs.g8i.2xlarge, nodes_per_host: 1, hourly_cost_usd: 0.52 }
      - { name: ecs.g9i.2xlarge, nodes_per_host: 1, hourly_cost_usd: 0.55 }
      - { name: ecs.g7.2xlarge, nodes_per_host: 1, hourly_cost_usd: 0.50 }
    regions:
      - { name: cn-hongkong, nodes: 1600 }
      - { name: ap-southeast-1, nodes: 1800 }
      - { name: ap-northeast-2, nodes: 1500 }
      - { name: ap-southeast-3, nodes: 1500 }
      - { name: ap-southeast-5, nodes: 1500 }
      - { name: ap-southeast-7, nodes: 1500 }
      - { name: me-east-1, nodes: 530 }
      - { name: ap-southeast-6, nodes: 20 }
placement: { max_hosts_per_call: 100, backfill: true }
limits: { max_hosts: 10000, max_hourly_cost_usd: 6000 }
";

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![(r#""created_at": "[^"]+""#, r#""created_at": "[TIME]""#)]
}

fn validate(json: &str) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut bad = doc.clone();
    bad["changes"][0]["action"] = serde_json::json!("explode");
    assert!(
        !validator.is_valid(&bad),
        "the schema is strict enough to catch a bad action"
    );
}

async fn snapshot_all(w: &World, name: &str, spec: &std::path::Path) -> String {
    let mut text = String::new();
    for format in ["text", "markdown", "json"] {
        let out = w.run("plan", spec, &["--format", format]).await.ok();
        if format == "json" {
            validate(&out.stdout);
        }
        if format == "text" {
            text = out.stdout.clone();
        }
        insta::with_settings!({ filters => filters() }, {
            insta::assert_snapshot!(format!("{name}_{format}"), out.stdout);
        });
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_of_a_small_spec() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec(
        "small",
        &spec_yaml(
            "small",
            "alice",
            &[
                ("ap-southeast-1", 3, &[]),
                ("cn-hongkong", 2, &["cn-hongkong-b"]),
            ],
            "",
        ),
    );
    snapshot_all(&w, "small", &spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_node_plan_fits_a_screen() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec("latency-10k", TEN_K);
    let text = snapshot_all(&w, "ten_thousand", &spec).await;
    assert!(text.contains("Plan: 10,"), "{text}");
    let lines = text.lines().count();
    assert!(lines <= 80, "{lines} lines");
}

#[test]
fn the_checked_in_plan_schema_matches_the_code() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cfxm"))
        .args(["schema", "--plan"])
        .output()
        .unwrap();
    let checked_in = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json"),
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == checked_in,
        "schemas/plan.schema.json drifted from the code; run `cargo run -- schema --plan > schemas/plan.schema.json`"
    );
}
