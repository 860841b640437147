//! What existing Aliyun tooling (the original tool among them, reference/original-tool.md
//! §1.3–§1.5) relies on, sent as such scripts send it: the ECS API's own network actions,
//! `TotalCount` in number-paged answers, booleans and protocols in any case, fresh instances
//! listed at once with both addresses, and a loopback that keeps connections alive without
//! Nagle stalls. Raw actions go through cfxm's client (`Client::call`), which signs them.

use std::collections::BTreeSet;

use cfxm::emulator::{Catalog, EmulatorConfig, Knobs, PublicIpPolicy};
use cfxm::provider::aliyun::{AliyunError, Api, Client, Params, Signing, VpcQuery};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

async fn call(c: &Client, api: Api, action: &'static str, p: Params) -> Value {
    c.call::<Value>(api, action, Some(&RegionId::new(REGION)), p)
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"))
}

async fn ecs(c: &Client, action: &'static str, p: Params) -> Value {
    call(c, Api::Ecs, action, p).await
}

async fn ecs_err(c: &Client, action: &'static str, p: Params) -> AliyunError {
    c.call::<Value>(Api::Ecs, action, Some(&RegionId::new(REGION)), p)
        .await
        .expect_err(action)
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

/// The fields of one `Vpcs.Vpc` / `VSwitches.VSwitch` row in the ECS API's model
/// (`alibabacloud-ecs20140526`): no tags, no VPC-API extras.
const ECS_VPC_FIELDS: [&str; 11] = [
    "CidrBlock",
    "CreationTime",
    "Description",
    "IsDefault",
    "RegionId",
    "Status",
    "UserCidrs",
    "VRouterId",
    "VSwitchIds",
    "VpcId",
    "VpcName",
];
const ECS_VSWITCH_FIELDS: [&str; 11] = [
    "AvailableIpAddressCount",
    "CidrBlock",
    "CreationTime",
    "Description",
    "IsDefault",
    "ResourceGroupId",
    "Status",
    "VSwitchId",
    "VSwitchName",
    "VpcId",
    "ZoneId",
];

#[tokio::test]
async fn the_ecs_api_carries_the_network_actions_in_its_own_shape() {
    let env = env_with(EmulatorConfig {
        knobs: Knobs {
            network_delay_ms: 3_000,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    for signing in [Signing::V3, Signing::V1] {
        let c = client_for(&env.emu, signing);
        let name = format!("conflux-massive-test-{signing:?}");
        let create = || {
            Params::new()
                .set("VpcName", &name)
                .set("CidrBlock", "10.0.0.0/16")
                .set("ClientToken", format!("ecs-vpc-{signing:?}"))
        };
        let created = ecs(&c, "CreateVpc", create()).await;
        assert_eq!(
            keys(&created),
            set(&["RequestId", "RouteTableId", "VRouterId", "VpcId"])
        );
        let vpc = created["VpcId"].as_str().unwrap().to_string();
        // ClientToken idempotency is the same rule as the VPC API's.
        assert_eq!(ecs(&c, "CreateVpc", create()).await["VpcId"], vpc.as_str());

        // Pending until the network delay has passed, then exactly `Available`.
        let describe = || ecs(&c, "DescribeVpcs", Params::new().set("VpcId", &vpc));
        let d = describe().await;
        assert_eq!(
            (&d["TotalCount"], &d["PageNumber"], &d["PageSize"]),
            (&Value::from(1), &Value::from(1), &Value::from(10))
        );
        let row = &d["Vpcs"]["Vpc"][0];
        assert_eq!(keys(row), set(&ECS_VPC_FIELDS), "{row}");
        assert_eq!(
            (&row["Status"], &row["VpcName"]),
            (&Value::from("Pending"), &Value::from(name.as_str()))
        );
        // Same world, same rules: a vSwitch must wait for its VPC.
        let vsw_params = |cidr: &str| {
            Params::new()
                .set("VpcId", &vpc)
                .set("ZoneId", ZONE)
                .set("CidrBlock", cidr)
                .set("VSwitchName", &name)
        };
        let e = ecs_err(&c, "CreateVSwitch", vsw_params("10.0.0.0/20")).await;
        assert_eq!(e.code, "IncorrectVpcStatus");
        env.emu.advance_clock(std::time::Duration::from_secs(3));
        assert_eq!(
            describe().await["Vpcs"]["Vpc"][0]["Status"],
            "Available",
            "exactly `Available`, as the original tool compares"
        );
        // The VPC API sees the same VPC, in its own shape (tags and all).
        let via_vpc_api = call(
            &c,
            Api::Vpc,
            "DescribeVpcs",
            Params::new().set("VpcId", &vpc),
        )
        .await;
        assert!(via_vpc_api["Vpcs"]["Vpc"][0].get("Tags").is_some());

        // `VpcId` takes a comma list.
        let other = ecs(
            &c,
            "CreateVpc",
            Params::new().set("CidrBlock", "192.168.0.0/16"),
        )
        .await["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let both = ecs(
            &c,
            "DescribeVpcs",
            Params::new().set("VpcId", format!("{vpc},{other}")),
        )
        .await;
        assert_eq!(both["TotalCount"], 2);
        assert_eq!(both["Vpcs"]["Vpc"].as_array().unwrap().len(), 2);

        // A vSwitch, then DescribeVSwitches by `VSwitchId` alone (no `VpcId`).
        let vsw = ecs(&c, "CreateVSwitch", vsw_params("10.0.0.0/20")).await;
        assert_eq!(keys(&vsw), set(&["RequestId", "VSwitchId"]));
        let vsw = vsw["VSwitchId"].as_str().unwrap().to_string();
        let by_id = || {
            ecs(
                &c,
                "DescribeVSwitches",
                Params::new().set("VSwitchId", &vsw),
            )
        };
        let d = by_id().await;
        assert_eq!(
            (&d["TotalCount"], &d["PageSize"]),
            (&Value::from(1), &Value::from(10))
        );
        let row = &d["VSwitches"]["VSwitch"][0];
        assert_eq!(keys(row), set(&ECS_VSWITCH_FIELDS), "{row}");
        assert_eq!(row["Status"], "Pending");
        assert_eq!(row["AvailableIpAddressCount"], 4092);
        env.emu.advance_clock(std::time::Duration::from_secs(3));
        assert_eq!(
            by_id().await["VSwitches"]["VSwitch"][0]["Status"],
            "Available"
        );
        let in_vpc = ecs(&c, "DescribeVSwitches", Params::new().set("VpcId", &vpc)).await;
        assert_eq!(in_vpc["TotalCount"], 1);
        assert_eq!(
            describe().await["Vpcs"]["Vpc"][0]["VSwitchIds"]["VSwitchId"][0],
            vsw.as_str()
        );

        // Deletion order is enforced as in the VPC API.
        let e = ecs_err(&c, "DeleteVpc", Params::new().set("VpcId", &vpc)).await;
        assert_eq!(e.code, "DependencyViolation.VSwitch");
        ecs(&c, "DeleteVSwitch", Params::new().set("VSwitchId", &vsw)).await;
        let e = ecs_err(&c, "DeleteVSwitch", Params::new().set("VSwitchId", &vsw)).await;
        assert_eq!(
            (e.code.as_str(), e.status),
            ("InvalidVSwitchId.NotFound", Some(404))
        );
        for id in [&vpc, &other] {
            ecs(&c, "DeleteVpc", Params::new().set("VpcId", id)).await;
        }
        assert_eq!(describe().await["TotalCount"], 0);
        assert!(
            env.client
                .describe_vpcs(&env.region, &VpcQuery::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
    // Each of the six went to the ECS API under both signatures.
    let calls = env.emu.calls();
    for action in [
        "CreateVpc",
        "DescribeVpcs",
        "DeleteVpc",
        "CreateVSwitch",
        "DescribeVSwitches",
        "DeleteVSwitch",
    ] {
        for scheme in ["V3", "V1"] {
            assert!(
                calls
                    .iter()
                    .any(|c| c.api == "ecs" && c.action == action && c.signature == scheme),
                "{action} {scheme}"
            );
        }
    }
    env.emu.shutdown().await;
}

#[tokio::test]
async fn number_paged_answers_carry_totals_even_without_a_page() {
    let env = env().await;
    let c = &env.client;
    let net = network(&env).await;
    // 12 security groups (more than the default page of 10), 2 key pairs.
    for i in 1..12 {
        ecs(
            c,
            "CreateSecurityGroup",
            Params::new()
                .set("VpcId", &net.vpc)
                .set("SecurityGroupName", format!("sg{i}")),
        )
        .await;
    }
    for name in ["kp1", "kp2"] {
        c.import_key_pair(&env.region, name, super::roundtrip::PUBLIC_KEY, &[])
            .await
            .unwrap();
    }
    // No paging parameter at all: page 1 of 10, and the total.
    for (api, action, list, total) in [
        (Api::Ecs, "DescribeImages", "Images", 3),
        (Api::Ecs, "DescribeSecurityGroups", "SecurityGroups", 12),
        (Api::Ecs, "DescribeKeyPairs", "KeyPairs", 2),
        (Api::Ecs, "DescribeVpcs", "Vpcs", 1),
        (Api::Vpc, "DescribeVpcs", "Vpcs", 1),
        (Api::Ecs, "DescribeVSwitches", "VSwitches", 1),
        (Api::Vpc, "DescribeVSwitches", "VSwitches", 1),
    ] {
        let v = call(c, api, action, Params::new()).await;
        assert_eq!(v["TotalCount"], total, "{api:?} {action}: {v}");
        assert_eq!(
            (&v["PageNumber"], &v["PageSize"]),
            (&Value::from(1), &Value::from(10)),
            "{action}"
        );
        let rows = v[list].as_object().unwrap().values().next().unwrap();
        assert_eq!(rows.as_array().unwrap().len(), total.min(10), "{action}");
    }
    // The original tool's style: PageSize=50 and PageNumber until TotalCount is covered.
    let page = |n: u32, size: u32| {
        ecs(
            c,
            "DescribeSecurityGroups",
            Params::new()
                .set("VpcId", &net.vpc)
                .set("PageNumber", n)
                .set("PageSize", size),
        )
    };
    let v = page(1, 50).await;
    assert_eq!(
        (&v["TotalCount"], &v["PageSize"]),
        (&Value::from(12), &Value::from(50))
    );
    assert_eq!(
        v["SecurityGroups"]["SecurityGroup"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    let v = page(3, 5).await;
    assert_eq!(v["TotalCount"], 12);
    assert_eq!(
        v["SecurityGroups"]["SecurityGroup"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Token paging alone has no total (aliyun-api.md §3.2); its pages still chain.
    let v = ecs(
        c,
        "DescribeSecurityGroups",
        Params::new().set("MaxResults", 10),
    )
    .await;
    assert!(v.get("TotalCount").is_none(), "{v}");
    assert!(!v["NextToken"].as_str().unwrap().is_empty());
    env.emu.shutdown().await;
}

#[tokio::test]
async fn booleans_and_protocols_are_read_in_any_case() {
    let env = env().await;
    let c = &env.client;
    let net = network(&env).await;
    // The Python SDK sends `True`/`False`; other tools `true`/`false`.
    for (verbose, listed) in [
        ("False", false),
        ("false", false),
        ("FALSE", false),
        ("True", true),
        ("true", true),
    ] {
        let v = ecs(c, "DescribeZones", Params::new().set("Verbose", verbose)).await;
        let zone = &v["Zones"]["Zone"][0];
        assert_eq!(
            zone.get("AvailableInstanceTypes").is_some(),
            listed,
            "Verbose={verbose}"
        );
    }
    let e = ecs_err(c, "DescribeZones", Params::new().set("Verbose", "yes")).await;
    assert_eq!((e.code.as_str(), e.status), ("InvalidParameter", Some(400)));
    c.import_key_pair(&env.region, "kp", super::roundtrip::PUBLIC_KEY, &[])
        .await
        .unwrap();
    let v = ecs(
        c,
        "DescribeKeyPairs",
        Params::new().set("IncludePublicKey", "True"),
    )
    .await;
    assert_eq!(
        v["KeyPairs"]["KeyPair"][0]["PublicKey"],
        super::roundtrip::PUBLIC_KEY
    );

    // `tcp`, `Tcp` and `TCP` are one protocol: the second rule is the first one again.
    let sg = &net.sg;
    for (proto, range) in [
        ("tcp", "1024/49151"),
        ("TCP", "1024/49151"),
        ("Udp", "53/53"),
        ("icmp", "-1/-1"),
        ("all", "-1/-1"),
    ] {
        ecs(
            c,
            "AuthorizeSecurityGroup",
            Params::new()
                .set("SecurityGroupId", sg)
                .set("Permissions.1.IpProtocol", proto)
                .set("Permissions.1.PortRange", range)
                .set("Permissions.1.SourceCidrIp", "0.0.0.0/0"),
        )
        .await;
    }
    let v = ecs(
        c,
        "DescribeSecurityGroupAttribute",
        Params::new().set("SecurityGroupId", sg),
    )
    .await;
    let rules: BTreeSet<(String, String)> = v["Permissions"]["Permission"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["IpProtocol"].as_str().unwrap().to_string(),
                r["PortRange"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("TCP", "22/22"),
        ("TCP", "1024/49151"),
        ("UDP", "53/53"),
        ("ICMP", "-1/-1"),
        ("ALL", "-1/-1"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(rules, want);
    assert_eq!(v["Permissions"]["Permission"].as_array().unwrap().len(), 5);

    // `Force=True` releases a Running instance; `Force=False` refuses to.
    let id = c
        .run_instances(&env.region, &run_request(&net, 1))
        .await
        .unwrap()
        .instance_ids
        .remove(0);
    let delete = |force: &str| Params::new().set("InstanceId.1", &id).set("Force", force);
    let e = ecs_err(c, "DeleteInstances", delete("False")).await;
    assert_eq!(e.code, "IncorrectInstanceStatus");
    ecs(c, "DeleteInstances", delete("True")).await;
    assert_eq!(env.emu.world().of_kind("instance").count(), 0);
    env.emu.shutdown().await;
}

/// The original tool's RunInstances (original-tool.md §1.4): one name for the batch, 100 Mbit/s
/// out (hence a public address), its three tags, a 40 GiB ESSD.
fn original_run(net: &Net, amount: u32, bandwidth: u32) -> Params {
    Params::new()
        .set("ZoneId", ZONE)
        .set("ImageId", &net.image)
        .set("InstanceType", TYPE)
        .set("SecurityGroupId", &net.sg)
        .set("VSwitchId", &net.vswitch)
        .set("InstanceName", "conflux-massive-test-1767225600")
        .set("InternetMaxBandwidthOut", bandwidth)
        .set("InternetChargeType", "PayByTraffic")
        .set("InstanceChargeType", "PostPaid")
        .set("Tag.1.Key", "conflux-massive-test")
        .set("Tag.1.Value", "true")
        .set("Tag.2.Key", "user")
        .set("Tag.2.Value", "alice")
        .set("Tag.3.Key", "team")
        .set("Tag.3.Value", "core")
        .set("Amount", amount)
        .set("MinAmount", 1)
        .set("SystemDisk.Category", "cloud_essd")
        .set("SystemDisk.Size", "40")
}

/// The original tool's describe loop: `PageSize=100` and an `InstanceIds` JSON array; returns
/// (id → (status, first public IP, first private IP)).
async fn describe_loop(
    c: &Client,
    ids: &[String],
) -> Vec<(String, String, Option<String>, Option<String>)> {
    let v = ecs(
        c,
        "DescribeInstances",
        Params::new()
            .set("PageSize", 100)
            .set("InstanceIds", serde_json::to_string(ids).unwrap()),
    )
    .await;
    assert_eq!(v["TotalCount"], ids.len());
    let first = |a: &Value| {
        a.as_array()
            .unwrap()
            .first()
            .map(|s| s.as_str().unwrap().to_string())
    };
    v["Instances"]["Instance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["InstanceId"].as_str().unwrap().to_string(),
                i["Status"].as_str().unwrap().to_string(),
                first(&i["PublicIpAddress"]["IpAddress"]),
                first(&i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn fresh_instances_are_listed_at_once_and_running_ones_have_both_addresses() {
    // A 40 s boot; the consistency window stays at its default, 0.
    let env = env_with(EmulatorConfig {
        knobs: Knobs {
            boot_delay_ms: 40_000,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    assert_eq!(env.emu.knobs().consistency_window_ms, 0);
    let c = &env.client;
    let net = network(&env).await;
    let run = ecs(c, "RunInstances", original_run(&net, 5, 100)).await;
    let ids: Vec<String> =
        serde_json::from_value(run["InstanceIdSets"]["InstanceIdSet"].clone()).unwrap();
    assert_eq!(ids.len(), 5);
    // Right after RunInstances: every id listed (the original drops an unlisted one as lost).
    let mut addresses = BTreeSet::new();
    for (expected, advance) in [("Pending", 0), ("Starting", 15), ("Running", 30)] {
        env.emu
            .advance_clock(std::time::Duration::from_secs(advance));
        let listed = describe_loop(c, &ids).await;
        assert_eq!(
            listed.iter().map(|l| &l.0).collect::<BTreeSet<_>>(),
            ids.iter().collect::<BTreeSet<_>>()
        );
        for (id, status, public, private) in listed {
            assert_eq!(status, expected, "{id}");
            // The original indexes `[0]` of both lists: both must be there, and stay put.
            let (public, private) = (public.expect("a public IP"), private.expect("a private IP"));
            assert!(private.starts_with("10.0."), "{private}");
            addresses.insert((id, public, private));
        }
    }
    assert_eq!(addresses.len(), 5, "addresses never change: {addresses:?}");

    // Without bandwidth the real service assigns no public address, and neither does the
    // default world (`public_ip: with_bandwidth`), so a script that forgets the bandwidth
    // fails here as it would on Aliyun...
    env.emu.advance_clock(std::time::Duration::from_secs(40));
    let run = ecs(c, "RunInstances", original_run(&net, 1, 0)).await;
    let id: Vec<String> =
        serde_json::from_value(run["InstanceIdSets"]["InstanceIdSet"].clone()).unwrap();
    env.emu.advance_clock(std::time::Duration::from_secs(40));
    let listed = describe_loop(c, &id).await;
    assert_eq!(
        (listed[0].1.as_str(), listed[0].2.as_deref()),
        ("Running", None)
    );
    assert!(listed[0].3.is_some());
    env.emu.shutdown().await;

    // ...while a world with `public_ip: always` (a local cloud) gives every instance one.
    let env = env_with(EmulatorConfig {
        catalog: Catalog {
            public_ip: PublicIpPolicy::Always,
            ..Catalog::builtin()
        },
        ..Default::default()
    })
    .await;
    let net = network(&env).await;
    let run = ecs(&env.client, "RunInstances", original_run(&net, 2, 0)).await;
    let ids: Vec<String> =
        serde_json::from_value(run["InstanceIdSets"]["InstanceIdSet"].clone()).unwrap();
    for (_, status, public, private) in describe_loop(&env.client, &ids).await {
        assert_eq!(status, "Running");
        assert!(public.is_some() && private.is_some());
    }
    env.emu.shutdown().await;
}

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length` body).
async fn read_response(r: &mut BufReader<tokio::net::TcpStream>) -> (String, Vec<String>, String) {
    let mut status = String::new();
    r.read_line(&mut status).await.unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_ascii_lowercase());
    }
    let len: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.unwrap();
    (
        status.trim_end().to_string(),
        headers,
        String::from_utf8(body).unwrap(),
    )
}

#[tokio::test]
async fn connections_are_kept_alive_without_nagle() {
    let env = env().await;
    assert_eq!(env.emu.connections().accepted, 0);
    // cfxm's client, one call after another: one connection for all of them.
    for _ in 0..25 {
        env.client.describe_regions().await.unwrap();
    }
    let stats = env.emu.connections();
    assert_eq!((stats.accepted, stats.no_delay), (1, 1), "{stats:?}");

    // A bare HTTP/1.1 client: two requests on one socket, both answered, none closing it.
    let tcp = tokio::net::TcpStream::connect(env.emu.addr())
        .await
        .unwrap();
    let mut conn = BufReader::new(tcp);
    for _ in 0..2 {
        conn.get_mut()
            .write_all(b"GET /_emulator/faults HTTP/1.1\r\nHost: emulator\r\n\r\n")
            .await
            .unwrap();
        let (status, headers, body) = read_response(&mut conn).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            !headers.iter().any(|h| h == "connection: close"),
            "{headers:?}"
        );
        assert!(body.contains("consistency_window_ms"));
    }
    let stats = env.emu.connections();
    assert_eq!((stats.accepted, stats.no_delay), (2, 2), "{stats:?}");
    env.emu.shutdown().await;
}
