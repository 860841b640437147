//! Hosts that die are replaced: one found dead by the plan's liveness check before the stages
//! run on it, and one that dies between a saved plan and its apply, found by `reach` and
//! replaced by a round of the same apply. The fleet ends whole, the report covers every node,
//! the next plan is empty, and `destroy` leaves nothing. A selection (`--only stages`) that
//! keeps a dead host fails at `reach`, naming it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Lab, processes_under, spec_yaml};

/// `hosts.json`: (instance id, region) of every host, in file order.
fn hosts(state: &Path) -> Vec<(String, String)> {
    let hosts: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(state.join("hosts.json")).unwrap()).unwrap();
    hosts
        .iter()
        .map(|h| {
            (
                h["instance_id"].as_str().unwrap().to_owned(),
                h["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The run directory the apply printed the report of, and its node count.
fn report_nodes(lab: &Lab, stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Latency report of "))
        .unwrap_or_else(|| panic!("no latency report in:\n{stdout}"));
    let dir: PathBuf = lab.path().join(line.trim_end_matches(':'));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    json["nodes"].as_u64().unwrap()
}

/// Kills the devnodes running in `slot` and waits until they are gone.
fn kill_devnodes(slot: &Path) {
    let pids = processes_under(slot);
    assert!(!pids.is_empty(), "no devnode runs in {}", slot.display());
    for (pid, _) in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let started = Instant::now();
    while !processes_under(slot).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "devnodes survive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dead_hosts_are_replaced_before_the_stages_and_within_an_apply() {
    let lab = Lab::default();
    let spec = lab.spec(&spec_yaml(10));
    let spec = spec.to_str().unwrap();
    let state = lab.state("exp");
    lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    let before = hosts(&state);
    assert_eq!(before.len(), 4);

    // 1. A host dies between two applies: its devnodes killed, its slot replaced by a file
    //    (nothing can run there). The next apply's plan finds it before the stages run.
    let (dead, dead_region) = before[0].clone();
    let slot = state.join("slots").join(&dead);
    kill_devnodes(&slot);
    std::fs::remove_dir_all(&slot).unwrap();
    std::fs::write(&slot, "not a host").unwrap();
    lab.spec(&spec_yaml(12));
    let plan = lab.cfxm(&["plan", "-f", spec]).ok();
    insta::with_settings!({ filters => vec![
        (r"i-[0-9a-z]{20}", "[ID]"),
        (r"127\.\d+\.\d+\.\d+", "[IP]"),
        (r"`[^`]*/state/exp/slots/", "`[LAB]/state/exp/slots/"),
    ] }, {
        insta::assert_snapshot!("a_dead_host_in_the_plan", plan.stdout);
    });
    let out = lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    let removal = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("- {dead} ")))
        .unwrap_or_else(|| panic!("{dead} is not destroyed:\n{}", out.transcript()));
    assert!(
        removal.contains("# it did not answer a liveness check just now (")
            && removal.contains("is not a directory (missing or replaced): the host is down")
            && removal.ends_with("; an unreachable host is replaced"),
        "{removal}"
    );
    assert!(
        out.stdout.contains("Apply complete!"),
        "{}",
        out.transcript()
    );
    let after = hosts(&state);
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.iter().all(|(id, _)| *id != dead), "{after:?}");
    for kept in &before[1..] {
        assert!(after.contains(kept), "{kept:?} was replaced too: {after:?}");
    }
    let new: Vec<&(String, String)> = after.iter().filter(|h| !before.contains(h)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    assert_eq!(new[0].1, dead_region);
    assert!(!slot.exists(), "the dead host's slot is left");
    assert_eq!(report_nodes(&lab, &out.stdout), 8);
    assert_eq!(processes_under(lab.path()).len(), 8);
    let plan = lab.cfxm(&["plan", "-f", spec, "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // 2. A host dies between a saved plan and its apply (its slot removed under its running
    //    devnodes): `reach` finds it, and the same apply re-plans and replaces it.
    lab.spec(&spec_yaml(12).replace("cn-hongkong, nodes: 4", "cn-hongkong, nodes: 6"));
    lab.cfxm(&["plan", "-f", spec, "--out", "plan.json"]).ok();
    let (victim, victim_region) = after
        .iter()
        .find(|(_, r)| r == "ap-southeast-1")
        .cloned()
        .unwrap();
    let slot = state.join("slots").join(&victim);
    std::fs::remove_dir_all(&slot).unwrap();
    let out = lab.cfxm(&["apply", "-f", spec, "plan.json", "--auto-approve"]);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    let round =
        format!("1 host did not answer; replacing it (round 1 of 2): {victim} ({victim_region})");
    assert!(
        out.stderr.contains(&round),
        "{round}:\n{}",
        out.transcript()
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("- {victim} "))
                && l.contains("# it did not answer at the last `reach` (")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Apply complete!"),
        "{}",
        out.transcript()
    );
    let last = hosts(&state);
    assert_eq!(last.len(), 5, "{last:?}");
    assert!(last.iter().all(|(id, _)| *id != victim), "{last:?}");
    assert_eq!(report_nodes(&lab, &out.stdout), 10);
    // The devnodes of the removed slot were stopped with it: only the fleet's run.
    assert_eq!(processes_under(lab.path()).len(), 10);
    let plan = lab.cfxm(&["plan", "-f", spec, "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());

    // 3. Destroy: no process, no slot.
    lab.cfxm(&["destroy", "-f", spec, "--auto-approve"]).ok();
    assert_eq!(processes_under(lab.path()), Vec::new());
    assert!(!state.join("slots").exists());
}

/// `--only stages` keeps the hosts as they are, so a dead host cannot be replaced: the apply
/// stops at `reach` with a cause naming the host and a fix, and nothing runs on the fleet.
#[test]
fn a_selection_that_keeps_a_dead_host_fails_at_reach_naming_it() {
    let lab = Lab::default();
    let spec = lab.spec(&spec_yaml(10));
    let spec = spec.to_str().unwrap();
    let state = lab.state("exp");
    lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    let before = hosts(&state);
    let (dead, dead_region) = before[0].clone();
    let slot = state.join("slots").join(&dead);
    kill_devnodes(&slot);
    std::fs::remove_dir_all(&slot).unwrap();
    lab.spec(&spec_yaml(12));

    let out = lab.cfxm(&["apply", "-f", spec, "--only", "stages", "--auto-approve"]);
    assert_eq!(out.code, Some(1), "{}", out.transcript());
    let cause = format!(
        "hosts did not answer at `reach`, and this apply's selection leaves them in place: {dead} ({dead_region})"
    );
    // miette folds long lines: compare without the folding.
    let unfolded: String = out
        .stderr
        .lines()
        .map(|l| l.trim_start_matches([' ', '│']).trim_end())
        .collect();
    assert!(unfolded.contains(&cause), "{cause}:\n{}", out.transcript());
    assert!(
        unfolded.contains("without the `--only`/`--skip` that leaves their region out"),
        "{}",
        out.transcript()
    );
    assert!(
        !out.stderr.contains("run stage/blocks"),
        "blocks ran on a fleet with a dead host:\n{}",
        out.transcript()
    );
    assert_eq!(hosts(&state), before, "the selection changed the hosts");

    // Without the selection, the same apply replaces it.
    lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    assert!(hosts(&state).iter().all(|(id, _)| *id != dead));
    lab.cfxm(&["destroy", "-f", spec, "--auto-approve"]).ok();
    assert_eq!(processes_under(lab.path()), Vec::new());
}
