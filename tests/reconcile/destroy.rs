//! `cfxm destroy` removes what carries exactly the spec's (or the owner's) tags, in reverse
//! order, listed and confirmed first, and proves nothing is left; decoys (another owner,
//! `alice2` when destroying `alice`, untagged, half-tagged) are never touched.

use std::time::Duration;

use cfxm::provider::aliyun::{
    CreateSecurityGroupRequest, CreateVSwitchRequest, CreateVpcRequest, ImageQuery,
    RunInstancesRequest, Tag,
};
use cfxm::spec::RegionId;

use super::{World, live_instances, quick_boot, spec_yaml};

const REGION: &str = "ap-southeast-1";

/// A VPC, vSwitch, security group and one instance carrying `tags`, made directly through the
/// API (as another tool or person would).
async fn decoy(w: &World, tags: &[(&str, &str)], cidr: &str) -> Vec<String> {
    let c = w.client();
    let r = RegionId::new(REGION);
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
    let vpc = c
        .create_vpc(
            &r,
            &CreateVpcRequest {
                cidr_block: cidr.into(),
                name: "decoy".into(),
                tags: tags.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .vpc_id;
    w.emu.advance_clock(Duration::from_secs(10));
    let vsw = c
        .create_vswitch(
            &r,
            &CreateVSwitchRequest {
                vpc_id: vpc.clone(),
                zone_id: "ap-southeast-1a".into(),
                cidr_block: cidr.replace("/16", "/20"),
                name: "decoy".into(),
                tags: tags.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.emu.advance_clock(Duration::from_secs(10));
    let sg = c
        .create_security_group(
            &r,
            &CreateSecurityGroupRequest {
                vpc_id: vpc.clone(),
                name: "decoy".into(),
                tags: tags.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let image = c
        .describe_images(
            &r,
            &ImageQuery {
                image_name: Some(cfxm::emulator::CONFLUX_IMAGE.into()),
                owner_alias: Some("self".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0)
        .image_id;
    let ids = c
        .run_instances(
            &r,
            &RunInstancesRequest {
                zone_id: Some("ap-southeast-1a".into()),
                image_id: image,
                instance_type: "ecs.g8i.2xlarge".into(),
                security_group_id: sg.clone(),
                vswitch_id: vsw.clone(),
                amount: 1,
                tags,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .instance_ids;
    let mut all = vec![vpc, vsw, sg];
    all.extend(ids);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_takes_exactly_the_specs_resources_and_owner_destroy_exactly_the_owners() {
    let w = World::start(quick_boot()).await;
    let full = |owner, spec| {
        vec![
            ("conflux-massive-test", "true"),
            ("user", owner),
            ("cfxm-spec", spec),
        ]
    };
    let mut decoys = Vec::new();
    decoys.extend(decoy(&w, &full("bob", "mine"), "10.1.0.0/16").await);
    decoys.extend(decoy(&w, &full("alice2", "mine"), "10.2.0.0/16").await);
    decoys.extend(decoy(&w, &[], "10.3.0.0/16").await);
    decoys.extend(
        decoy(
            &w,
            &[("conflux-massive-test", "true"), ("user", "alice")],
            "10.4.0.0/16",
        )
        .await,
    );

    let mine = w.spec(
        "mine",
        &spec_yaml(
            "mine",
            "alice",
            &[(REGION, 2, &[]), ("cn-hongkong", 1, &["cn-hongkong-b"])],
            "",
        ),
    );
    let other = w.spec(
        "other",
        &spec_yaml("other", "alice", &[("me-east-1", 1, &[])], ""),
    );
    w.run("apply", &mine, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    w.run("apply", &other, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert_eq!(live_instances(&w, "alice", "mine").len(), 3);
    assert_eq!(live_instances(&w, "alice", "other").len(), 1);

    // Listed, not touched: a dry run, and a refusal without a terminal or `--auto-approve`.
    let before = w.emu.world().resources.len();
    let dry = w.run("destroy", &mine, &["--dry-run"]).await.ok();
    assert!(
        dry.stdout
            .contains("Plan: 0 to add, 0 to change, 15 to destroy."),
        "{}",
        dry.stdout
    );
    let refused = w.run("destroy", &mine, &[]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.transcript());
    assert!(
        refused.stderr.contains("stdin is not a terminal"),
        "{}",
        refused.stderr
    );
    assert_eq!(w.emu.world().resources.len(), before);

    let out = w.run("destroy", &mine, &["--auto-approve"]).await.ok();
    assert!(
        out.stdout.contains("Nothing tagged is left."),
        "{}",
        out.transcript()
    );
    for kind in ["vpc", "vswitch", "security_group", "key_pair", "instance"] {
        assert!(w.tagged(kind, "alice", "mine").is_empty(), "{kind} left");
    }
    let ids: Vec<String> = w.emu.world().resources.into_iter().map(|r| r.id).collect();
    for d in &decoys {
        assert!(ids.contains(d), "decoy {d} was touched");
    }
    assert_eq!(live_instances(&w, "alice", "other").len(), 1);
    let inventory = std::fs::read_to_string(w.path().join("state/mine/hosts.json")).unwrap();
    assert_eq!(inventory.trim(), "[]");

    // Every spec of alice, in every region, and nothing of alice2 or half-tagged.
    let mut args = vec!["destroy", "--owner", "alice", "--auto-approve"];
    args.extend(super::FAST);
    let out = w.cfxm(&args).await.ok();
    assert!(
        out.stdout.contains("spec `other` of owner `alice`"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("alice2"), "{}", out.stdout);
    assert!(live_instances(&w, "alice", "other").is_empty());
    assert!(w.tagged("vpc", "alice", "other").is_empty());
    let ids: Vec<String> = w.emu.world().resources.into_iter().map(|r| r.id).collect();
    for d in &decoys {
        assert!(ids.contains(d), "decoy {d} was touched by destroy --owner");
    }
    // Nothing of alice is left to find.
    let again = w
        .cfxm(&["destroy", "--owner", "alice", "--dry-run"])
        .await
        .ok();
    assert!(
        again
            .stdout
            .contains("Nothing tagged for owner `alice` exists"),
        "{}",
        again.stdout
    );
}
