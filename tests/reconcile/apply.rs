//! Fresh applies, re-plans with no changes, scaling, stock-outs and fleets above the tag
//! filter's 1,000-resource cap.

use cfxm::provider::aliyun::Permission;
use cfxm::spec::RegionId;

use super::{World, live_instances, quick_boot, spec_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_apply_creates_exactly_what_is_wanted_all_tagged_and_a_second_plan_is_empty() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec(
        "fresh",
        &spec_yaml(
            "fresh",
            "alice",
            &[
                ("ap-southeast-1", 3, &[]),
                ("cn-hongkong", 2, &["cn-hongkong-b"]),
            ],
            "",
        ),
    );
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("Apply complete! Resources: 17 added, 0 changed, 0 destroyed."),
        "{}",
        out.transcript()
    );

    // Exactly the wanted infra and hosts, every one tagged in its create call.
    let count = |kind| w.tagged(kind, "alice", "fresh").len();
    assert_eq!(count("vpc"), 2);
    assert_eq!(
        count("vswitch"),
        3 + 1,
        "every zone of ap-southeast-1, the one of cn-hongkong"
    );
    assert_eq!(count("security_group"), 2);
    assert_eq!(count("key_pair"), 2);
    assert_eq!(count("instance"), 5);
    let world = w.emu.world();
    for r in &world.resources {
        if r.kind != "image" {
            assert!(
                super::has_tags(&r.tags, "alice", "fresh"),
                "{} {} is not tagged exactly: {:?}",
                r.kind,
                r.id,
                r.tags
            );
        }
    }
    assert!(
        w.tagged("instance", "alice", "fresh")
            .iter()
            .all(|i| i.status == "Running" && i.public_ip.is_some())
    );

    // SSH only from `ssh_from`; node ports from the VPC and the other region's hosts, never
    // from `ssh_from` (cfxm drives the nodes' RPC through SSH); nothing open to the world.
    let client = w.client();
    let region = RegionId::new("ap-southeast-1");
    let sg = &w
        .tagged("security_group", "alice", "fresh")
        .into_iter()
        .find(|g| g.region == "ap-southeast-1")
        .unwrap()
        .id;
    let rules: Vec<Permission> = client
        .describe_security_group_attribute(&region, sg)
        .await
        .unwrap()
        .permissions;
    let ssh: Vec<&str> = rules
        .iter()
        .filter(|p| p.port_range == "22/22")
        .map(|p| p.source_cidr_ip.as_str())
        .collect();
    assert_eq!(ssh, ["203.0.113.7/32"]);
    assert!(
        rules.iter().all(|p| p.source_cidr_ip != "0.0.0.0/0"),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .all(|p| p.port_range == "22/22" || p.source_cidr_ip != "203.0.113.7/32"),
        "a node port is open to `ssh_from`: {rules:?}"
    );
    let hk_ips: Vec<String> = w
        .tagged("instance", "alice", "fresh")
        .into_iter()
        .filter(|i| i.region == "cn-hongkong")
        .map(|i| i.public_ip.unwrap())
        .collect();
    for ip in &hk_ips {
        assert!(
            rules.iter().any(|p| p.port_range == "11000/11009"
                && p.description == "cfxm:peers"
                && p.source_cidr_ip == format!("{ip}/32")),
            "no peer rule for {ip}: {rules:?}"
        );
    }

    // The inventory, in the original's nine-field format.
    let hosts = std::fs::read_to_string(w.path().join("state/fresh/hosts.json")).unwrap();
    let records = cfxm::state::hosts_json::parse(&hosts).unwrap();
    assert_eq!(records.len(), 5);
    assert!(
        records
            .iter()
            .all(|r| r.provider == "aliyun" && r.private_ip.is_some())
    );

    // Nothing left to do.
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    // Without `--only infra` the stages would still run: changes pending, exit 2.
    let full = w.run("plan", &spec, &["--detailed-exitcode"]).await;
    assert_eq!(full.code, Some(2), "{}", full.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_scales_up_and_down_to_exact_counts() {
    let w = World::start(quick_boot()).await;
    let at = |n: u32| spec_yaml("scale", "alice", &[("ap-southeast-1", n, &[])], "");
    let spec = w.spec("scale", &at(3));
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert_eq!(live_instances(&w, "alice", "scale").len(), 3);

    w.spec("scale", &at(7));
    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    assert!(
        plan.stdout
            .contains("Plan: 4 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("kept 3 × ecs.g8i.2xlarge"),
        "{}",
        plan.stdout
    );
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert_eq!(live_instances(&w, "alice", "scale").len(), 7);

    w.spec("scale", &at(2));
    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 0 to change, 5 to destroy."),
        "{}",
        plan.stdout
    );
    // Every destroy is listed, with its reason.
    assert_eq!(
        plan.stdout.matches("# scale down: 2 nodes wanted").count(),
        5,
        "{}",
        plan.stdout
    );
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert_eq!(live_instances(&w, "alice", "scale").len(), 2);
    assert_eq!(
        w.tagged("instance", "alice", "scale").len(),
        2,
        "apply waits until the surplus is gone"
    );
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_out_moves_to_the_second_type_and_other_zones() {
    let w = World::start(quick_boot()).await;
    // The first type: none in zone a, one left in zone b; the second type has stock.
    let g7_before = w
        .emu
        .world()
        .stock_of("ap-southeast-1a", "ecs.g7.2xlarge")
        .unwrap();
    w.emu
        .set_stock("ap-southeast-1a", "ecs.g8i.2xlarge", Some(0))
        .unwrap();
    w.emu
        .set_stock("ap-southeast-1b", "ecs.g8i.2xlarge", Some(1))
        .unwrap();
    let spec = w.spec(
        "stock",
        &spec_yaml(
            "stock",
            "alice",
            &[("ap-southeast-1", 4, &["ap-southeast-1a", "ap-southeast-1b"])],
            "",
        ),
    );
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let hosts = live_instances(&w, "alice", "stock");
    assert_eq!(hosts.len(), 4, "{}", out.transcript());
    // The world view has no instance types; the stock tells them apart.
    let world = w.emu.world();
    // g8i: the one in zone b; g7: the rest, starting in zone a.
    assert_eq!(
        world.stock_of("ap-southeast-1b", "ecs.g8i.2xlarge"),
        Some(0)
    );
    assert_eq!(
        world.stock_of("ap-southeast-1a", "ecs.g7.2xlarge"),
        Some(g7_before - 3)
    );
    assert!(
        out.stdout.contains(
            "created 1 × ecs.g8i.2xlarge in ap-southeast-1b, 3 × ecs.g7.2xlarge in ap-southeast-1a"
        ) || out.stdout.contains(
            "3 × ecs.g7.2xlarge in ap-southeast-1a, 1 × ecs.g8i.2xlarge in ap-southeast-1b"
        ),
        "{}",
        out.stdout
    );
    // The journal recorded the stock-out and the partial fill.
    let journal = std::fs::read_to_string(w.path().join("state/stock/journal.jsonl")).unwrap();
    assert!(journal.contains(r#""class":"no_capacity""#), "{journal}");
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_above_the_tag_filter_cap_is_discovered_whole() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec(
        "big",
        &spec_yaml("big", "alice", &[("ap-southeast-1", 1050, &[])], ""),
    );
    let out = w
        .run(
            "apply",
            &spec,
            &["--only", "infra", "--auto-approve", "--rate-scale", "20"],
        )
        .await
        .ok();
    assert_eq!(
        live_instances(&w, "alice", "big").len(),
        1050,
        "{}",
        out.stderr
    );
    // Discovery past the 1,000-match cap of a tag filter finds every host: nothing to add.
    let again = w
        .run(
            "plan",
            &spec,
            &[
                "--only",
                "infra",
                "--detailed-exitcode",
                "--rate-scale",
                "20",
            ],
        )
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert!(
        again.stdout.contains("1,050 hosts kept"),
        "{}",
        again.stdout
    );
    assert!(
        w.emu.calls().iter().any(|c| c.action == "ListTagResources"),
        "the fallback enumeration was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_never_run_are_deleted_and_replaced() {
    // Hosts take 8 s to boot (2 s Pending, then Starting), longer than the 3 s cfxm waits.
    let w = World::start(cfxm::emulator::Knobs {
        boot_delay_ms: 8_000,
        release_delay_ms: 500,
        ..cfxm::emulator::Knobs::default()
    })
    .await;
    let spec = w.spec(
        "slow",
        &spec_yaml(
            "slow",
            "alice",
            &[("ap-southeast-1", 2, &["ap-southeast-1a"])],
            "",
        ),
    );
    let mut args = vec!["apply", "-f", spec.to_str().unwrap()];
    args.extend(super::FAST);
    args.extend(["--only", "infra", "--auto-approve", "--boot-timeout", "3s"]);
    let mut cmd = w.command(&args);
    let child = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    // Once the first hosts exist, new ones boot fast: the replacements run.
    while !w
        .emu
        .calls()
        .iter()
        .any(|c| c.action == "RunInstances" && c.status == 200)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let first: Vec<String> = w
        .tagged("instance", "alice", "slow")
        .into_iter()
        .map(|i| i.id)
        .collect();
    w.emu
        .set_faults(&serde_json::json!({ "boot_delay_ms": 100 }))
        .unwrap();
    let out = child.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = live_instances(&w, "alice", "slow");
    assert_eq!(hosts.len(), 2);
    for id in &first {
        assert!(
            stdout.contains(&format!("replaced {id}: not Running 3s")),
            "{stdout}"
        );
        assert!(!hosts.iter().any(|h| &h.id == id), "{id} was kept");
    }
    // Deleted, never dropped: the hosts that never ran are being released.
    for i in w.tagged("instance", "alice", "slow") {
        assert!(
            !first.contains(&i.id) || i.status == "Stopping",
            "{} is {}",
            i.id,
            i.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_shortfall_is_backfilled_into_regions_with_stock_and_recorded() {
    let w = World::start(quick_boot()).await;
    // cn-hongkong-b sells one host of the first type and none of the second.
    w.emu
        .set_stock("cn-hongkong-b", "ecs.g8i.2xlarge", Some(1))
        .unwrap();
    w.emu
        .set_stock("cn-hongkong-b", "ecs.g7.2xlarge", Some(0))
        .unwrap();
    let spec = w.spec(
        "fill",
        &spec_yaml(
            "fill",
            "alice",
            &[
                ("cn-hongkong", 3, &["cn-hongkong-b"]),
                ("ap-southeast-1", 2, &[]),
            ],
            "",
        ),
    );
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("backfill: +2 nodes into ap-southeast-1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("backfill: -2 nodes from cn-hongkong"),
        "{}",
        out.stdout
    );
    let hosts = live_instances(&w, "alice", "fill");
    assert_eq!(
        hosts.iter().filter(|h| h.region == "cn-hongkong").count(),
        1
    );
    assert_eq!(
        hosts
            .iter()
            .filter(|h| h.region == "ap-southeast-1")
            .count(),
        4
    );
    // The move is in the journal, so the next plan keeps it rather than undoing it.
    let plan = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());
    let json = w
        .run("plan", &spec, &["--only", "infra", "--format", "json"])
        .await
        .ok();
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let moved: Vec<i64> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "hosts")
        .map(|c| c["hosts"]["backfill_nodes"].as_i64().unwrap())
        .collect();
    assert_eq!(moved.iter().sum::<i64>(), 0);
    assert!(moved.contains(&2) && moved.contains(&-2), "{moved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_left_out_of_the_spec_is_emptied() {
    let w = World::start(quick_boot()).await;
    let spec = w.spec(
        "move",
        &spec_yaml("move", "alice", &[("ap-southeast-1", 2, &[])], ""),
    );
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    w.spec(
        "move",
        &spec_yaml("move", "alice", &[("me-east-1", 1, &[])], ""),
    );
    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    assert!(
        plan.stdout
            .contains("# region `ap-southeast-1` is not in the spec"),
        "{}",
        plan.stdout
    );
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let left: Vec<String> = w
        .emu
        .world()
        .resources
        .into_iter()
        .filter(|r| r.region == "ap-southeast-1" && r.kind != "image")
        .map(|r| format!("{} {}", r.kind, r.id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(live_instances(&w, "alice", "move").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group_rules_are_compared_with_the_spec_and_repaired() {
    let w = World::start(quick_boot()).await;
    let yaml = spec_yaml(
        "rules",
        "alice",
        &[("ap-southeast-1", 1, &["ap-southeast-1a"])],
        "",
    );
    let spec = w.spec("rules", &yaml);
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let region = RegionId::new("ap-southeast-1");
    let sg = w.tagged("security_group", "alice", "rules").remove(0).id;
    let client = w.client();
    // Someone opens a port to the world by hand.
    client
        .authorize_security_group(&region, &sg, &[Permission::tcp(8080, 8080, "0.0.0.0/0")])
        .await
        .unwrap();
    // And the spec narrows SSH to another block.
    w.spec("rules", &yaml.replace("203.0.113.7/32", "198.51.100.0/24"));
    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    for line in [
        "~ security_group",
        "# its rules differ from the spec's",
        "--- live",
        "+++ spec",
        "-rule = tcp 8080 from 0.0.0.0/0",
        "-rule = tcp 22 from 203.0.113.7/32 (ssh)",
        "+rule = tcp 22 from 198.51.100.0/24 (ssh)",
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ] {
        assert!(
            plan.stdout.contains(line),
            "no `{line}` in\n{}",
            plan.stdout
        );
    }
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let rules = client
        .describe_security_group_attribute(&region, &sg)
        .await
        .unwrap()
        .permissions;
    let sources: Vec<(String, String)> = rules
        .iter()
        .map(|p| (p.port_range.clone(), p.source_cidr_ip.clone()))
        .collect();
    assert!(
        sources.contains(&("22/22".into(), "198.51.100.0/24".into())),
        "{sources:?}"
    );
    assert!(
        !sources
            .iter()
            .any(|(_, s)| s == "203.0.113.7/32" || s == "0.0.0.0/0"),
        "{sources:?}"
    );
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
}
