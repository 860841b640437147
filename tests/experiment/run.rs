//! The main job, phase by phase on one local cloud (one network reused throughout, as a user
//! iterating on an experiment would).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Lab, processes_under, spec_yaml};

/// `node<i>/pid` of every slot: which devnode processes the network runs.
fn pid_files(state: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(slots) = std::fs::read_dir(state.join("slots")) else {
        return out;
    };
    for slot in slots.flatten() {
        for node in std::fs::read_dir(slot.path()).unwrap().flatten() {
            if let Ok(pid) = std::fs::read_to_string(node.path().join("pid")) {
                out.insert(
                    format!(
                        "{}/{}",
                        slot.file_name().to_string_lossy(),
                        node.file_name().to_string_lossy()
                    ),
                    pid,
                );
            }
        }
    }
    out
}

/// The run directory the apply printed the report of.
fn report_dir(lab: &Lab, stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Latency report of "))
        .unwrap_or_else(|| panic!("no latency report in:\n{stdout}"));
    lab.path().join(line.trim_end_matches(':'))
}

/// `report.json` of a run: (nodes, blocks seen by every node).
fn coverage(run: &Path) -> (u64, u64) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    (
        json["nodes"].as_u64().unwrap(),
        json["coverage"]["blocks_complete"].as_u64().unwrap(),
    )
}

/// The `✓ run stage/<name> ...` line of stderr.
fn stage_line<'a>(stderr: &'a str, stage: &str) -> Option<&'a str> {
    let prefix = format!("✓ run stage/{stage} ");
    stderr.lines().find(|l| l.starts_with(&prefix))
}

/// The status of the latest `blocks` record in the journal, and its `blocks.count`.
fn last_blocks_record(state: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "stage" && v["stage"] == "blocks")
        .map(|v| {
            (
                v["status"].as_str().unwrap_or_default().to_owned(),
                v["outputs"]["inputs"]["blocks.count"].as_u64().unwrap_or(0),
            )
        })
}

