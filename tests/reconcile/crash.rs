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

/// Runs `cfxm apply` and kills it with SIGKILL as soon as `when` holds; returns whether it
/// was killed (not ended first) and what it wrote on stderr until then.
async fn kill_apply_when(w: &World, spec: &Path, when: impl Fn() -> bool) -> (bool, String) {
    let mut args = vec!["apply", "-f", spec.to_str().unwrap()];
    args.extend(FAST);
    args.extend(["--only", "infra", "--auto-approve"]);
    let log = w.path().join("child.stderr");
    let mut child = w
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    loop {
        if when() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return (true, stderr());
        }
        if child.try_wait().unwrap().is_some() {
            return (false, stderr());
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

    // 1. While the first VPC is being created.
    assert!(
        kill_apply_when(&w, &spec, || pending(&journal, "CreateVpc"))
            .await
            .0
    );
    // 2. With a RunInstances in flight (its intent journaled, its answer not). This apply
    //    first settled the CreateVpc the first one left in flight.
    let (killed, stderr) = kill_apply_when(&w, &spec, || pending(&journal, "RunInstances")).await;
    assert!(killed);
    assert!(
        stderr.contains("was interrupted; recovering from the journal"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Settled ") && stderr.contains("nothing was created twice"),
        "{stderr}"
    );
    // 3. Further on: hosts already created by an earlier call, the next call in flight.
    let placed_and_pending = || {
        JournalLog::read(&journal).is_ok_and(|log| {
            let created = log.entries().iter().any(|e| match &e.record {
                cfxm::state::Record::Intent(i) if i.action == "RunInstances" => matches!(
                    log.outcome_of(e.serial),
                    Some(cfxm::state::OutcomeResult::Succeeded { ids }) if !ids.is_empty()
                ),
                _ => false,
            });
            created
                && log
                    .pending_intents()
                    .iter()
                    .any(|p| p.intent.action == "RunInstances")
        })
    };
    let (third, _) = kill_apply_when(&w, &spec, placed_and_pending).await;
    assert!(
        third,
        "the third apply ended before a second create call was in flight"
    );

    // Every kill left the lock free (the kernel drops a dead holder's flock); the next apply
    // settles what was in flight and finishes.
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(out.stderr.contains("Settled"), "{}", out.transcript());
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
}
