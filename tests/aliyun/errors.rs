//! Every error class, produced by the emulator for real reasons and classified by the client's
//! one classification function (aliyun-api.md §4).

use std::time::Duration;

use cfxm::emulator::{EmulatorConfig, Knobs};
use cfxm::provider::ErrorClass;
use cfxm::provider::aliyun::{
    AliyunError, Client, ClientConfig, CreateVSwitchRequest, CreateVpcRequest, Credentials,
    Endpoints, InstanceQuery, RunInstancesRequest, Signing, local_codes,
};

use super::*;

fn assert_err(e: &AliyunError, class: ErrorClass, code: &str, status: Option<u16>) {
    assert_eq!(e.class, class, "{e}");
    assert_eq!(e.code, code, "{e}");
    assert_eq!(e.status, status, "{e}");
}

#[tokio::test]
async fn no_capacity() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    env.emu.set_stock(ZONE, TYPE, Some(3)).unwrap();
    let all_or_nothing = RunInstancesRequest {
        min_amount: None,
        ..run_request(&net, 5)
    };
    let e = c.run_instances(r, &all_or_nothing).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NoCapacity,
        "OperationDenied.NoStock",
        Some(403),
    );
    assert_eq!(
        env.emu.world().of_kind("instance").count(),
        0,
        "nothing created"
    );
    assert!(e.request_id.is_some());
    let msg = e.to_string();
    assert!(msg.starts_with("`RunInstances` in `ap-southeast-1` failed with `OperationDenied.NoStock` (HTTP 403, request id "), "{msg}");
    assert!(
        msg.ends_with("try another zone, instance type or region (cfxm re-plans placement)"),
        "{msg}"
    );
    // With MinAmount the service creates what stock allows.
    let some = c.run_instances(r, &run_request(&net, 5)).await.unwrap();
    assert_eq!(some.instance_ids.len(), 3);

    env.emu.set_stock(ZONE, TYPE, None).unwrap();
    let e = c.run_instances(r, &run_request(&net, 1)).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NoCapacity,
        "InvalidResourceType.NotSupported",
        Some(403),
    );
    let nowhere = RunInstancesRequest {
        zone_id: Some("ap-southeast-1z".into()),
        ..run_request(&net, 1)
    };
    let e = c.run_instances(r, &nowhere).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NotFound,
        "InvalidZoneId.NotFound",
        Some(404),
    );
    let unknown = RunInstancesRequest {
        instance_type: "ecs.nope.large".into(),
        ..run_request(&net, 1)
    };
    let e = c.run_instances(r, &unknown).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NoCapacity,
        "InvalidInstanceType.ValueNotSupported",
        Some(400),
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn not_found_conflict_and_fatal() {
    let env = env_with(EmulatorConfig {
        knobs: Knobs {
            boot_delay_ms: 60_000,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;

    let e = c.delete_vswitch(r, "vsw-nope").await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NotFound,
        "InvalidVSwitchId.NotFound",
        Some(404),
    );
    let e = c.delete_security_group(r, "sg-nope").await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::NotFound,
        "InvalidSecurityGroupId.NotFound",
        Some(404),
    );
    let e = c
        .delete_instances(r, &["i-nope".to_string()], true)
        .await
        .unwrap_err();
    assert_err(
        &e,
        ErrorClass::NotFound,
        "InvalidInstanceIds.NotFound",
        Some(404),
    );
    let e = c.delete_vpc(r, "vpc-nope").await.unwrap_err();
    assert_err(&e, ErrorClass::NotFound, "InvalidVpcId.NotFound", Some(404));
    // Unknown ids in a DescribeInstances filter are simply absent (Terraform's not-found signal).
    let none = c
        .describe_instances(
            r,
            &InstanceQuery {
                ids: vec!["i-nope".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    let e = c.delete_vpc(r, &net.vpc).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::Conflict,
        "DependencyViolation.VSwitch",
        Some(400),
    );
    let ids = c
        .run_instances(r, &run_request(&net, 2))
        .await
        .unwrap()
        .instance_ids;
    let e = c.delete_instances(r, &ids, true).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::Conflict,
        "IncorrectInstanceStatus.Initializing",
        Some(403),
    );
    let e = c.delete_security_group(r, &net.sg).await.unwrap_err();
    assert_err(&e, ErrorClass::Conflict, "DependencyViolation", Some(400));
    let e = c.delete_vswitch(r, &net.vswitch).await.unwrap_err();
    assert_err(&e, ErrorClass::Conflict, "DependencyViolation", Some(400));

    // Idempotency misuse and bad requests are fatal.
    let token = RunInstancesRequest {
        client_token: Some("cfxm-tok-1".into()),
        ..run_request(&net, 1)
    };
    c.run_instances(r, &token).await.unwrap();
    let changed = RunInstancesRequest {
        amount: 2,
        ..token.clone()
    };
    let e = c.run_instances(r, &changed).await.unwrap_err();
    assert_err(
        &e,
        ErrorClass::Fatal,
        "IdempotentParameterMismatch",
        Some(400),
    );
    let e = c
        .create_vswitch(
            r,
            &CreateVSwitchRequest {
                vpc_id: net.vpc.clone(),
                zone_id: ZONE.into(),
                cidr_block: "192.168.0.0/24".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_err(
        &e,
        ErrorClass::Fatal,
        "InvalidCidrBlock.Malformed",
        Some(400),
    );
    // A vSwitch with 4 usable addresses runs out (a quota: fatal here, "use another vSwitch").
    let tiny = c
        .create_vswitch(
            r,
            &CreateVSwitchRequest {
                vpc_id: net.vpc.clone(),
                zone_id: ZONE.into(),
                cidr_block: "10.0.200.0/29".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = c
        .run_instances(
            r,
            &RunInstancesRequest {
                vswitch_id: tiny,
                min_amount: None,
                ..run_request(&net, 5)
            },
        )
        .await
        .unwrap_err();
    assert_err(
        &e,
        ErrorClass::Fatal,
        "QuotaExceeded.PrivateIpAddress",
        Some(400),
    );
    // The client refuses what the API would refuse, without a call.
    let calls = env.emu.calls().len();
    let e = c
        .run_instances(r, &run_request(&net, 101))
        .await
        .unwrap_err();
    assert_err(&e, ErrorClass::Fatal, local_codes::INVALID_REQUEST, None);
    assert_eq!(env.emu.calls().len(), calls);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn authentication_failures_are_fatal() {
    let env = env().await;
    let endpoints = Endpoints::single(&env.emu.endpoint_url(), "the test").unwrap();
    for signing in [Signing::V3, Signing::V1] {
        let mut cfg = ClientConfig::new(
            Credentials::new("cfxm-local", "wrong-secret"),
            endpoints.clone(),
        );
        cfg.signing = signing;
        let e = Client::new(cfg)
            .unwrap()
            .describe_regions()
            .await
            .unwrap_err();
        assert_err(&e, ErrorClass::Fatal, "SignatureDoesNotMatch", Some(400));
        assert!(
            e.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            "{e}"
        );
        let mut cfg = ClientConfig::new(Credentials::new("someone-else", "x"), endpoints.clone());
        cfg.signing = signing;
        let e = Client::new(cfg)
            .unwrap()
            .describe_regions()
            .await
            .unwrap_err();
        assert_err(
            &e,
            ErrorClass::Fatal,
            "InvalidAccessKeyId.NotFound",
            Some(404),
        );
    }
    env.emu.shutdown().await;
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let env = env().await;
    // One token a second: slow enough that a loaded machine still fits three calls in it.
    env.emu
        .set_faults(&serde_json::json!({"throttle_rate": 1.0, "throttle_burst": 2}))
        .unwrap();
    let c = &env.client;
    c.describe_zones(&env.region, false).await.unwrap();
    c.describe_zones(&env.region, false).await.unwrap();
    let e = c.describe_zones(&env.region, false).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("Throttling.User", Some(400)));
    let wait = e.retry_after().expect("x-acs-retry-after is parsed");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(1000),
        "{wait:?}"
    );
    assert!(matches!(
        e.class,
        ErrorClass::Throttled {
            retry_after: Some(_)
        }
    ));
    // Buckets are per (region, action): another action or region is not throttled.
    c.describe_instances(&env.region, &InstanceQuery::default())
        .await
        .unwrap();
    c.describe_zones(&cfxm::spec::RegionId::new("cn-hongkong"), false)
        .await
        .unwrap();
    // Honouring the wait gets through.
    tokio::time::sleep(wait).await;
    c.describe_zones(&env.region, false).await.unwrap();
    env.emu.shutdown().await;
}

#[tokio::test]
async fn transient_server_and_transport_failures() {
    let env = env().await;
    env.emu
        .set_faults(&serde_json::json!({"error_rate": 1.0}))
        .unwrap();
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let e = env.client.describe_regions().await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient, "{e}");
        codes.insert((e.code.clone(), e.status));
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        [
            ("InternalError".to_string(), Some(500)),
            ("ServiceUnavailable".to_string(), Some(503))
        ]
    );
    // Faults come before the world: nothing was created by a failed create.
    let e = env
        .client
        .create_vpc(
            &env.region,
            &CreateVpcRequest {
                cidr_block: "10.0.0.0/16".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(env.emu.world().of_kind("vpc").count(), 0);
    let addr = env.emu.endpoint_url();
    env.emu.shutdown().await;

    // Nothing listens any more: a transport error, transient, with advice about the endpoint.
    let client = Client::new(ClientConfig::new(
        Credentials::new("cfxm-local", "cfxm-local-secret"),
        Endpoints::single(&addr, "the test").unwrap(),
    ))
    .unwrap();
    let e = client.describe_regions().await.unwrap_err();
    assert_err(&e, ErrorClass::Transient, local_codes::TRANSPORT, None);
    assert!(e.to_string().contains("CFXM_ALIYUN_ENDPOINT"), "{e}");
}
