//! Node JSON-RPC through the SSH connection (`Transport::connect_tcp` + `RpcClient`): a small
//! JSON-RPC server on loopback stands in for a node's RPC port, reached only through sshd's
//! `direct-tcpip` forwarding, as the stages reach real nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cfxm::ssh::{SshOptions, Transport, TransportError};
use cfxm::stages::{Endpoint, RpcClient, RpcError};
use miette::Diagnostic;
use serde_json::{Value, json};

use super::sshd::Sshd;
use super::{ssh_pool, ssh_target};

const HASH: &str = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A JSON-RPC server on 127.0.0.1 answering `test_sayHello` and `cfx_getBestBlockHash` like a
/// node; returns its port and a count of the TCP connections it accepted.
async fn node_rpc() -> (u16, Arc<AtomicU64>) {
    use axum::serve::{Listener, ListenerExt};
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .tap_io(move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|body: axum::Json<Value>| async move {
            let result = match body["method"].as_str() {
                Some("test_sayHello") => json!("Hello, world"),
                Some("cfx_getBestBlockHash") => json!(HASH),
                _ => {
                    return axum::Json(json!({"jsonrpc": "2.0", "id": body["id"],
                        "error": {"code": -32601, "message": "Method not found"}}));
                }
            };
            axum::Json(json!({"jsonrpc": "2.0", "id": body["id"], "result": result}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, accepted)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn rpc_goes_through_the_ssh_connection_and_reuses_it() {
    let sshd = Sshd::start();
    let pool = ssh_pool(&sshd, SshOptions::default());
    let host: Arc<dyn Transport> = Arc::new(pool.transport(ssh_target(&sshd, "h1", "127.0.0.1")));
    let (port, accepted) = node_rpc().await;
    let ep = Endpoint::new(host.clone(), port);
    let rpc = RpcClient::new(16, Duration::from_secs(30));

    // Sequential calls: one SSH login, one forwarded stream, one HTTP connection.
    for _ in 0..50 {
        rpc.say_hello(&ep).await.unwrap();
        assert_eq!(rpc.best_block_hash(&ep).await.unwrap(), HASH);
    }
    assert_eq!(pool.stats().connections, 1);
    assert_eq!(pool.stats().tunnels, 1);
    assert_eq!(rpc.connections_opened(), 1);
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    assert_eq!(sshd.logins(), 1);
    // One command ran first (`true`, so sshd turns on TCP_NODELAY for the connection).
    assert_eq!(pool.stats().sessions, 1);

    // Concurrent calls open more streams, all on the same SSH connection.
    let calls: Vec<_> = (0..32).map(|_| rpc.say_hello(&ep)).collect();
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(pool.stats().connections, 1);
    assert_eq!(sshd.logins(), 1);
    let streams = pool.stats().tunnels;
    assert!((2..=33).contains(&streams), "{streams} streams");
    assert_eq!(accepted.load(Ordering::Relaxed), streams);

    // A JSON-RPC error comes back as the node's error, naming the host.
    let e = rpc.call(&ep, "test_nothing", None).await.unwrap_err();
    assert!(matches!(e, RpcError::Node { code: -32601, .. }), "{e:?}");

    // Nothing on a port: the node's problem (retried by the stages), and the SSH connection
    // stays usable.
    let closed = Endpoint::new(host.clone(), free_port());
    let e = rpc.say_hello(&closed).await.unwrap_err();
    assert!(matches!(e, RpcError::Unreachable { .. }), "{e:?}");
    assert!(!e.is_permanent());
    assert!(e.to_string().starts_with("h1 (") && e.to_string().contains("nothing accepts"));
    rpc.say_hello(&ep).await.unwrap();
    assert_eq!(pool.stats().connections, 1);
}

#[tokio::test]
async fn forwarding_disabled_names_the_host_and_the_fix() {
    let sshd = Sshd::start_with(&["127.0.0.1"], "AllowTcpForwarding no");
    let pool = ssh_pool(&sshd, SshOptions::default());
    let host: Arc<dyn Transport> = Arc::new(pool.transport(ssh_target(&sshd, "h1", "127.0.0.1")));
    let (port, accepted) = node_rpc().await;

    let e = match host.connect_tcp(port).await {
        Err(e) => e,
        Ok(_) => panic!("sshd forwarded despite `AllowTcpForwarding no`"),
    };
    assert!(
        matches!(e, TransportError::ForwardingRefused { .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());

    let rpc = RpcClient::new(4, Duration::from_secs(30));
    let e = rpc
        .say_hello(&Endpoint::new(host.clone(), port))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with(&format!("h1 ({}@127.0.0.1:{}) rpc port {port}: `test_sayHello` could not reach the node: the SSH server refused to forward", sshd.user, sshd.port)),
        "{text}"
    );
    let help = e.help().unwrap().to_string();
    assert!(help.contains("`AllowTcpForwarding yes`"), "{help}");
    assert!(e.is_permanent(), "{e:?}");
    assert_eq!(e.kind(), "transport");
    // The SSH login itself worked; nothing reached the node.
    assert_eq!(pool.stats().connections, 1);
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
}
