//! An apply against a cloud that throttles 30 % of calls and fails one in ten with a 5xx still
//! converges to exact counts: throttling is paced and retried in place, never burning a
//! placement candidate; server errors are retried with the same client token.

use cfxm::emulator::Knobs;

use super::{World, live_instances, spec_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_still_converge_to_exact_counts() {
    let w = World::start(Knobs {
        // The figures: 30 % of calls throttled, 10 % failing with a 5xx.
        throttle_probability: 0.3,
        error_rate: 0.1,
        ..super::quick_boot()
    })
    .await;
    let spec = w.spec(
        "faults",
        &spec_yaml(
            "faults",
            "alice",
            &[("ap-southeast-1", 8, &[]), ("cn-hongkong", 6, &[])],
            "placement: { max_hosts_per_call: 2 }\n",
        ),
    );
    let out = w
        .run(
            "apply",
            &spec,
            &["--only", "infra", "--auto-approve", "--rate-scale", "8"],
        )
        .await;
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    let hosts = live_instances(&w, "alice", "faults");
    assert_eq!(
        hosts
            .iter()
            .filter(|h| h.region == "ap-southeast-1")
            .count(),
        8
    );
    assert_eq!(
        hosts.iter().filter(|h| h.region == "cn-hongkong").count(),
        6
    );
    assert_eq!(
        w.tagged("instance", "alice", "faults").len(),
        14,
        "no duplicates"
    );
    assert_eq!(w.tagged("vpc", "alice", "faults").len(), 2);
    assert_eq!(w.tagged("security_group", "alice", "faults").len(), 2);

    let calls = w.emu.calls();
    let throttled = calls
        .iter()
        .filter(|c| c.code.as_deref().is_some_and(|k| k.contains("Throttling")))
        .count();
    let server = calls.iter().filter(|c| c.status >= 500).count();
    let share = throttled as f64 / calls.len() as f64;
    eprintln!(
        "{} calls: {throttled} throttled ({:.0} %), {server} with a 5xx",
        calls.len(),
        share * 100.0
    );
    // Binomial over ~200 calls: 0.3 with a sigma of about 3.3 points; 0.18 is over 3.5 sigma.
    assert!(
        share >= 0.18,
        "only {:.0} % throttled: the test lost its teeth",
        share * 100.0
    );
    assert!(server >= 1, "no 5xx was injected");

    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
}
