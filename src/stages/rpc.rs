//! The node's JSON-RPC, as the stages call it (conflux-node.md §2): bounded in-flight calls, a
//! timeout per call, and typed helpers for the methods the experiment uses.
//!
//! How calls travel: a node is an [`Endpoint`], a port on a host reached through the host's
//! [`Transport`]. Each call is an HTTP/1.1 POST over a stream from
//! [`Transport::connect_tcp`]: on an SSH host a `direct-tcpip` channel to `127.0.0.1:PORT` on
//! the host's one SSH connection, on a local-cloud slot a plain socket to the slot's loopback
//! address (one code path for both). So the nodes' RPC ports never need to be open to the
//! machine running cfxm (DESIGN §6: only SSH is). Streams are kept alive and reused for later
//! calls to the same node ([`ConnPool`]); one that the node closed is replaced.
//!
//! Requests are JSON-RPC 2.0 POSTs and, like the harness's `jsonrpcclient`, omit `params` when
//! a method takes none. Any `error` member is a failure ([`RpcError::Node`]); everything else
//! that goes wrong (refused connection, timeout, non-200, a reply that is not JSON-RPC) names
//! the endpoint, so a failure budget can report which node failed and why.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::devnode::{NodeId, recover_node_id};
use crate::ssh::{Transport, TransportError};

/// Where one node's JSON-RPC listens: a port on a host, reached through the host's transport
/// (never a public socket address of this machine's choosing).
#[derive(Clone)]
pub struct Endpoint {
    host: Arc<dyn Transport>,
    port: u16,
}

impl Endpoint {
    /// Port `port` on the host `host` reaches (its loopback; see [`Transport::connect_tcp`]).
    pub fn new(host: Arc<dyn Transport>, port: u16) -> Self {
        Endpoint { host, port }
    }

    /// The host, as its transport names it.
    pub fn host(&self) -> &str {
        self.host.host()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.host
    }

    fn key(&self) -> (String, u16) {
        (self.host().to_owned(), self.port)
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port && self.host() == other.host()
    }
}

impl Eq for Endpoint {}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.host().hash(state);
        self.port.hash(state);
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rpc port {}", self.host(), self.port)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum RpcError {
    /// No HTTP exchange: nothing listens on the port, the connection was reset or closed.
    #[error("{endpoint}: `{method}` could not be sent: {cause}")]
    #[diagnostic(
        code(cfxm::rpc::unreachable),
        help(
            "is the node running? it must listen on its RPC port on the host's loopback or all addresses"
        )
    )]
    Unreachable {
        endpoint: Endpoint,
        method: String,
        cause: String,
    },
    /// The host's transport could not carry the call (SSH login failed, forwarding refused);
    /// the node may be fine.
    #[error("{endpoint}: `{method}` could not reach the node: {cause}")]
    #[diagnostic(code(cfxm::rpc::transport), help("{fix}"))]
    Transport {
        endpoint: Endpoint,
        method: String,
        cause: String,
        /// The transport error's fix.
        fix: String,
        /// Whether the same call may succeed later (see [`TransportError::is_retryable`]).
        retryable: bool,
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
            RpcError::Transport { .. } => "transport".into(),
            RpcError::Timeout { .. } => "timeout".into(),
            RpcError::Http { status, .. } => format!("http {status}"),
            RpcError::Node { code, .. } => format!("node error {code}"),
            RpcError::Reply { .. } => "bad reply".into(),
        }
    }

    /// Waiting and calling again cannot help: the host's transport refuses to carry calls at
    /// all (forwarding disabled, login refused). Readiness loops stop at once on these.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            RpcError::Transport {
                retryable: false,
                ..
            }
        )
    }

    fn transport(endpoint: &Endpoint, method: &str, e: TransportError) -> RpcError {
        use miette::Diagnostic;
        if let TransportError::PortClosed { cause, .. } = &e {
            // The host is fine; the node does not listen (yet): the usual "not running".
            return RpcError::Unreachable {
                endpoint: endpoint.clone(),
                method: method.to_owned(),
                cause: format!("nothing accepts connections on the port ({cause})"),
            };
        }
        let text = e.to_string();
        let prefix = format!("{}: ", e.host());
        RpcError::Transport {
            endpoint: endpoint.clone(),
            method: method.to_owned(),
            cause: text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
            fix: e.help().map(|h| h.to_string()).unwrap_or_default(),
            retryable: e.is_retryable(),
        }
    }
}

