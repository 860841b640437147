//! A child `cfxm apply` killed with SIGKILL at several points (a VPC being created, a
//! RunInstances in flight, hosts half placed), then applied again: exact counts and no
//! duplicate in the emulator's world. Every API call takes 150 ms so each point is reached
//! with the call still in flight.

use std::path::Path;
use std::time::{Duration, Instant};

use cfxm::emulator::Knobs;
use cfxm::state::JournalLog;

use super::{FAST, World, live_instances, spec_yaml};

/// Whether the journal holds an intent of `action` without an outcome.
fn pending(journal: &Path, action: &str) -> bool {
    JournalLog::read(journal).is_ok_and(|log| {
        log.pending_intents()
            .iter()
            .any(|p| p.intent.action == action)
    })
}

/// Runs `cfxm apply` and kills it with SIGKILL as soon as `when` holds; `false` if the apply
/// ended first.
async fn kill_apply_when(w: &World, spec: &Path, when: impl Fn() -> bool) -> bool {
    let mut args = vec!["apply", "-f", spec.to_str().unwrap()];
    args.extend(FAST);
    args.extend(["--only", "infra", "--auto-approve"]);
    let mut child = w
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if when() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the apply hangs"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_at_several_points_resumes_to_exact_counts_without_duplicates() {
    let w = World::start(Knobs {
        latency_ms: 150,
        ..super::quick_boot()
    })
    .await;
    let spec = w.spec(
        "crash",
        &spec_yaml(
            "crash",
            "alice",
            &[
                ("ap-southeast-1", 6, &[]),
                ("cn-hongkong", 6, &["cn-hongkong-b"]),
            ],
            "placement: { max_hosts_per_call: 2 }\n",
        ),
    );
    let journal = w.path().join("state/crash/journal.jsonl");
    let hosts_json = w.path().join("state/crash/hosts.json");

    // 1. While the first VPC is being created.
    assert!(kill_apply_when(&w, &spec, || pending(&journal, "CreateVpc")).await);
    // 2. With a RunInstances in flight (its intent journaled, its answer not).
    assert!(kill_apply_when(&w, &spec, || pending(&journal, "RunInstances")).await);
    // 3. Again, further on: after some hosts are already recorded.
    let some_hosts = || {
        std::fs::read_to_string(&hosts_json)
            .ok()
            .and_then(|t| cfxm::state::hosts_json::parse(&t).ok())
            .is_some_and(|h| !h.is_empty())
            && pending(&journal, "RunInstances")
    };
    let third = kill_apply_when(&w, &spec, some_hosts).await;

    // Every kill left the lock free (the kernel drops a dead holder's flock); the next apply
    // settles what was in flight and finishes.
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let hosts = live_instances(&w, "alice", "crash");
    assert_eq!(hosts.len(), 12, "{}", out.transcript());
    for region in ["ap-southeast-1", "cn-hongkong"] {
        assert_eq!(hosts.iter().filter(|h| h.region == region).count(), 6);
    }
    assert_eq!(
        w.tagged("instance", "alice", "crash").len(),
        12,
        "no duplicate instance, not even one being released"
    );
    assert_eq!(w.tagged("vpc", "alice", "crash").len(), 2);
    assert_eq!(w.tagged("vswitch", "alice", "crash").len(), 3 + 1);
    assert_eq!(w.tagged("security_group", "alice", "crash").len(), 2);
    assert_eq!(w.tagged("key_pair", "alice", "crash").len(), 2);
    let log = JournalLog::read(&journal).unwrap();
    assert!(
        log.pending_intents().is_empty(),
        "every interrupted call was settled"
    );
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    let _ = third;
}
