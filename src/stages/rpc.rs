//! The node's JSON-RPC, as the stages call it (conflux-node.md §2): one shared HTTP client for
//! every node, bounded in-flight calls, a timeout per call, and typed helpers for the methods
//! the experiment uses.
//!
//! Requests are JSON-RPC 2.0 POSTs and, like the harness's `jsonrpcclient`, omit `params` when
//! a method takes none. Any `error` member is a failure ([`RpcError::Node`]); everything else
//! that goes wrong (refused connection, timeout, non-200, a reply that is not JSON-RPC) names
//! the endpoint, so a failure budget can report which node failed and why.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::devnode::{NodeId, recover_node_id};

/// Where one node's public JSON-RPC listens, `http://ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(Arc<str>);

impl Endpoint {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Endpoint(format!("http://{addr}").into())
    }

    pub fn url(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum RpcError {
    /// No HTTP exchange: connection refused or reset, DNS, TLS.
    #[error("{endpoint}: `{method}` could not be sent: {cause}")]
    #[diagnostic(
        code(cfxm::rpc::unreachable),
        help("is the node running? its RPC port must be reachable from this machine")
    )]
    Unreachable {
        endpoint: Endpoint,
        method: String,
        cause: String,
    },
    #[error("{endpoint}: `{method}` got no answer within {after:?}")]
    #[diagnostic(code(cfxm::rpc::timeout), help("the node is overloaded or hung"))]
    Timeout {
        endpoint: Endpoint,
        method: String,
        after: Duration,
    },
    #[error("{endpoint}: `{method}` answered HTTP {status}")]
    #[diagnostic(code(cfxm::rpc::http))]
    Http {
        endpoint: Endpoint,
        method: String,
        status: u16,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{endpoint}: `{method}` failed: {message} (code {code})")]
    #[diagnostic(
        code(cfxm::rpc::node),
        help(
            "the node refused the call; test RPCs need `mode=\"test\"` and `public_rpc_apis` with `test` and `debug`"
        )
    )]
    Node {
        endpoint: Endpoint,
        method: String,
        code: i64,
        message: String,
    },
    /// The reply is not what the method returns.
    #[error("{endpoint}: `{method}` returned an unexpected reply: {problem}")]
    #[diagnostic(code(cfxm::rpc::reply))]
    Reply {
        endpoint: Endpoint,
        method: String,
        problem: String,
    },
}

impl RpcError {
    /// A short cause for summaries: `refused`, `timeout`, `node error -32601`, ...
    pub fn kind(&self) -> String {
        match self {
            RpcError::Unreachable { .. } => "unreachable".into(),
            RpcError::Timeout { .. } => "timeout".into(),
            RpcError::Http { status, .. } => format!("http {status}"),
            RpcError::Node { code, .. } => format!("node error {code}"),
            RpcError::Reply { .. } => "bad reply".into(),
        }
    }
}

