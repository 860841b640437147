//! The emulator's realism knobs, persistence, control endpoints and wire details, each
//! observed through the API as a client would see it.

use std::time::{Duration, Instant};

use cfxm::emulator::{EmulatorConfig, Knobs};
use cfxm::provider::ErrorClass;
use cfxm::provider::aliyun::{
    CreateVSwitchRequest, CreateVpcRequest, InstanceQuery, InstanceStatus, RunInstancesRequest,
    VpcQuery, sign,
};
use serde_json::{Value, json};

use super::*;

fn knobs(k: Knobs) -> EmulatorConfig {
    EmulatorConfig {
        knobs: k,
        ..Default::default()
    }
}

#[tokio::test]
async fn boot_goes_pending_starting_running_on_the_emulated_clock() {
    let env = env_with(knobs(Knobs {
        boot_delay_ms: 40_000,
        ..Knobs::default()
    }))
    .await;
    let net = network(&env).await;
    let ids = env
        .client
        .run_instances(&env.region, &run_request(&net, 3))
        .await
        .unwrap()
        .instance_ids;
    let status = || async {
        let s = env
            .client
            .describe_instance_status(&env.region, &ids)
            .await
            .unwrap();
        assert_eq!(s.len(), 3);
        s[0].status
    };
    assert_eq!(status().await, InstanceStatus::Pending);
    env.emu.advance_clock(Duration::from_secs(15));
    assert_eq!(status().await, InstanceStatus::Starting);
    env.emu.advance_clock(Duration::from_secs(30));
    assert_eq!(status().await, InstanceStatus::Running);
    // Every instance has both addresses from the start.
    for i in env
        .client
        .describe_instances(&env.region, &InstanceQuery::default())
        .await
        .unwrap()
    {
        assert!(i.public_ip().is_some() && i.private_ip().is_some());
    }
    env.emu.shutdown().await;
}