#[test]
fn one_apply_goes_from_an_empty_cloud_to_the_report_and_destroy_leaves_nothing() {
    let lab = Lab::default();
    let spec = lab.spec(&spec_yaml(50));
    let spec = spec.to_str().unwrap();
    let state = lab.state("exp");

    // 1. From nothing to the latency report, in one command.
    let out = lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    for (stage, count) in [
        ("reach", "hosts reached 4/4"),
        ("nodes", "nodes ready 8/8"),
        ("topology", "8/8"),
        ("transactions", "8/8"),
        ("blocks", "blocks 50/50"),
        ("collect", "logs 8/8"),
        ("report", ""),
    ] {
        let line = stage_line(&out.stderr, stage)
            .unwrap_or_else(|| panic!("no line for {stage}:\n{}", out.transcript()));
        assert!(line.contains(count), "{line}");
    }
    assert!(
        out.stdout.contains("Apply complete! Resources: 18 added"),
        "{}",
        out.transcript()
    );
    assert!(
        out.stdout.contains("block broadcast latency (Receive/P50)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Report files in "), "{}", out.stdout);
    let first = report_dir(&lab, &out.stdout);
    assert_eq!(coverage(&first), (8, 50));

    // The hosts: four slots on loopback addresses, recorded with provider `local`.
    let hosts: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(state.join("hosts.json")).unwrap()).unwrap();
    assert_eq!(hosts.len(), 4);
    let mut ips = std::collections::BTreeSet::new();
    for h in &hosts {
        assert_eq!(h["provider"], "local");
        let ip: std::net::Ipv4Addr = h["ip"].as_str().unwrap().parse().unwrap();
        assert!(ip.is_loopback() && ip.octets()[1] >= 16, "{ip}");
        ips.insert(ip);
        assert!(h["private_ip"].as_str().is_some());
        assert!(
            state
                .join("slots")
                .join(h["instance_id"].as_str().unwrap())
                .is_dir()
        );
    }
    assert_eq!(ips.len(), 4);
    assert!(state.join("cloud/emulator.json").is_file());
    // The network outlives the run: eight devnodes, each in its host's slot.
    let running = processes_under(lab.path());
    assert_eq!(running.len(), 8, "{running:?}");
    assert!(
        running
            .iter()
            .all(|(_, cwd)| cwd.starts_with(state.join("slots")))
    );
    let pids = pid_files(&state);
    assert_eq!(pids.len(), 8, "{pids:?}");

    // `cfxm show`: the hosts by tags, the nodes running, every stage's record, the report.
    let shown = lab.cfxm(&["show", "-f", spec, "--format", "json"]).ok();
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let found: usize = shown["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hosts"].as_array().unwrap().len())
        .sum();
    assert_eq!((found, shown["inventory_hosts"].as_u64()), (4, Some(4)));
    assert_eq!(shown["nodes_live"], "all running");
    let statuses: Vec<&str> = shown["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded"; 8]);
    assert_eq!(
        shown["stages"][5]["summary"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("50/50")
    );
    let text = lab.cfxm(&["show", "-f", spec]).ok().stdout;
    assert!(text.contains("# nodes: 8, all running"), "{text}");
    assert!(
        text.contains("block broadcast latency (Receive/P50)"),
        "{text}"
    );

    // 2. Right after: nothing to do, by discovery and by the stages' live checks.
    let plan = lab.cfxm(&["plan", "-f", spec, "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // 3. A new block count: blocks, collect and report, on the same network.
    let spec_path = lab.spec(&spec_yaml(30));
    let plan = lab.cfxm(&["plan", "-f", spec, "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "{}", plan.transcript());
    for line in [
        "   > blocks        `blocks.count` changed",
        "   > collect       `blocks` runs",
        "   > report        `collect` runs",
        "     nodes         up to date",
        "Stages: 3 to run.",
    ] {
        assert!(plan.stdout.contains(line), "{line}:\n{}", plan.stdout);
    }
    let out = lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    let ran: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("✓ run stage/"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ran, ["blocks", "collect", "report"], "{}", out.transcript());
    assert_eq!(pid_files(&state), pids, "the nodes were not restarted");
    let second = report_dir(&lab, &out.stdout);
    assert_ne!(first, second);
    assert_eq!(coverage(&second), (8, 30), "only the run's own blocks");
    drop(spec_path);

    // A node config override: the plan restarts the network from `nodes`, and shows the diff.
    lab.spec(&format!(
        "{}node:\n  config: {{ log_level: trace }}\n",
        spec_yaml(30)
    ));
    let plan = lab.cfxm(&["plan", "-f", spec]).ok();
    for line in [
        "   > nodes         `config` changed",
        "       --- conflux.toml (applied)",
        "       -log_level=\"debug\"",
        "       +log_level=\"trace\"",
        "   > topology      `nodes` runs",
    ] {
        assert!(plan.stdout.contains(line), "{line}:\n{}", plan.stdout);
    }

    // 4. An apply killed (SIGKILL) during `blocks` resumes at `blocks`.
    lab.spec(&spec_yaml(80));
    let log = std::fs::File::create(lab.path().join("killed.stderr")).unwrap();
    let mut child = lab
        .command(&["apply", "-f", spec, "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if last_blocks_record(&state) == Some(("running".into(), 80)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "blocks never started: {:?}",
            std::fs::read_to_string(lab.path().join("killed.stderr"))
        );
        assert!(child.try_wait().unwrap().is_none(), "the apply ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(last_blocks_record(&state), Some(("running".into(), 80)));
    let plan = lab.cfxm(&["plan", "-f", spec]).ok();
    assert!(
        plan.stdout
            .contains("   > blocks        an apply stopped during it"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("     nodes         up to date"),
        "{}",
        plan.stdout
    );
    let out = lab.cfxm(&["apply", "-f", spec, "--auto-approve"]).ok();
    assert!(
        out.stderr
            .contains("was interrupted; recovering from the journal"),
        "{}",
        out.stderr
    );
    let ran: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("✓ run stage/"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ran, ["blocks", "collect", "report"], "{}", out.transcript());
    let third = report_dir(&lab, &out.stdout);
    let (nodes, blocks) = coverage(&third);
    assert_eq!(nodes, 8);
    // The interrupted attempt's blocks of the last second may share the window.
    assert!((80..=95).contains(&blocks), "{blocks}");
    assert_eq!(pid_files(&state), pids, "the nodes were not restarted");

    // 5. Destroy: every devnode stopped, every slot removed, nothing tagged left.
    let out = lab.cfxm(&["destroy", "-f", spec, "--auto-approve"]).ok();
    assert!(
        out.stdout.contains("Nothing tagged is left."),
        "{}",
        out.transcript()
    );
    assert_eq!(processes_under(lab.path()), Vec::new());
    assert!(!state.join("slots").exists());
    let plan = lab.cfxm(&["plan", "-f", spec, "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "{}", plan.transcript());
    assert!(
        plan.stdout
            .contains("Plan: 18 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    // The runs stay: they are the experiment's results.
    assert!(third.join("report.txt").is_file());
}
