//! `cfxm emulator serve` and `cfxm emulator world` through the built binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cfxm::provider::aliyun::{
    Client, ClientConfig, CreateVpcRequest, Credentials, Endpoints, VpcQuery,
};

use super::*;

fn cfxm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cfxm"));
    c.env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("RUST_LOG");
    c
}

struct Served {
    child: std::process::Child,
    url: String,
    stderr: String,
}

/// Starts `cfxm emulator serve` on a free port and reads its startup lines.
fn serve(args: &[&str]) -> Served {
    let mut child = cfxm()
        .args(["emulator", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    err.read_line(&mut stderr).unwrap();
    // Keep draining stderr so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Served {
        child,
        url: url.trim().to_string(),
        stderr,
    }
}

fn stop(mut s: Served) -> std::process::ExitStatus {
    // SIGTERM to this child only, by its pid: the server shuts down gracefully.
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    s.child.wait().unwrap()
}

#[tokio::test]
async fn serve_prints_its_endpoint_serves_and_persists() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let s = serve(&[
        "--state",
        state.to_str().unwrap(),
        "--boot-delay",
        "30s",
        "--seed",
        "1",
    ]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    assert!(
        s.stderr
            .contains("access key id `cfxm-local`, secret `cfxm-local-secret`"),
        "{}",
        s.stderr
    );
    assert!(s.stderr.contains(&s.url));
    let client = Client::new(ClientConfig::new(
        Credentials::new("cfxm-local", "cfxm-local-secret"),
        Endpoints::single(&s.url, "the test").unwrap(),
    ))
    .unwrap();
    let region = cfxm::spec::RegionId::new(REGION);
    client
        .create_vpc(
            &region,
            &CreateVpcRequest {
                cidr_block: "10.0.0.0/16".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (status, knobs) = {
        let r = reqwest::get(format!("{}/_emulator/faults", s.url))
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(
        (status.as_u16(), knobs["boot_delay_ms"].as_u64()),
        (200, Some(30_000))
    );
    assert!(stop(s).success());

    // The next server starts from the saved world.
    let s = serve(&["--state", state.to_str().unwrap()]);
    let client = Client::new(ClientConfig::new(
        Credentials::new("cfxm-local", "cfxm-local-secret"),
        Endpoints::single(&s.url, "the test").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        client
            .describe_vpcs(&region, &VpcQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(stop(s).success());
}

#[test]
fn a_chosen_secret_is_never_printed() {
    let s = serve(&[
        "--access-key-id",
        "ak",
        "--access-key-secret",
        "hunter2-very-secret",
    ]);
    assert!(s.stderr.contains("access key id `ak`"), "{}", s.stderr);
    assert!(!s.stderr.contains("hunter2"), "{}", s.stderr);
    assert!(stop(s).success());
}

#[test]
fn world_prints_an_editable_world_and_bad_worlds_are_refused() {
    let out = cfxm().args(["emulator", "world"]).output().unwrap();
    assert!(out.status.success());
    let world: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(world["regions"].as_array().unwrap().len() >= 8);

    let dir = tempfile::tempdir().unwrap();
    let mut bad = world.clone();
    bad["regions"][0]["zones"][0]["stock"]["ecs.imaginary"] = 5.into();
    let path = dir.path().join("world.json");
    std::fs::write(&path, bad.to_string()).unwrap();
    let out = cfxm()
        .args(["emulator", "serve", "--listen", "127.0.0.1:0", "--world"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ecs.imaginary"), "{stderr}");

    // A small custom world works: one region, one zone, loopback addresses for everything.
    let small = serde_json::json!({
        "public_ip_pool": "127.0.16.0/24",
        "public_ip": "always",
        "instance_types": [{"id": "ecs.g8i.2xlarge", "cpu": 8, "memory_gib": 32}],
        "regions": [{"id": "local-1", "zones": [{"id": "local-1a", "stock": {"ecs.g8i.2xlarge": 2}}],
                     "images": [{"name": "conflux-docker-registry"}]}]
    });
    std::fs::write(&path, small.to_string()).unwrap();
    let s = serve(&["--world", path.to_str().unwrap()]);
    assert!(s.stderr.contains("for 1 regions"), "{}", s.stderr);
    assert!(stop(s).success());
}

#[test]
fn help_names_the_knobs() {
    let out = cfxm()
        .args(["emulator", "serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--world",
        "--state",
        "--access-key-id",
        "--boot-delay",
        "--throttle-rate",
        "--error-rate",
        "--clock-speed",
        "--consistency-window",
        "--release-delay",
        "--realistic",
        "/_emulator/faults",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
