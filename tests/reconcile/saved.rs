//! Saved plans carry their basis: applied as they are when nothing moved, refused (saying
//! what moved) when the cloud or the journal did. A second apply of a spec is refused by the
//! lock, naming the holder.

use std::time::Duration;

use cfxm::spec::{RegionId, SpecName};
use cfxm::state::StateDir;

use super::{World, live_instances, quick_boot, spec_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_applies_as_saved_and_is_refused_once_stale() {
    let w = World::start(quick_boot()).await;
    let at = |n: u32| spec_yaml("saved", "alice", &[("ap-southeast-1", n, &[])], "");
    let spec = w.spec("saved", &at(3));

    // Saved, then applied exactly.
    w.run("plan", &spec, &["--only", "infra", "--out", "p1.json"])
        .await
        .ok();
    let out = w
        .run("apply", &spec, &["p1.json", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout.contains("Apply complete!"),
        "{}",
        out.transcript()
    );
    assert_eq!(live_instances(&w, "alice", "saved").len(), 3);

    // Saved, then the world moves: a host is deleted behind cfxm's back.
    w.spec("saved", &at(4));
    w.run("plan", &spec, &["--only", "infra", "--out", "p2.json"])
        .await
        .ok();
    let victim = live_instances(&w, "alice", "saved").remove(0).id;
    w.client()
        .delete_instances(&RegionId::new("ap-southeast-1"), &[victim], true)
        .await
        .unwrap();
    w.emu.advance_clock(Duration::from_secs(60));
    let stale = w.run("apply", &spec, &["p2.json", "--auto-approve"]).await;
    assert_eq!(stale.code, Some(1), "{}", stale.transcript());
    assert!(
        stale.stderr.contains("the saved plan is stale"),
        "{}",
        stale.stderr
    );
    assert!(
        stale
            .stderr
            .contains("`aliyun/ap-southeast-1/hosts` was 3 instances"),
        "{}",
        stale.stderr
    );
    assert_eq!(
        live_instances(&w, "alice", "saved").len(),
        2,
        "nothing was applied"
    );

    // A saved plan is also stale once the journal moves (another apply ran), and when the
    // spec file changes.
    w.run("plan", &spec, &["--only", "infra", "--out", "p3.json"])
        .await
        .ok();
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let stale = w.run("apply", &spec, &["p3.json", "--auto-approve"]).await;
    assert_eq!(stale.code, Some(1), "{}", stale.transcript());
    assert!(
        stale.stderr.contains("the journal moved"),
        "{}",
        stale.stderr
    );
    w.run("plan", &spec, &["--only", "infra", "--out", "p4.json"])
        .await
        .ok();
    w.spec("saved", &at(5));
    let stale = w.run("apply", &spec, &["p4.json", "--auto-approve"]).await;
    assert!(
        stale.stderr.contains("the spec file changed"),
        "{}",
        stale.stderr
    );
    assert_eq!(live_instances(&w, "alice", "saved").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_of_a_spec_is_refused_by_the_lock() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec(
        "locked",
        &spec_yaml("locked", "alice", &[("ap-southeast-1", 1, &[])], ""),
    );
    // Another apply holds the spec (this test process, like any other holder).
    let state = StateDir::new(w.path().join("state"))
        .spec(&SpecName::new("locked"))
        .unwrap();
    let held = state.lock("cfxm apply").unwrap();
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await;
    assert_eq!(out.code, Some(1), "{}", out.transcript());
    let words = out.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("the state of spec `locked` is locked by"),
        "{}",
        out.stderr
    );
    assert!(
        words.contains(&format!("pid {}", std::process::id())),
        "{}",
        out.stderr
    );
    assert!(
        w.tagged("vpc", "alice", "locked").is_empty(),
        "nothing was created"
    );
    drop(held);
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert_eq!(live_instances(&w, "alice", "locked").len(), 1);
}
