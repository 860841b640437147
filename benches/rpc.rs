//! Node JSON-RPC latency: the same `test_sayHello` calls straight to a loopback port (the
//! local transport's path) and through a loopback OpenSSH sshd's `direct-tcpip` forwarding
//! (the path to cloud nodes), both over `RpcClient` with its keep-alive pool. Prints figures;
//! asserts nothing.
//!
//! Run: `cargo bench --bench rpc` (needs `openssh-server`; `scripts/test` installs it).
//! `CFXM_BENCH_CALLS` sets the sequential calls per path (default 2000).

#[path = "../tests/ssh/sshd.rs"]
mod sshd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfxm::ssh::{KnownHosts, LocalTransport, SshOptions, SshPool, SshTarget, Transport};
use cfxm::stages::{Endpoint, RpcClient};
use serde_json::{Value, json};
use sshd::Sshd;

/// Calls in flight in the concurrent round (`CFXM_BENCH_IN_FLIGHT`): by default the RPC
/// client's idle bound per node, so every call reuses a kept connection (more would measure
/// opening streams instead).
fn in_flight() -> usize {
    std::env::var("CFXM_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

async fn node_rpc() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|body: axum::Json<Value>| async move {
            axum::Json(json!({"jsonrpc": "2.0", "id": body["id"], "result": "Hello, world"}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(name: &str, ep: &Endpoint, calls: usize) {
    let rpc = RpcClient::new(in_flight().max(1), Duration::from_secs(30));
    // Warm up: the SSH login and the first stream are not what is measured.
    rpc.say_hello(ep).await.unwrap();
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        rpc.say_hello(ep).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let start = Instant::now();
    let total = calls * 4;
    let mut done = 0;
    while done < total {
        let batch: Vec<_> = (0..in_flight()).map(|_| rpc.say_hello(ep)).collect();
        for r in futures_util::future::join_all(batch).await {
            r.unwrap();
        }
        done += in_flight();
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<34} p50 {:>7.0} µs  p99 {:>7.0} µs  {:>8.0} calls/s at {} in flight  ({} connections)",
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        rate,
        in_flight(),
        rpc.connections_opened(),
    );
}

fn main() {
    let calls: usize = std::env::var("CFXM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cfxm rpc benchmark: {calls} sequential + {} concurrent `test_sayHello` per path, {} CPUs, load average {}",
        calls * 4,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rt.block_on(async {
        let port = node_rpc().await;
        let local: Arc<dyn Transport> = Arc::new(LocalTransport::new("local", work.path()));
        measure(
            "direct (local transport)",
            &Endpoint::new(local, port),
            calls,
        )
        .await;
        let pool = SshPool::new(
            KnownHosts::open(work.path().join("known_hosts"), false).unwrap(),
            SshOptions::default(),
        );
        let ssh: Arc<dyn Transport> = Arc::new(pool.transport(SshTarget {
            label: "sshd".into(),
            host: "127.0.0.1".into(),
            port: sshd.port,
            user: sshd.user.clone(),
            key: sshd.user_key(),
        }));
        measure(
            "through sshd (direct-tcpip)",
            &Endpoint::new(ssh, port),
            calls,
        )
        .await;
        println!("SSH logins: {}", pool.stats().connections);
    });
}
