//! The generated `conflux.toml` for 1, 10 and 10,000 nodes with the spec's defaults: the
//! original's keys, in its groups, with its N-dependent formulas (original-tool.md §2.1).

use cfxm::stages::config::{ConfluxConfig, txgen_account_count};

use crate::{load, spec_text};

fn config_for(nodes: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let spec = load(&spec_text(&[("ap-southeast-1", nodes)], 1, ""), dir.path());
    ConfluxConfig::for_spec(&spec, u64::from(nodes)).render()
}

#[test]
fn one_node() {
    insta::assert_snapshot!(config_for(1));
}

#[test]
fn ten_nodes() {
    insta::assert_snapshot!(config_for(10));
}

#[test]
fn ten_thousand_nodes() {
    let text = config_for(10_000);
    // The formulas, stated once more outside the snapshot.
    assert!(text.contains("\ngenerate_tx_period_us=588235\n"));
    assert!(text.contains(&format!(
        "\ntxgen_account_count={}\n",
        txgen_account_count(10_000)
    )));
    assert!(text.contains("\nmax_outgoing_peers=80\n"));
    insta::assert_snapshot!(text);
}

#[test]
fn overrides_from_the_spec_and_the_plan_diff() {
    let dir = tempfile::tempdir().unwrap();
    let spec = load(
        &spec_text(
            &[("ap-southeast-1", 10)],
            1,
            "node:\n  config: { log_level: trace, metrics_report_interval_ms: 500 }\n\
             experiment:\n  transactions: { tps: 1000 }\n",
        ),
        dir.path(),
    );
    let base = config_for(10);
    let new = ConfluxConfig::for_spec(&spec, 10).render();
    insta::assert_snapshot!(cfxm::stages::config::diff(&base, &new));
}