/// Idle keep-alive HTTP connections to nodes, by (host, port), for reuse by later calls.
///
/// Reuse matters most over SSH: a new stream costs a round trip to the host before the call's
/// own. Bounded twice: [`MAX_IDLE_PER_NODE`](Self::MAX_IDLE_PER_NODE) per node (`topology`
/// dials a node's peers through it at once; more overlap than this is rare) and [`MAX_IDLE`](Self::MAX_IDLE) overall, well below the SSH pool's
/// bound on forwarded streams, so idle streams can never starve calls waiting for a new one.
/// Past either bound a finished connection is closed instead of kept. A connection idle
/// longer than [`IDLE_TIMEOUT`](Self::IDLE_TIMEOUT) is closed by a sweeper task, so idle
/// streams give their place in the SSH pool's bound back even when no call comes.
#[derive(Default)]
struct ConnPool {
    idle: Mutex<HashMap<(String, u16), Vec<Conn>>>,
    sweeper: std::sync::atomic::AtomicBool,
}

impl ConnPool {
    const MAX_IDLE_PER_NODE: usize = 16;
    const MAX_IDLE: usize = 256;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

    /// The most recently used live connection to `key`, if any.
    fn checkout(&self, key: &(String, u16)) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("not poisoned");
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(c) = list.pop() {
            if c.usable() {
                found = Some(c);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Closes idle connections that expired or the node closed.
    fn sweep(&self) {
        self.idle.lock().expect("not poisoned").retain(|_, list| {
            list.retain(Conn::usable);
            !list.is_empty()
        });
    }

    /// Keeps `conn` for reuse, unless a bound says close it.
    fn checkin(self: &Arc<Self>, key: (String, u16), mut conn: Conn) {
        if !self.sweeper.swap(true, Ordering::Relaxed) {
            // Ends with the pool (the client and its clones dropped).
            let pool = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Self::IDLE_TIMEOUT).await;
                    match pool.upgrade() {
                        Some(p) => p.sweep(),
                        None => return,
                    }
                }
            });
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().expect("not poisoned");
        let mut total: usize = idle.values().map(Vec::len).sum();
        if total >= Self::MAX_IDLE {
            drop(idle);
            self.sweep();
            idle = self.idle.lock().expect("not poisoned");
            total = idle.values().map(Vec::len).sum();
        }
        let list = idle.entry(key).or_default();
        if total < Self::MAX_IDLE && list.len() < Self::MAX_IDLE_PER_NODE {
            list.push(conn);
        }
    }

    fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .expect("not poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }
}

/// One HTTP/1.1 connection to a node. Dropping it stops its I/O task, which closes the stream
/// (and so the SSH channel).
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
    idle_since: Instant,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.idle_since.elapsed() < ConnPool::IDLE_TIMEOUT
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client for every node's RPC.
#[derive(Clone)]
pub struct RpcClient {
    /// Bounds calls in flight over all nodes: each holds a stream (and on a real node an RPC
    /// worker), and 10,000 nodes × several calls would exhaust file descriptors. Block
    /// generation bypasses it with [`RpcClient::call_unbounded`], because a late block skews
    /// the schedule more than one extra stream costs.
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
    pool: Arc<ConnPool>,
    /// Connections opened so far (for tests: reuse shows as few of them).
    opened: Arc<AtomicU64>,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("timeout", &self.timeout)
            .field("in_flight_free", &self.in_flight.available_permits())
            .field("idle", &self.pool.idle_count())
            .finish_non_exhaustive()
    }
}

/// How one HTTP exchange failed, before it is named with the endpoint and method.
enum Failure {
    Transport(TransportError),
    /// The connection failed (handshake, reset, closed mid-reply).
    Http(String),
}