#[tokio::test]
async fn clock_speed_runs_delays_faster() {
    let env = env_with(knobs(Knobs {
        boot_delay_ms: 20_000,
        clock_speed: 1000.0,
        ..Knobs::default()
    }))
    .await;
    let net = network(&env).await;
    let ids = env
        .client
        .run_instances(&env.region, &run_request(&net, 1))
        .await
        .unwrap()
        .instance_ids;
    // 20 emulated seconds at 1000× are 20 real milliseconds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = env
        .client
        .describe_instance_status(&env.region, &ids)
        .await
        .unwrap();
    assert_eq!(s[0].status, InstanceStatus::Running);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn networks_are_pending_then_available() {
    let env = env_with(knobs(Knobs {
        network_delay_ms: 5_000,
        ..Knobs::default()
    }))
    .await;
    let c = &env.client;
    let r = &env.region;
    let vpc = c
        .create_vpc(
            r,
            &CreateVpcRequest {
                cidr_block: "10.0.0.0/16".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .vpc_id;
    assert_eq!(
        c.describe_vpcs(r, &VpcQuery::default()).await.unwrap()[0].status,
        "Pending"
    );
    let vsw = CreateVSwitchRequest {
        vpc_id: vpc.clone(),
        zone_id: ZONE.into(),
        cidr_block: "10.0.0.0/20".into(),
        ..Default::default()
    };
    let e = c.create_vswitch(r, &vsw).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("IncorrectVpcStatus", ErrorClass::Conflict)
    );
    let e = c.delete_vpc(r, &vpc).await.unwrap_err();
    assert_eq!(e.code, "IncorrectVpcStatus");
    env.emu.advance_clock(Duration::from_secs(5));
    assert_eq!(
        c.describe_vpcs(r, &VpcQuery::default()).await.unwrap()[0].status,
        "Available"
    );
    let id = c.create_vswitch(r, &vsw).await.unwrap();
    let e = c.delete_vswitch(r, &id).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("IncorrectVSwitchStatus", ErrorClass::Conflict)
    );
    env.emu.advance_clock(Duration::from_secs(5));
    c.delete_vswitch(r, &id).await.unwrap();
    env.emu.shutdown().await;
}

#[tokio::test]
async fn new_resources_are_invisible_for_the_consistency_window() {
    let env = env_with(knobs(Knobs {
        consistency_window_ms: 2_000,
        ..Knobs::default()
    }))
    .await;
    let c = &env.client;
    let r = &env.region;
    c.create_vpc(
        r,
        &CreateVpcRequest {
            cidr_block: "10.0.0.0/16".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        c.describe_vpcs(r, &VpcQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    env.emu.advance_clock(Duration::from_millis(2_000));
    assert_eq!(
        c.describe_vpcs(r, &VpcQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn released_instances_linger_and_block_their_dependencies() {
    let env = env_with(knobs(Knobs {
        release_delay_ms: 10_000,
        ..Knobs::default()
    }))
    .await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    let ids = c
        .run_instances(r, &run_request(&net, 2))
        .await
        .unwrap()
        .instance_ids;
    c.delete_instances(r, &ids, true).await.unwrap();
    let listed = c
        .describe_instances(r, &InstanceQuery::default())
        .await
        .unwrap();
    assert!(listed.iter().all(|i| i.status == InstanceStatus::Stopping));
    // Deleting again while releasing is accepted (idempotent), the group is still in use.
    c.delete_instances(r, &ids, true).await.unwrap();
    let e = c.delete_security_group(r, &net.sg).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("DependencyViolation", ErrorClass::Conflict)
    );
    env.emu.advance_clock(Duration::from_secs(10));
    assert!(
        c.describe_instances(r, &InstanceQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    c.delete_security_group(r, &net.sg).await.unwrap();
    env.emu.shutdown().await;
}

#[tokio::test]
async fn client_token_makes_creates_idempotent() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    let req = RunInstancesRequest {
        client_token: Some("cfxm-0123456789abcdef-0".into()),
        ..run_request(&net, 4)
    };
    let first = c.run_instances(r, &req).await.unwrap();
    let again = c.run_instances(r, &req).await.unwrap();
    assert_eq!(first.instance_ids, again.instance_ids);
    assert_ne!(first.request_id, again.request_id);
    assert_eq!(
        env.emu.world().of_kind("instance").count(),
        4,
        "the retry created nothing"
    );
    let vpc = CreateVpcRequest {
        cidr_block: "10.1.0.0/16".into(),
        client_token: Some("vpc-tok".into()),
        ..Default::default()
    };
    let a = c.create_vpc(r, &vpc).await.unwrap();
    let b = c.create_vpc(r, &vpc).await.unwrap();
    assert_eq!(a.vpc_id, b.vpc_id);
    // The same token in another region is another request.
    let other = cfxm::spec::RegionId::new("cn-hongkong");
    assert_ne!(c.create_vpc(&other, &vpc).await.unwrap().vpc_id, a.vpc_id);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let env = env_with(knobs(Knobs {
        latency_ms: 150,
        ..Knobs::default()
    }))
    .await;
    let t = Instant::now();
    env.client.describe_regions().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    let logged = env.emu.calls();
    assert!(logged[0].latency_ms >= 150.0);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emu/state.json");
    let config = || EmulatorConfig {
        state_file: Some(state.clone()),
        ..Default::default()
    };
    let env = env_with(config()).await;
    assert!(state.exists(), "a fresh world is written at start");
    let net = network(&env).await;
    let ids = env
        .client
        .run_instances(&env.region, &run_request(&net, 3))
        .await
        .unwrap()
        .instance_ids;
    let stock = env.emu.world().stock_of(ZONE, TYPE).unwrap();
    // Written after each change: the file already has the instances, as valid JSON.
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved["world"]["regions"][REGION]["instances"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    env.emu.shutdown().await;

    let env = env_with(config()).await;
    let listed = env
        .client
        .describe_instances(&env.region, &InstanceQuery::default())
        .await
        .unwrap();
    let mut got: Vec<String> = listed.iter().map(|i| i.instance_id.clone()).collect();
    got.sort();
    assert_eq!(got, ids);
    assert_eq!(env.emu.world().stock_of(ZONE, TYPE).unwrap(), stock);
    // New ids keep sorting after the old ones.
    let more = env
        .client
        .run_instances(&env.region, &run_request(&net, 1))
        .await
        .unwrap()
        .instance_ids;
    assert!(more[0] > ids[2]);
    env.emu.shutdown().await;

    std::fs::write(&state, "{broken").unwrap();
    let e = cfxm::emulator::Emulator::start(config()).await.unwrap_err();
    assert!(e.to_string().contains("state.json"), "{e}");
}

async fn http_json(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn control_endpoints() {
    let env = env().await;
    let base = env.emu.endpoint_url();
    let net = network(&env).await;
    env.client
        .run_instances(&env.region, &run_request(&net, 2))
        .await
        .unwrap();

    let (status, world) = http_json(
        reqwest::Method::GET,
        &format!("{base}/_emulator/world"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = world["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for k in ["vpc", "vswitch", "security_group", "instance", "image"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let inst = world["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "instance")
        .unwrap();
    assert_eq!(
        (
            inst["region"].as_str(),
            inst["zone"].as_str(),
            inst["status"].as_str()
        ),
        (Some(REGION), Some(ZONE), Some("Running"))
    );
    assert_eq!(inst["tags"].as_array().unwrap().len(), 3);

    let (_, calls) = http_json(
        reqwest::Method::GET,
        &format!("{base}/_emulator/calls"),
        None,
    )
    .await;
    let calls = calls.as_array().unwrap();
    let run = calls
        .iter()
        .find(|c| c["action"] == "RunInstances")
        .unwrap();
    assert_eq!(
        (
            run["api"].as_str(),
            run["region"].as_str(),
            run["status"].as_u64()
        ),
        (Some("ecs"), Some(REGION), Some(200))
    );
    assert!(run["latency_ms"].as_f64().is_some());
    let last = calls.last().unwrap()["seq"].as_u64().unwrap();
    let (_, none) = http_json(
        reqwest::Method::GET,
        &format!("{base}/_emulator/calls?since={last}"),
        None,
    )
    .await;
    assert!(none.as_array().unwrap().is_empty());

    let (status, k) = http_json(
        reqwest::Method::POST,
        &format!("{base}/_emulator/faults"),
        Some(json!({"boot_delay_ms": 1000})),
    )
    .await;
    assert_eq!((status, k["boot_delay_ms"].as_u64()), (200, Some(1000)));
    assert_eq!(env.emu.knobs().boot_delay_ms, 1000);
    let (status, e) = http_json(
        reqwest::Method::POST,
        &format!("{base}/_emulator/faults"),
        Some(json!({"nope": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("unknown knob"));
    let (_, k) = http_json(
        reqwest::Method::GET,
        &format!("{base}/_emulator/faults"),
        None,
    )
    .await;
    assert_eq!(
        k["boot_delay_ms"].as_u64(),
        Some(1000),
        "a refused patch changes nothing"
    );

    let ids = env
        .client
        .run_instances(&env.region, &run_request(&net, 1))
        .await
        .unwrap()
        .instance_ids;
    assert_eq!(
        env.client
            .describe_instance_status(&env.region, &ids)
            .await
            .unwrap()[0]
            .status,
        InstanceStatus::Pending
    );
    let (status, _) = http_json(
        reqwest::Method::POST,
        &format!("{base}/_emulator/clock"),
        Some(json!({"advance_ms": 1000})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.client
            .describe_instance_status(&env.region, &ids)
            .await
            .unwrap()[0]
            .status,
        InstanceStatus::Running
    );

    let (status, _) = http_json(
        reqwest::Method::POST,
        &format!("{base}/_emulator/stock"),
        Some(json!({"zone": ZONE, "instance_type": TYPE, "count": 7})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.emu.world().stock_of(ZONE, TYPE), Some(7));

    let (status, _) = http_json(
        reqwest::Method::POST,
        &format!("{base}/_emulator/reset"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let w = env.emu.world();
    assert_eq!(w.of_kind("instance").count() + w.of_kind("vpc").count(), 0);
    assert!(env.emu.calls().is_empty());
    assert_eq!(
        w.stock_of(ZONE, TYPE),
        Some(3000),
        "reset restores the catalog's stock"
    );
    env.emu.shutdown().await;
}

/// A V1 (RPC) request built by hand, to exercise wire variants the client never sends.
fn v1_params(nonce: &str, timestamp: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("Action", "DescribeZones"),
        ("Version", "2014-05-26"),
        ("Format", "JSON"),
        ("AccessKeyId", "cfxm-local"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", timestamp),
        ("SignatureType", ""),
        ("RegionId", REGION),
    ]
    .iter()
    .chain(extra.iter())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.sort();
    p
}

fn signed(method: &str, mut p: Vec<(String, String)>) -> Vec<(String, String)> {
    let sig = sign::v1_signature(
        "cfxm-local-secret",
        method,
        p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    p.push(("Signature".into(), sig));
    p
}

fn form(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn wire_variants_replay_and_stale_requests() {
    let env = env().await;
    let base = env.emu.endpoint_url();
    let http = reqwest::Client::new();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();

    // GET with everything in the query.
    let p = signed("GET", v1_params("n-get", &now, &[("Verbose", "False")]));
    let r = http
        .get(format!("{base}/?{}", form(&p)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Zones"]["Zone"].as_array().unwrap().len(), 3);

    // Terraform style: common parameters in the query, business ones in a form body.
    let p = signed("POST", v1_params("n-form", &now, &[]));
    let (common, business): (Vec<_>, Vec<_>) = p.into_iter().partition(|(k, _)| k != "RegionId");
    let r = http
        .post(format!("{base}/?{}", form(&common)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&business))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A replayed nonce.
    let p = signed("POST", v1_params("n-once", &now, &[]));
    assert_eq!(
        http.post(format!("{base}/?{}", form(&p)))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = http
        .post(format!("{base}/?{}", form(&p)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureNonceUsed");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["Code", "HostId", "Message", "Recommend", "RequestId"]
    );
    assert_eq!(body["HostId"], base.trim_start_matches("http://"));
    assert!(body["Recommend"].as_str().unwrap().starts_with(
        "https://api.aliyun.com/troubleshoot?q=SignatureNonceUsed&product=Ecs&requestId="
    ));

    // A timestamp 20 minutes old.
    let stale = (chrono::Utc::now() - chrono::Duration::minutes(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let p = signed("POST", v1_params("n-stale", &stale, &[]));
    let body: Value = http
        .post(format!("{base}/?{}", form(&p)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["Code"], "InvalidTimeStamp.Expired");

    // Unsigned, and an unknown action.
    let body: Value = http
        .post(format!("{base}/?Action=DescribeRegions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["Code"], "IncompleteSignature");
    let p = signed(
        "POST",
        v1_params("n-nope", &now, &[("Action", "LaunchRockets")])
            .into_iter()
            .filter(|(k, v)| !(k == "Action" && v == "DescribeZones"))
            .collect(),
    );
    let r = http
        .post(format!("{base}/?{}", form(&p)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Code"], "InvalidAction.NotFound");

    let logged = env.emu.calls();
    assert_eq!(logged.iter().filter(|c| c.status == 200).count(), 3);
    assert!(
        logged
            .iter()
            .any(|c| c.code.as_deref() == Some("SignatureNonceUsed"))
    );
    env.emu.shutdown().await;
}
