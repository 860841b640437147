//! One spec, two clouds: Aliyun (the in-process emulator) and AWS (moto) planned, applied and
//! destroyed together, the plan grouped by cloud, each cloud's security group admitting the
//! other cloud's hosts; and the original's 10,000-node template (`examples/aliyun-10k.yaml`,
//! 9,950 Aliyun + 50 AWS nodes) planned against both.

use cfxm::emulator::{Emulator, EmulatorConfig, EmulatorHandle, Knobs};
use cfxm::provider::aws::Filter;

use crate::world::{AwsWorld, IMAGE, example, tagged_for};
use crate::{cfxm_tags, cidr};

async fn with_emulator() -> (AwsWorld, EmulatorHandle) {
    let mut w = AwsWorld::start().await;
    let emu = Emulator::start(EmulatorConfig {
        seed: Some(7),
        knobs: Knobs {
            clock_speed: 20.0,
            boot_delay_ms: 2_000,
            network_delay_ms: 1_000,
            release_delay_ms: 1_000,
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts");
    w.env = vec![
        ("CFXM_ALIYUN_ENDPOINT".into(), emu.endpoint_url()),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID".into(),
            emu.access_key_id().to_owned(),
        ),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET".into(),
            cfxm::emulator::DEFAULT_ACCESS_KEY_SECRET.into(),
        ),
    ];
    (w, emu)
}

fn within(ip: &str, block: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let c = cidr(block);
    let mask = if c.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(c.prefix))
    };
    u32::from(ip) & mask == u32::from(c.addr)
}

/// Both clouds have an `ap-southeast-1`: the same region name, kept apart by cloud.
const MIXED: &str = "name: mixed
owner: alice
cloud:
  aliyun:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: ecs.g8i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: ap-southeast-1, nodes: 3, zones: [ap-southeast-1a] }
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: ap-southeast-1, nodes: 2, zones: [ap-southeast-1a] }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_spec_applies_and_destroys_on_aliyun_and_aws_together() {
    let (w, emu) = with_emulator().await;
    w.register_image("ap-southeast-1", IMAGE).await;
    let spec = w.spec("mixed", MIXED);

    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    let text = &plan.stdout;
    let aliyun = text.find("# aliyun/ap-southeast-1\n").expect(text);
    let aws = text.find("# aws/ap-southeast-1\n").expect(text);
    assert!(
        aliyun < aws,
        "grouped by cloud, in the spec's order: {text}"
    );
    assert!(text[aws..].contains("+ internet_gateway"), "{text}");
    assert!(!text[aliyun..aws].contains("internet_gateway"), "{text}");

    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout.contains("Apply complete!"),
        "{}",
        out.transcript()
    );

    // Aliyun's side, in the emulator.
    let world = emu.world();
    let ali: Vec<_> = world
        .of_kind("instance")
        .filter(|i| {
            i.tags
                .iter()
                .any(|t| t.key == "cfxm-spec" && t.value == "mixed")
                && i.status == "Running"
        })
        .cloned()
        .collect();
    assert_eq!(ali.len(), 3);
    // AWS's side, in moto.
    let mine = cfxm_tags("alice", "mixed");
    let ec2 = w.ec2("ap-southeast-1");
    let hosts = w.instances("ap-southeast-1", &mine).await;
    assert_eq!(hosts.len(), 2);
    assert!(hosts.iter().all(|h| tagged_for(&h.tags, "alice", "mixed")));

    // Each cloud's group admits the other cloud's hosts on the node ports.
    let sg = &ec2
        .describe_security_groups(&[], &Filter::tags(&mine))
        .await
        .unwrap()[0];
    let aws_peers: Vec<String> = sg
        .ingress
        .iter()
        .flat_map(|p| &p.ip_ranges)
        .filter(|r| r.description.as_deref() == Some("cfxm:peers"))
        .map(|r| r.cidr.clone())
        .collect();
    for i in &ali {
        let ip = i.public_ip.as_deref().unwrap();
        assert!(
            aws_peers.iter().any(|b| within(ip, b)),
            "AWS does not admit Aliyun host {ip}: {aws_peers:?}"
        );
    }
    let ali_sg = world
        .of_kind("security_group")
        .find(|g| {
            g.tags
                .iter()
                .any(|t| t.key == "cfxm-spec" && t.value == "mixed")
        })
        .unwrap()
        .id
        .clone();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = cfxm::provider::aliyun::Client::new(cfxm::provider::aliyun::ClientConfig::new(
        emu.credentials(),
        cfxm::provider::aliyun::Endpoints::single(&emu.endpoint_url(), "the test").unwrap(),
    ))
    .unwrap();
    let ali_rules = client
        .describe_security_group_attribute(&cfxm::spec::RegionId::new("ap-southeast-1"), &ali_sg)
        .await
        .unwrap()
        .permissions;
    for h in &hosts {
        let ip = h.public_ip.as_deref().unwrap();
        assert!(
            ali_rules
                .iter()
                .any(|p| p.description == "cfxm:peers" && within(ip, &p.source_cidr_ip)),
            "Aliyun does not admit AWS host {ip}"
        );
    }

    // One inventory for both clouds.
    let inventory = std::fs::read_to_string(w.path().join("state/mixed/hosts.json")).unwrap();
    let records = cfxm::state::hosts_json::parse(&inventory).unwrap();
    assert_eq!(records.iter().filter(|r| r.provider == "aliyun").count(), 3);
    assert_eq!(records.iter().filter(|r| r.provider == "aws").count(), 2);

    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());

    let out = w.run("destroy", &spec, &["--auto-approve"]).await.ok();
    assert!(
        out.stdout.contains("Nothing tagged is left."),
        "{}",
        out.transcript()
    );
    assert!(w.instances("ap-southeast-1", &mine).await.is_empty());
    assert!(
        ec2.describe_vpcs(&[], &Filter::tags(&mine))
            .await
            .unwrap()
            .is_empty()
    );
    let world = emu.world();
    assert!(
        world
            .resources
            .iter()
            .filter(|r| r.kind != "image")
            .all(|r| r.status == "Stopping" || r.tags.iter().all(|t| t.value != "mixed")),
        "{:?}",
        world.resources
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ten_thousand_node_template_plans_on_both_clouds() {
    let (w, _emu) = with_emulator().await;
    w.register_image("ap-east-1", IMAGE).await;
    let spec = w.spec("latency-10k", &example("aliyun-10k.yaml"));
    let out = w.run("plan", &spec, &["--detailed-exitcode"]).await;
    assert_eq!(out.code, Some(2), "{}", out.transcript());
    let text = &out.stdout;
    for region in [
        "cn-hongkong",
        "ap-southeast-1",
        "ap-northeast-2",
        "ap-southeast-3",
        "ap-southeast-5",
        "ap-southeast-7",
        "me-east-1",
        "ap-southeast-6",
    ] {
        assert!(
            text.contains(&format!("# aliyun/{region}")),
            "{region}: {text}"
        );
    }
    let aws = text.find("# aws/ap-east-1").expect(text);
    assert!(
        text[aws..].contains("50 nodes: 50 × m6i.2xlarge over 3 zones"),
        "{text}"
    );
    assert!(text[aws..].contains("+ internet_gateway"), "{text}");
    // 9,950 Aliyun hosts and 51 network resources in 8 regions; 50 AWS hosts and 8.
    assert!(
        text.contains("Plan: 10,059 to add, 0 to change, 0 to destroy."),
        "{text}"
    );
}