impl RpcClient {
    /// A client allowing `parallelism` calls at once, each bounded by `timeout` (the harness
    /// uses 60 s; connecting, the SSH login included, counts).
    pub fn new(parallelism: usize, timeout: Duration) -> Self {
        RpcClient {
            in_flight: Arc::new(Semaphore::new(parallelism.max(1))),
            timeout,
            next_id: Arc::new(AtomicU64::new(1)),
            pool: Arc::new(ConnPool::default()),
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// HTTP connections opened so far (each over one stream from the host's transport).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
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
        let body = Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes"));
        let err_method = || method.to_owned();
        let (status, bytes) = tokio::time::timeout(self.timeout, self.exchange(endpoint, body))
            .await
            .map_err(|_| RpcError::Timeout {
                endpoint: endpoint.clone(),
                method: err_method(),
                after: self.timeout,
            })?
            .map_err(|f| match f {
                Failure::Transport(e) => RpcError::transport(endpoint, method, e),
                Failure::Http(cause) => RpcError::Unreachable {
                    endpoint: endpoint.clone(),
                    method: err_method(),
                    cause,
                },
            })?;
        if !status.is_success() {
            return Err(RpcError::Http {
                endpoint: endpoint.clone(),
                method: err_method(),
                status: status.as_u16(),
            });
        }
        let reply: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Self::reply_error(endpoint, method, format!("not JSON: {e}")))?;
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

    /// One POST of `body` and its whole reply, on a pooled connection or a new one. A pooled
    /// connection the node closed meanwhile is replaced; the request is re-sent only when
    /// hyper hands it back unsent, so a non-idempotent call never runs twice.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
    ) -> Result<(hyper::StatusCode, Bytes), Failure> {
        let key = endpoint.key();
        let mut request = Some(
            hyper::Request::post("/")
                // What a client on the host itself sends; nodes that check `Host` accept it.
                .header(hyper::header::HOST, format!("127.0.0.1:{}", endpoint.port))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .expect("a static request builds"),
        );
        loop {
            let req = request.take().expect("put back before looping");
            let (mut conn, reused) = match self.pool.checkout(&key) {
                Some(c) => (c, true),
                None => (self.connect(endpoint).await?, false),
            };
            let sent = match conn.sender.ready().await {
                Ok(()) => conn.sender.try_send_request(req).await,
                Err(e) if reused => {
                    tracing::debug!(%endpoint, error = %e, "pooled connection closed; reconnecting");
                    request = Some(req);
                    continue;
                }
                Err(e) => return Err(Failure::Http(hyper_cause(&e))),
            };
            match sent {
                Ok(response) => {
                    let status = response.status();
                    let bytes = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| Failure::Http(hyper_cause(&e)))?
                        .to_bytes();
                    self.pool.checkin(key, conn);
                    return Ok((status, bytes));
                }
                Err(mut e) => match e.take_message() {
                    Some(req) if reused => {
                        tracing::debug!(%endpoint, "pooled connection closed; reconnecting");
                        request = Some(req);
                    }
                    _ => return Err(Failure::Http(hyper_cause(e.error()))),
                },
            }
        }
    }

    /// A new HTTP/1.1 connection over a stream from the host's transport.
    async fn connect(&self, endpoint: &Endpoint) -> Result<Conn, Failure> {
        let stream = endpoint
            .host
            .connect_tcp(endpoint.port)
            .await
            .map_err(Failure::Transport)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| Failure::Http(hyper_cause(&e)))?;
        let host = endpoint.host().to_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%host, error = %e, "node RPC connection ended");
            }
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Conn {
            sender,
            task,
            idle_since: Instant::now(),
        })
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

/// A hyper error as the cause part of a message: its innermost source says what happened.
fn hyper_cause(e: &hyper::Error) -> String {
    let mut cause = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = format!("{cause}: {s}");
        src = s.source();
    }
    cause
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

    fn local_host(slot: &std::path::Path) -> Arc<dyn Transport> {
        Arc::new(crate::ssh::LocalTransport::new("h1", slot))
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_names_the_endpoint() {
        let slot = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = Endpoint::new(local_host(slot.path()), port);
        let c = RpcClient::new(4, Duration::from_secs(2));
        let e = c.say_hello(&ep).await.unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "h1 (local {}) rpc port {port}: `test_sayHello` could not be sent: nothing accepts",
                slot.path().display()
            )),
            "{text}"
        );
        assert_eq!(e.kind(), "unreachable");
        assert!(!e.is_permanent());
    }

    /// A JSON-RPC server answering every call with its method name, counting connections.
    async fn echo_server(closes_after_each: bool) -> (u16, Arc<AtomicU64>) {
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
            axum::routing::post(move |body: axum::Json<Value>| async move {
                let reply = json!({"jsonrpc": "2.0", "id": body["id"], "result": body["method"]});
                let mut r = axum::response::IntoResponse::into_response(axum::Json(reply));
                if closes_after_each {
                    r.headers_mut().insert(
                        "connection",
                        hyper::header::HeaderValue::from_static("close"),
                    );
                }
                r
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, accepted)
    }

    #[tokio::test]
    async fn calls_to_one_node_reuse_one_connection_and_survive_its_close() {
        let slot = tempfile::tempdir().unwrap();
        let (port, accepted) = echo_server(false).await;
        let ep = Endpoint::new(local_host(slot.path()), port);
        let c = RpcClient::new(4, Duration::from_secs(10));
        for _ in 0..20 {
            assert_eq!(c.call(&ep, "m", None).await.unwrap(), json!("m"));
        }
        assert_eq!(c.connections_opened(), 1);
        assert_eq!(accepted.load(Ordering::Relaxed), 1);

        // A server that closes after every reply: each call gets a new connection, none fails.
        let (port, accepted) = echo_server(true).await;
        let ep = Endpoint::new(local_host(slot.path()), port);
        for _ in 0..5 {
            assert_eq!(c.call(&ep, "n", None).await.unwrap(), json!("n"));
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 5);
    }
}