/// One HTTP client for every node's RPC.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    /// Bounds calls in flight over all nodes: each holds a socket (and on a real node an RPC
    /// worker), and 10,000 nodes × several calls would exhaust file descriptors. Block
    /// generation bypasses it with [`RpcClient::call_unbounded`], because a late block skews
    /// the schedule more than one extra socket costs.
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("timeout", &self.timeout)
            .field("in_flight_free", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client allowing `parallelism` calls at once, each bounded by `timeout` (the harness
    /// uses 60 s).
    pub fn new(parallelism: usize, timeout: Duration) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // Node RPC is on private or loopback addresses: never through a proxy.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        RpcClient {
            http,
            in_flight: Arc::new(Semaphore::new(parallelism.max(1))),
            timeout,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Calls `method` on `endpoint`; `params: None` omits the member.
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let _permit = self.in_flight.acquire().await.expect("never closed");
        self.call_unbounded(endpoint, method, params).await
    }

    /// [`RpcClient::call`] without waiting for an in-flight slot.
    pub async fn call_unbounded(
        &self,
        endpoint: &Endpoint,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if let Some(p) = params {
            body["params"] = p;
        }
        let err_method = || method.to_owned();
        let send = self.http.post(endpoint.url()).json(&body).send();
        let response = send
            .await
            .map_err(|e| self.transport_error(endpoint, method, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(RpcError::Http {
                endpoint: endpoint.clone(),
                method: err_method(),
                status: status.as_u16(),
            });
        }
        let reply: Value = response
            .json()
            .await
            .map_err(|e| self.transport_error(endpoint, method, e))?;
        if let Some(e) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError::Node {
                endpoint: endpoint.clone(),
                method: err_method(),
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
            });
        }
        match reply.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(RpcError::Reply {
                endpoint: endpoint.clone(),
                method: err_method(),
                problem: "neither `result` nor `error`".into(),
            }),
        }
    }

    fn transport_error(&self, endpoint: &Endpoint, method: &str, e: reqwest::Error) -> RpcError {
        if e.is_timeout() {
            RpcError::Timeout {
                endpoint: endpoint.clone(),
                method: method.to_owned(),
                after: self.timeout,
            }
        } else if e.is_decode() {
            RpcError::Reply {
                endpoint: endpoint.clone(),
                method: method.to_owned(),
                problem: format!("not JSON: {e}"),
            }
        } else {
            // reqwest's top-level message is generic; the source chain has the cause.
            let mut cause = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                cause = s.to_string();
                src = s.source();
            }
            RpcError::Unreachable {
                endpoint: endpoint.clone(),
                method: method.to_owned(),
                cause,
            }
        }
    }

    fn reply_error(endpoint: &Endpoint, method: &str, problem: impl Into<String>) -> RpcError {
        RpcError::Reply {
            endpoint: endpoint.clone(),
            method: method.to_owned(),
            problem: problem.into(),
        }
    }

    /// `test_sayHello`: the liveness probe.
    pub async fn say_hello(&self, endpoint: &Endpoint) -> Result<(), RpcError> {
        self.call(endpoint, "test_sayHello", None).await.map(drop)
    }

    /// `test_getNodeId` with a random challenge; the node id recovered from the signature
    /// over keccak256(challenge), as the harness does (conflux-node.md §2.3).
    pub async fn node_id(&self, endpoint: &Endpoint, challenge: u32) -> Result<NodeId, RpcError> {
        const METHOD: &str = "test_getNodeId";
        // The harness sends the minimal big-endian bytes of the number.
        let bytes = challenge.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
        let challenge = &bytes[first..];
        let reply = self
            .call(endpoint, METHOD, Some(json!([challenge])))
            .await?;
        let sig: Vec<u8> = reply
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect()
            })
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, "not an array of bytes"))?;
        recover_node_id(challenge, &sig).ok_or_else(|| {
            Self::reply_error(
                endpoint,
                METHOD,
                format!("{} bytes that do not recover a key", sig.len()),
            )
        })
    }

    /// `debug_currentSyncPhase`.
    pub async fn sync_phase(&self, endpoint: &Endpoint) -> Result<String, RpcError> {
        const METHOD: &str = "debug_currentSyncPhase";
        let v = self.call(endpoint, METHOD, None).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, "not a string"))
    }

    /// `test_addNode(id, "ip:port")`.
    pub async fn add_node(
        &self,
        endpoint: &Endpoint,
        peer: &NodeId,
        addr: &str,
    ) -> Result<(), RpcError> {
        self.call(
            endpoint,
            "test_addNode",
            Some(json!([peer.to_string(), addr])),
        )
        .await
        .map(drop)
    }

    /// `test_getPeerInfo`: the node ids of peers whose handshake finished (non-empty
    /// `protocols`).
    pub async fn connected_peers(&self, endpoint: &Endpoint) -> Result<Vec<NodeId>, RpcError> {
        const METHOD: &str = "test_getPeerInfo";
        let v = self.call(endpoint, METHOD, None).await?;
        let peers = v
            .as_array()
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, "not an array"))?;
        let mut out = Vec::new();
        for p in peers {
            let done = p
                .get("protocols")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let id = p
                .get("nodeid")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<NodeId>().ok());
            match id {
                Some(id) if done => out.push(id),
                Some(_) => {}
                None => {
                    return Err(Self::reply_error(
                        endpoint,
                        METHOD,
                        "a peer without `nodeid`",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// `test_addLatency(id, ms)`.
    pub async fn add_latency(
        &self,
        endpoint: &Endpoint,
        peer: &NodeId,
        latency: Duration,
    ) -> Result<(), RpcError> {
        let ms = latency.as_secs_f64() * 1000.0;
        self.call(
            endpoint,
            "test_addLatency",
            Some(json!([peer.to_string(), ms])),
        )
        .await
        .map(drop)
    }

    /// `test_sendUsableGenesisAccounts(start)`.
    pub async fn send_usable_genesis_accounts(
        &self,
        endpoint: &Endpoint,
        start: u64,
    ) -> Result<(), RpcError> {
        self.call(
            endpoint,
            "test_sendUsableGenesisAccounts",
            Some(json!([start])),
        )
        .await
        .map(drop)
    }

    /// `test_generateOneBlock(num_txs, size_limit)`: the new block's hash, checked against
    /// `^0x[0-9a-f]{64}$` as the harness does.
    pub async fn generate_one_block(
        &self,
        endpoint: &Endpoint,
        num_txs: u64,
        size_limit: u64,
    ) -> Result<String, RpcError> {
        const METHOD: &str = "test_generateOneBlock";
        let v = self
            .call_unbounded(endpoint, METHOD, Some(json!([num_txs, size_limit])))
            .await?;
        as_hash(&v)
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, format!("`{v}` is not a hash")))
    }

    /// `cfx_getBestBlockHash`.
    pub async fn best_block_hash(&self, endpoint: &Endpoint) -> Result<String, RpcError> {
        const METHOD: &str = "cfx_getBestBlockHash";
        let v = self.call(endpoint, METHOD, None).await?;
        as_hash(&v)
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, format!("`{v}` is not a hash")))
    }

    /// `test_getGoodPut`, as the node formats it.
    pub async fn goodput(&self, endpoint: &Endpoint) -> Result<String, RpcError> {
        const METHOD: &str = "test_getGoodPut";
        let v = self.call(endpoint, METHOD, None).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Self::reply_error(endpoint, METHOD, "not a string"))
    }
}

/// `0x` + 64 lowercase hex digits.
fn as_hash(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let hex = s.strip_prefix("0x")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked_like_the_harness() {
        let ok = format!("0x{}", "ab".repeat(32));
        assert_eq!(as_hash(&json!(ok)), Some(ok.clone()));
        assert_eq!(as_hash(&json!(ok.to_uppercase())), None);
        assert_eq!(as_hash(&json!("0x1234")), None);
        assert_eq!(as_hash(&json!(12)), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_names_the_endpoint() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = Endpoint::new(([127, 0, 0, 1], port).into());
        let c = RpcClient::new(4, Duration::from_secs(2));
        let e = c.say_hello(&ep).await.unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("http://127.0.0.1:{port}: `test_sayHello`"))
        );
        assert_eq!(e.kind(), "unreachable");
    }
}
