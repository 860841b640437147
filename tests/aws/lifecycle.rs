//! `cfxm plan`, `apply`, `plan` again and `destroy` of `examples/aws-legacy.yaml` (50 hosts in
//! three regions) against moto: everything tagged in its create call, the gateway routing the
//! VPC, the original's gp3 disk, no changes on the second plan, a reverse-order destroy that
//! leaves other owners', half-tagged and untagged resources running; and an apply killed during
//! RunInstances resumed without launching the interrupted batch twice (moto does not
//! deduplicate by ClientToken).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cfxm::provider::aws::{Filter, Tags};

use crate::proxy::{Fault, FaultBody};
use crate::world::{AwsWorld, FAST, IMAGE, example, tagged_for};
use crate::{cfxm_tags, cidr};

const REGIONS: [(&str, usize, usize); 3] = [
    // (region, hosts, zones): 40 / 30 / 30 nodes at 2 per host.
    ("us-west-2", 20, 4),
    ("ap-east-1", 15, 3),
    ("me-south-1", 15, 3),
];

fn covered(ip: &str, rules: &[(String, String)]) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    rules.iter().any(|(block, _)| {
        let c = cidr(block);
        let mask = if c.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(c.prefix))
        };
        u32::from(ip) & mask == u32::from(c.addr)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_spec_applies_replans_clean_and_destroys_only_its_own() {
    let w = AwsWorld::start().await;
    for (region, ..) in REGIONS {
        w.register_image(region, IMAGE).await;
    }
    // Neighbours in the spec's first region that must survive: untagged, another owner's,
    // `alice2` (a prefix match of `alice`), half-tagged (no spec tag), another spec of alice.
    let half: Tags = [("conflux-massive-test", "true"), ("user", "alice")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let decoys = [
        (Tags::new(), "10.1.0.0/16"),
        (cfxm_tags("bob", "legacy-ec2"), "10.2.0.0/16"),
        (cfxm_tags("alice2", "legacy-ec2"), "10.3.0.0/16"),
        (half, "10.4.0.0/16"),
        (cfxm_tags("alice", "another-spec"), "10.5.0.0/16"),
    ];
    let mut decoy_ids = Vec::new();
    for (tags, block) in &decoys {
        decoy_ids.extend(w.decoy("us-west-2", "us-west-2a", tags, block).await);
    }
    let spec = w.spec("legacy", &example("aws-legacy.yaml"));

    let plan = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, Some(2), "{}", plan.transcript());
    assert!(
        plan.stdout
            .contains("Plan: 75 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    for (region, ..) in REGIONS {
        assert!(
            plan.stdout.contains(&format!("# aws/{region}\n")),
            "{}",
            plan.stdout
        );
    }
    assert!(
        plan.stdout.contains("+ internet_gateway"),
        "{}",
        plan.stdout
    );
    for id in &decoy_ids {
        assert!(!plan.stdout.contains(id.as_str()), "{}", plan.stdout);
    }
    // Planning only reads.
    assert!(
        w.proxy
            .recorded()
            .iter()
            .all(|r| r.action.starts_with("Describe")),
        "{:?}",
        w.proxy
            .recorded()
            .iter()
            .map(|r| &r.action)
            .collect::<Vec<_>>()
    );

    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("Apply complete! Resources: 75 added, 0 changed, 0 destroyed."),
        "{}",
        out.transcript()
    );

    // What exists, region by region, all found by the spec's exact tags.
    let mine = cfxm_tags("alice", "legacy-ec2");
    let by_tags = Filter::tags(&mine);
    let mut public: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (region, hosts, zones) in REGIONS {
        let ec2 = w.ec2(region);
        let vpcs = ec2.describe_vpcs(&[], &by_tags).await.unwrap();
        assert_eq!(vpcs.len(), 1, "{region}: {vpcs:?}");
        let vpc = &vpcs[0];
        assert_eq!(vpc.cidr_block, "10.0.0.0/16");
        let igws = ec2.describe_internet_gateways(&[], &by_tags).await.unwrap();
        assert_eq!(igws.len(), 1, "{region}");
        assert_eq!(igws[0].attachments[0].vpc_id, vpc.id, "{region}");
        let table = ec2.main_route_table(&vpc.id).await.unwrap().unwrap();
        assert_eq!(
            table
                .route_to("0.0.0.0/0")
                .and_then(|r| r.gateway_id.clone()),
            Some(igws[0].id.to_string()),
            "{region}: the default route goes through the gateway"
        );
        let subnets = ec2.describe_subnets(&[], &by_tags).await.unwrap();
        assert_eq!(subnets.len(), zones, "{region}: one subnet per zone");
        assert!(subnets.iter().all(|s| s.vpc_id == vpc.id));
        let sgs = ec2.describe_security_groups(&[], &by_tags).await.unwrap();
        assert_eq!(sgs.len(), 1, "{region}");
        let rules: Vec<(String, String)> = sgs[0]
            .ingress
            .iter()
            .flat_map(|p| {
                p.ip_ranges
                    .iter()
                    .map(|r| (r.cidr.clone(), r.description.clone().unwrap_or_default()))
            })
            .collect();
        assert!(
            rules
                .iter()
                .any(|(c, d)| c == "10.0.0.0/16" && d == "cfxm:vpc"),
            "{rules:?}"
        );
        groups.insert(region, rules);
        let keys = ec2.describe_key_pairs(&[], &by_tags).await.unwrap();
        assert_eq!(keys.len(), 1, "{region}");
        assert_eq!(
            keys[0].name.as_str(),
            "conflux-massive-test-alice-legacy-ec2"
        );
        let instances = w.instances(region, &mine).await;
        assert_eq!(instances.len(), hosts, "{region}");
        for i in &instances {
            assert!(tagged_for(&i.tags, "alice", "legacy-ec2"), "{i:?}");
            assert_eq!(
                i.tags.get("Name").map(String::as_str),
                Some("conflux-massive-test-alice-legacy-ec2")
            );
            assert_eq!(i.instance_type.as_str(), "m6i.2xlarge");
            assert_eq!(i.vpc_id.as_ref(), Some(&vpc.id));
            assert_eq!(
                i.key_name.as_ref().map(|k| k.as_str()),
                Some("conflux-massive-test-alice-legacy-ec2")
            );
        }
        public.insert(
            region,
            instances
                .iter()
                .filter_map(|i| i.public_ip.clone())
                .collect(),
        );
        assert_eq!(
            public[region].len(),
            hosts,
            "{region}: every host is public"
        );
    }
    // Peer rules: each region's group admits every other region's hosts on the node ports.
    for (region, rules) in &groups {
        let peers: Vec<(String, String)> = rules
            .iter()
            .filter(|(_, d)| d == "cfxm:peers")
            .cloned()
            .collect();
        for (other, ips) in &public {
            if other == region {
                continue;
            }
            for ip in ips {
                assert!(
                    covered(ip, &peers),
                    "{region} does not admit {ip} of {other}"
                );
            }
        }
    }

    // On the wire: every create carried the tags, and the launches the original's disk.
    let creates = [
        "CreateVpc",
        "CreateInternetGateway",
        "CreateSubnet",
        "CreateSecurityGroup",
        "ImportKeyPair",
        "RunInstances",
    ];
    for r in w.proxy.recorded() {
        if creates.contains(&r.action.as_str()) {
            let (_, tags) = r.tag_spec(1);
            assert!(
                tagged_for(&tags, "alice", "legacy-ec2"),
                "{} without the tags: {tags:?}",
                r.action
            );
        }
    }
    let launches = w.proxy.recorded_actions("RunInstances");
    assert!(!launches.is_empty());
    for l in &launches {
        for (k, v) in [
            ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
            ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "250"),
            ("BlockDeviceMapping.1.Ebs.Iops", "3000"),
            ("BlockDeviceMapping.1.Ebs.Throughput", "300"),
            ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
            ("InstanceType", "m6i.2xlarge"),
        ] {
            assert_eq!(l.get(k), Some(v), "{k}");
        }
        assert!(l.get("ClientToken").is_some_and(|t| t.starts_with("cfxm-")));
        assert_eq!(l.tag_spec(2).0.as_deref(), Some("volume"));
    }

    // The inventory, in the original's format, with the AWS hosts and their user.
    let hosts = std::fs::read_to_string(w.path().join("state/legacy-ec2/hosts.json")).unwrap();
    let records = cfxm::state::hosts_json::parse(&hosts).unwrap();
    assert_eq!(records.len(), 50);
    assert!(
        records
            .iter()
            .all(|r| r.provider == "aws" && r.ssh_user == "ubuntu"),
        "{hosts}"
    );

    // Nothing left to do.
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    let before_destroy = w.proxy.recorded().len();
    let out = w.run("destroy", &spec, &["--auto-approve"]).await.ok();
    assert!(
        out.stdout.contains("75 destroyed") && out.stdout.contains("Nothing tagged is left."),
        "{}",
        out.transcript()
    );
    for (region, ..) in REGIONS {
        let ec2 = w.ec2(region);
        assert!(ec2.describe_vpcs(&[], &by_tags).await.unwrap().is_empty());
        assert!(
            ec2.describe_internet_gateways(&[], &by_tags)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            ec2.describe_subnets(&[], &by_tags)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            ec2.describe_security_groups(&[], &by_tags)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            ec2.describe_key_pairs(&[], &by_tags)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(w.instances(region, &mine).await.is_empty());
    }
    // Every decoy is still running, and its network is still there.
    let ec2 = w.ec2("us-west-2");
    let q = cfxm::provider::aws::InstanceQuery {
        filters: vec![Filter::new(
            "instance-id",
            decoy_ids.iter().map(String::as_str),
        )],
        ..Default::default()
    };
    let alive = ec2.describe_instances(&q).await.unwrap();
    assert_eq!(alive.len(), decoys.len(), "{alive:?}");
    assert!(alive.iter().all(|i| i.state.name.as_str() == "running"));
    assert_eq!(
        ec2.describe_vpcs(&[], &[]).await.unwrap().len(),
        decoys.len() + 1
    );

    // Reverse order in each region: instances gone before the network goes; route, detach,
    // gateway; subnets and the group before the VPC.
    let calls: Vec<_> = w.proxy.recorded()[before_destroy..].to_vec();
    for (region, ..) in REGIONS {
        let at = |action: &str| -> Vec<usize> {
            calls
                .iter()
                .enumerate()
                .filter(|(_, r)| r.region == region && r.action == action)
                .map(|(i, _)| i)
                .collect()
        };
        let last = |a: &str| *at(a).last().unwrap_or_else(|| panic!("{region}: no {a}"));
        let first = |a: &str| *at(a).first().unwrap_or_else(|| panic!("{region}: no {a}"));
        let terminate = last("TerminateInstances");
        for later in [
            "DeleteRoute",
            "DetachInternetGateway",
            "DeleteSubnet",
            "DeleteSecurityGroup",
            "DeleteVpc",
            "DeleteKeyPair",
        ] {
            assert!(
                terminate < first(later),
                "{region}: {later} before the hosts went"
            );
        }
        assert!(
            last("DeleteRoute") < first("DetachInternetGateway"),
            "{region}"
        );
        assert!(
            last("DetachInternetGateway") < first("DeleteInternetGateway"),
            "{region}"
        );
        for before_vpc in [
            "DeleteInternetGateway",
            "DeleteSubnet",
            "DeleteSecurityGroup",
        ] {
            assert!(
                last(before_vpc) < first("DeleteVpc"),
                "{region}: {before_vpc}"
            );
        }
    }
    // Nothing was asked to delete or terminate a decoy.
    for r in &calls {
        for id in &decoy_ids {
            assert!(
                !r.params.iter().any(|(_, v)| v == id),
                "{} touched decoy {id}",
                r.action
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_interrupted_during_the_call_is_found_by_its_token_not_made_twice() {
    let w = AwsWorld::start().await;
    w.register_image("us-east-1", IMAGE).await;
    let spec = w.spec(
        "resume",
        "name: resume
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 6, zones: [us-east-1a] }
",
    );
    // The first launch reaches moto (its instances exist) but its answer never comes back.
    w.proxy.inject(Fault {
        action: "RunInstances",
        when: vec![],
        times: 1,
        status: 200,
        body: FaultBody::ForwardThenHang,
    });
    let path = spec.to_str().unwrap().to_owned();
    let mut args = vec![
        "apply",
        "-f",
        path.as_str(),
        "--only",
        "infra",
        "--auto-approve",
    ];
    args.extend(FAST);
    let mut child = w
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mine = cfxm_tags("alice", "resume");
    let started = Instant::now();
    while w.instances("us-east-1", &mine).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the launch never reached moto"
        );
        assert!(child.try_wait().unwrap().is_none(), "cfxm exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    w.proxy.clear_faults();
    let made = w.instances("us-east-1", &mine).await;
    let token = w.proxy.recorded_actions("RunInstances")[0]
        .get("ClientToken")
        .unwrap()
        .to_owned();

    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    assert!(
        plan.stdout
            .contains("interrupted apply left `RunInstances`")
            || plan
                .stderr
                .contains("interrupted apply left `RunInstances`"),
        "{}",
        plan.transcript()
    );

    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let now = w.instances("us-east-1", &mine).await;
    assert_eq!(now.len(), 6, "{now:?}");
    for m in &made {
        assert!(now.iter().any(|i| i.id == m.id), "{} was dropped", m.id);
    }
    // Settled by looking, not by asking again: moto would have launched it a second time.
    let same_token = w
        .proxy
        .recorded_actions("RunInstances")
        .into_iter()
        .filter(|r| r.get("ClientToken") == Some(token.as_str()))
        .count();
    assert_eq!(same_token, 1);
    let log = cfxm::state::JournalLog::read(&w.path().join("state/resume/journal.jsonl")).unwrap();
    assert!(log.pending_intents().is_empty());

    w.run("destroy", &spec, &["--auto-approve"]).await.ok();
    assert!(w.instances("us-east-1", &mine).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_planned_and_repaired_route_gateway_and_rules() {
    let w = AwsWorld::start().await;
    w.register_image("us-east-1", IMAGE).await;
    let spec = w.spec(
        "drift",
        "name: drift
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 2, zones: [us-east-1a] }
",
    );
    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let mine = cfxm_tags("alice", "drift");
    let by_tags = Filter::tags(&mine);
    let ec2 = w.ec2("us-east-1");
    let vpc = ec2.describe_vpcs(&[], &by_tags).await.unwrap().remove(0);
    let igw = ec2
        .describe_internet_gateways(&[], &by_tags)
        .await
        .unwrap()
        .remove(0);
    let table = ec2.main_route_table(&vpc.id).await.unwrap().unwrap();
    let sg = ec2
        .describe_security_groups(&[], &by_tags)
        .await
        .unwrap()
        .remove(0);

    // Someone removes the default route and opens SSH to the world; an apply that died
    // between CreateInternetGateway and AttachInternetGateway left a second, detached gateway.
    ec2.delete_route(&table.id, "0.0.0.0/0").await.unwrap();
    ec2.authorize_ingress(
        &sg.id,
        &[cfxm::provider::aws::IngressRule::tcp(
            22,
            22,
            vec![cidr("0.0.0.0/0")],
        )],
    )
    .await
    .unwrap();
    let stray = ec2.create_internet_gateway(&mine).await.unwrap();

    let plan = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, Some(2), "{}", plan.transcript());
    let text = &plan.stdout;
    assert!(
        text.contains("~ internet_gateway")
            && text.contains("the network's default route does not go through it"),
        "{text}"
    );
    assert!(
        text.contains(&format!("- internet_gateway/{}", stray.id)),
        "{text}"
    );
    assert!(text.contains("~ security_group"), "{text}");
    assert!(
        text.contains("Plan: 0 to add, 2 to change, 1 to destroy."),
        "{text}"
    );

    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let table = ec2.main_route_table(&vpc.id).await.unwrap().unwrap();
    assert_eq!(
        table
            .route_to("0.0.0.0/0")
            .and_then(|r| r.gateway_id.clone()),
        Some(igw.id.to_string())
    );
    let gateways = ec2.describe_internet_gateways(&[], &by_tags).await.unwrap();
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0].id, igw.id);
    let sg = ec2
        .describe_security_groups(&[], &by_tags)
        .await
        .unwrap()
        .remove(0);
    assert!(
        sg.ingress
            .iter()
            .flat_map(|p| &p.ip_ranges)
            .all(|r| r.cidr != "0.0.0.0/0"),
        "{:?}",
        sg.ingress
    );
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert_eq!(w.instances("us-east-1", &mine).await.len(), 2);

    // `destroy --owner` on AWS: every spec of alice, nothing of bob's, alice2's or half-tagged.
    let half: Tags = [("conflux-massive-test", "true"), ("user", "alice")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut decoys = Vec::new();
    for (tags, block) in [
        (cfxm_tags("bob", "drift"), "10.2.0.0/16"),
        (cfxm_tags("alice2", "drift"), "10.3.0.0/16"),
        (half, "10.4.0.0/16"),
    ] {
        decoys.extend(w.decoy("us-east-1", "us-east-1b", &tags, block).await);
    }
    // Another spec of alice's, in another region: also hers to destroy.
    w.register_image("eu-west-1", IMAGE).await;
    let elsewhere = cfxm_tags("alice", "elsewhere");
    w.decoy("eu-west-1", "eu-west-1a", &elsewhere, "10.9.0.0/16")
        .await;
    let out = w
        .cfxm(&[
            "destroy",
            "--owner",
            "alice",
            "--cloud",
            "aws",
            "--auto-approve",
            "--poll-interval",
            "100ms",
        ])
        .await
        .ok();
    assert!(
        out.stdout.contains("Nothing tagged is left."),
        "{}",
        out.transcript()
    );
    assert!(w.instances("us-east-1", &mine).await.is_empty());
    assert!(ec2.describe_vpcs(&[], &by_tags).await.unwrap().is_empty());
    assert!(w.instances("eu-west-1", &elsewhere).await.is_empty());
    assert!(
        w.ec2("eu-west-1")
            .describe_vpcs(&[], &Filter::tags(&elsewhere))
            .await
            .unwrap()
            .is_empty()
    );
    let q = cfxm::provider::aws::InstanceQuery {
        filters: vec![Filter::new(
            "instance-id",
            decoys.iter().map(String::as_str),
        )],
        ..Default::default()
    };
    assert_eq!(
        ec2.describe_instances(&q).await.unwrap().len(),
        decoys.len()
    );
}
