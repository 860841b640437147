//! Placement against real EC2 errors (which moto never produces, so the proxy answers them with
//! EC2's shapes): `InsufficientInstanceCapacity` and `Unsupported` move an apply to the next
//! (type, zone); an unavailable zone (the original's heuristic) is not asked again for any
//! type; throttling is retried in place with the same token, never burning a candidate.

use crate::cfxm_tags;
use crate::proxy::{Fault, FaultBody};
use crate::world::{AwsWorld, IMAGE};

fn refuse(
    instance_type: &'static str,
    zone: &'static str,
    status: u16,
    code: &'static str,
    message: &'static str,
    times: usize,
) -> Fault {
    Fault {
        action: "RunInstances",
        when: vec![
            ("InstanceType", instance_type),
            ("Placement.AvailabilityZone", zone),
        ],
        times,
        status,
        body: FaultBody::Ec2 { code, message },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_outs_fall_back_to_the_next_type_and_zone_and_a_bad_zone_is_blocked() {
    let w = AwsWorld::start().await;
    w.register_image("us-east-1", IMAGE).await;
    let spec = w.spec(
        "stock",
        "name: stock
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
      - { name: m7i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 4, zones: [us-east-1a, us-east-1b, us-east-1c] }
placement: { backfill: false }
",
    );
    let many = 100;
    w.proxy.inject(refuse(
        "m6i.2xlarge",
        "us-east-1a",
        500,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient m6i.2xlarge capacity in the Availability Zone you requested (us-east-1a).",
        many,
    ));
    w.proxy.inject(refuse(
        "m6i.2xlarge",
        "us-east-1b",
        400,
        "InvalidParameterValue",
        "The requested availability zone us-east-1b is currently unavailable. Please choose another zone.",
        many,
    ));
    w.proxy.inject(refuse(
        "m6i.2xlarge",
        "us-east-1c",
        400,
        "Unsupported",
        "Your requested instance type (m6i.2xlarge) is not supported in your requested Availability Zone (us-east-1c).",
        many,
    ));
    w.proxy.inject(refuse(
        "m7i.2xlarge",
        "us-east-1a",
        500,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient m7i.2xlarge capacity in the Availability Zone you requested (us-east-1a).",
        many,
    ));
    // Were it asked, the blocked zone would answer; it must not be asked.
    w.proxy.inject(refuse(
        "m7i.2xlarge",
        "us-east-1c",
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
        1,
    ));

    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    assert!(
        out.stdout.contains("4 of 4 nodes on 4 running hosts"),
        "{}",
        out.transcript()
    );

    let hosts = w.instances("us-east-1", &cfxm_tags("alice", "stock")).await;
    assert_eq!(hosts.len(), 4);
    for h in &hosts {
        assert_eq!(h.instance_type.as_str(), "m7i.2xlarge");
        assert_eq!(h.zone.as_ref().map(|z| z.as_str()), Some("us-east-1c"));
    }

    // The candidates in the original's type-major order, the blocked zone skipped for the
    // second type, and the throttled call repeated with its token.
    let calls: Vec<(String, String, String)> = w
        .proxy
        .recorded_actions("RunInstances")
        .iter()
        .map(|r| {
            (
                r.get("InstanceType").unwrap().to_owned(),
                r.get("Placement.AvailabilityZone").unwrap().to_owned(),
                r.get("ClientToken").unwrap().to_owned(),
            )
        })
        .collect();
    let where_: Vec<(&str, &str)> = calls
        .iter()
        .map(|(t, z, _)| (t.as_str(), z.as_str()))
        .collect();
    assert_eq!(
        &where_[..5],
        [
            ("m6i.2xlarge", "us-east-1a"),
            ("m6i.2xlarge", "us-east-1b"),
            ("m6i.2xlarge", "us-east-1c"),
            ("m7i.2xlarge", "us-east-1a"),
            ("m7i.2xlarge", "us-east-1c"),
        ],
        "{calls:?}"
    );
    assert!(
        !where_.contains(&("m7i.2xlarge", "us-east-1b")),
        "the unavailable zone was asked again: {calls:?}"
    );
    assert_eq!(calls[5].0, "m7i.2xlarge");
    assert_eq!(
        calls[5].2, calls[4].2,
        "the throttled call is retried with its token"
    );
    assert!(
        calls[5..]
            .iter()
            .all(|(t, z, _)| t == "m7i.2xlarge" && z == "us-east-1c")
    );
    // The stock-outs were not retried in place: one call each.
    for (t, z) in [
        ("m6i.2xlarge", "us-east-1a"),
        ("m6i.2xlarge", "us-east-1b"),
        ("m6i.2xlarge", "us-east-1c"),
        ("m7i.2xlarge", "us-east-1a"),
    ] {
        assert_eq!(
            where_.iter().filter(|c| **c == (t, z)).count(),
            1,
            "{t} {z}"
        );
    }

    // Re-planned with the stock back: nothing to do, the hosts are kept where they are.
    w.proxy.clear_faults();
    let again = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, Some(0), "{}", again.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stock_anywhere_fails_the_region_clearly_and_keeps_what_was_made() {
    let w = AwsWorld::start().await;
    w.register_image("us-east-1", IMAGE).await;
    let spec = w.spec(
        "dry",
        "name: dry
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 3, zones: [us-east-1a] }
placement: { backfill: false }
",
    );
    // moto launches MinCount (1); the call for the other two is all or nothing and refused.
    w.proxy.inject(Fault {
        action: "RunInstances",
        when: vec![("MinCount", "2")],
        times: 100,
        status: 500,
        body: FaultBody::Ec2 {
            code: "InsufficientInstanceCapacity",
            message: "We currently do not have sufficient m6i.2xlarge capacity in the Availability Zone you requested (us-east-1a).",
        },
    });
    let out = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await;
    assert_eq!(out.code, Some(1), "{}", out.transcript());
    assert!(
        out.stderr.contains("`us-east-1` is 2 node(s) short")
            || out.stdout.contains("`us-east-1` is 2 node(s) short"),
        "{}",
        out.transcript()
    );
    let hosts = w.instances("us-east-1", &cfxm_tags("alice", "dry")).await;
    assert_eq!(hosts.len(), 1, "the host that was made is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_refusing_its_subnet_fails_once_and_is_left_out_of_the_next_plan() {
    let w = AwsWorld::start().await;
    w.register_image("us-east-1", IMAGE).await;
    // No `zones:`: every zone of the region that sells the type (moto: 1a-1d and 1f).
    let spec = w.spec(
        "bahrain",
        "name: bahrain
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 2 }
",
    );
    w.proxy.inject(Fault {
        action: "CreateSubnet",
        when: vec![("AvailabilityZone", "us-east-1b")],
        times: 100,
        status: 400,
        body: FaultBody::Ec2 {
            code: "InvalidParameterValue",
            message: "The requested availability zone us-east-1b is currently unavailable. Please choose another zone.",
        },
    });
    let first = w
        .run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await;
    assert_eq!(first.code, Some(1), "{}", first.transcript());
    let words = first
        .stderr
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        + &first
            .stdout
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    assert!(
        words.contains("the zone is unavailable"),
        "{}",
        first.transcript()
    );
    assert_eq!(w.proxy.recorded_actions("RunInstances").len(), 0);

    let plan = w.run("plan", &spec, &["--only", "infra"]).await.ok();
    let all = format!("{}{}", plan.stdout, plan.stderr);
    assert!(
        all.contains("zone `us-east-1b` is left out"),
        "{}",
        plan.transcript()
    );
    assert!(!plan.stdout.contains("us-east-1b 10."), "{}", plan.stdout);

    w.run("apply", &spec, &["--only", "infra", "--auto-approve"])
        .await
        .ok();
    let hosts = w
        .instances("us-east-1", &cfxm_tags("alice", "bahrain"))
        .await;
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts
            .iter()
            .all(|h| h.zone.as_ref().map(|z| z.as_str()) != Some("us-east-1b"))
    );
    assert_eq!(
        w.proxy
            .recorded_actions("CreateSubnet")
            .iter()
            .filter(|r| r.get("AvailabilityZone") == Some("us-east-1b"))
            .count(),
        1,
        "the refused zone is not asked again"
    );
}
