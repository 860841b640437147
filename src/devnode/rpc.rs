//! JSON-RPC 2.0 over HTTP, with the node's method names and result shapes
//! (conflux-node.md §2.3).
//!
//! Two servers share one dispatcher: the public port (`jsonrpc_http_port`) serves the API
//! groups in `public_rpc_apis`, the local port (`jsonrpc_local_http_port`, loopback only)
//! serves them all. A missing `params` is an empty list; unknown methods, and methods of groups
//! the port does not serve, answer -32601. The pre-2024 method names (`sayhello`,
//! `generateoneblock`, ...) are served as aliases for legacy drivers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::ApiSet;
use super::identity::address_of_secret;
use super::network;
use super::node::Node;
use super::types::{H256, NodeId};

/// What one server needs.
#[derive(Clone)]
pub struct RpcState {
    pub node: Arc<Node>,
    pub apis: Arc<ApiSet>,
}

/// A JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    fn method_not_found() -> Self {
        Self {
            code: -32601,
            message: "Method not found".into(),
        }
    }
    fn invalid_params(detail: impl std::fmt::Display) -> Self {
        Self {
            code: -32602,
            message: format!("Invalid params: {detail}."),
        }
    }
    fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            code: -32603,
            message: format!("Internal error: {detail}"),
        }
    }
}

/// The router for one port.
pub fn router(state: RpcState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<RpcState>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "Used HTTP Method is not allowed. POST or OPTIONS is required\n",
        )
            .into_response();
    }
    let reply = match serde_json::from_slice::<Value>(&body) {
        Err(_) => Some(error_reply(
            Value::Null,
            RpcError {
                code: -32700,
                message: "Parse error".into(),
            },
        )),
        Ok(Value::Array(calls)) if calls.is_empty() => Some(error_reply(
            Value::Null,
            RpcError {
                code: -32600,
                message: "Invalid request".into(),
            },
        )),
        Ok(Value::Array(calls)) => {
            let mut out = Vec::new();
            for c in calls {
                out.extend(call(&state, c).await);
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Ok(single) => call(&state, single).await,
    };
    match reply {
        Some(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

fn error_reply(id: Value, e: RpcError) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message}, "id": id})
}

/// One call; `None` for a notification (no `id`).
async fn call(state: &RpcState, request: Value) -> Option<Value> {
    let Value::Object(mut req) = request else {
        return Some(error_reply(
            Value::Null,
            RpcError {
                code: -32600,
                message: "Invalid request".into(),
            },
        ));
    };
    let id = req.remove("id");
    let method = match req.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            return Some(error_reply(
                id.unwrap_or(Value::Null),
                RpcError {
                    code: -32600,
                    message: "Invalid request".into(),
                },
            ));
        }
    };
    let params = match req.remove("params") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(RpcError::invalid_params("expected an array")),
    };
    let result = match params {
        Ok(p) => dispatch(state, &method, p).await,
        Err(e) => Err(e),
    };
    let id = id?;
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "result": v, "id": id}),
        Err(e) => error_reply(id, e),
    })
}

/// The modern name and API group of a method (legacy names map to their modern ones).
fn canonical(method: &str) -> Option<(&'static str, &'static str)> {
    Some(match method {
        "test_sayHello" | "sayhello" => ("test", "test_sayHello"),
        "test_getNodeId" | "getnodeid" => ("test", "test_getNodeId"),
        "test_addNode" | "addnode" => ("test", "test_addNode"),
        "test_removeNode" | "removenode" => ("test", "test_removeNode"),
        "test_getPeerInfo" | "getpeerinfo" => ("test", "test_getPeerInfo"),
        "test_addLatency" | "addlatency" => ("test", "test_addLatency"),
        "test_sendUsableGenesisAccounts" => ("test", "test_sendUsableGenesisAccounts"),
        "test_generateOneBlock" | "generateoneblock" => ("test", "test_generateOneBlock"),
        "test_generateEmptyBlocks" | "generate_empty_blocks" => {
            ("test", "test_generateEmptyBlocks")
        }
        "test_getBlockCount" | "getblockcount" => ("test", "test_getBlockCount"),
        "test_getGoodPut" | "getgoodput" => ("test", "test_getGoodPut"),
        "test_stop" | "stop" => ("test", "test_stop"),
        "debug_currentSyncPhase" | "current_sync_phase" => ("debug", "debug_currentSyncPhase"),
        "cfx_getBestBlockHash" => ("cfx", "cfx_getBestBlockHash"),
        "cfx_epochNumber" => ("cfx", "cfx_epochNumber"),
        "cfx_getStatus" => ("cfx", "cfx_getStatus"),
        _ => return None,
    })
}

fn arg<'a>(params: &'a [Value], i: usize, what: &str) -> Result<&'a Value, RpcError> {
    params
        .get(i)
        .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {i} ({what})")))
}

fn arg_uint(params: &[Value], i: usize, what: &str) -> Result<u64, RpcError> {
    let v = arg(params, i, what)?;
    match v {
        Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().expect("checked")),
        Value::String(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16)
            .map_err(|_| RpcError::invalid_params(format!("{what}: bad hex number"))),
        _ => Err(RpcError::invalid_params(format!(
            "{what}: expected a non-negative integer, got {v}"
        ))),
    }
}

fn arg_node_id(params: &[Value], i: usize) -> Result<NodeId, RpcError> {
    match arg(params, i, "node id")? {
        Value::String(s) => s.parse().map_err(RpcError::invalid_params),
        v => Err(RpcError::invalid_params(format!(
            "node id: expected a string, got {v}"
        ))),
    }
}

fn hex(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn hash(h: H256) -> Value {
    Value::String(h.to_string())
}

async fn dispatch(state: &RpcState, method: &str, params: Vec<Value>) -> Result<Value, RpcError> {
    let (group, name) = canonical(method).ok_or_else(RpcError::method_not_found)?;
    if !state.apis.allows(group) {
        return Err(RpcError::method_not_found());
    }
    let node = &state.node;
    match name {
        "test_sayHello" => Ok(json!("Hello, world")),
        "debug_currentSyncPhase" => Ok(json!("NormalSyncPhase")),
        "test_getNodeId" => {
            let challenge: Vec<u8> = match arg(&params, 0, "challenge")? {
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_u64().filter(|b| *b <= 255).map(|b| b as u8))
                    .collect::<Option<_>>()
                    .ok_or_else(|| RpcError::invalid_params("challenge: expected bytes"))?,
                v => {
                    return Err(RpcError::invalid_params(format!(
                        "challenge: expected an array of bytes, got {v}"
                    )));
                }
            };
            Ok(json!(node.key.sign(&challenge).to_vec()))
        }
        "test_addNode" => {
            let peer = arg_node_id(&params, 0)?;
            let addr = match arg(&params, 1, "address")? {
                Value::String(s) => s.clone(),
                v => {
                    return Err(RpcError::invalid_params(format!(
                        "address: expected \"ip:port\", got {v}"
                    )));
                }
            };
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(RpcError::invalid_params(format!(
                    "address: expected \"ip:port\", got \"{addr}\""
                )));
            }
            if peer == node.key.node_id() {
                return Err(RpcError::internal("cannot add the node itself as a peer"));
            }
            if node.want_peer(peer, addr.clone()) {
                tokio::spawn(network::dial(node.clone(), peer, addr));
            }
            Ok(Value::Null)
        }
        "test_removeNode" => {
            let peer = arg_node_id(&params, 0)?;
            node.remove_peer(&peer);
            Ok(Value::Null)
        }
        "test_getPeerInfo" => Ok(Value::Array(
            node.peers()
                .into_iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "addr": p.addr,
                        "nodeid": p.node_id.to_string(),
                        "protocols": [{"protocol": [99, 102, 120], "version": 3}],
                    })
                })
                .collect(),
        )),
        "test_addLatency" => {
            if !node.config.mode.is_test_or_dev() {
                return Err(RpcError::internal("test_addLatency needs mode=\"test\""));
            }
            let peer = arg_node_id(&params, 0)?;
            let latency = arg(&params, 1, "latency_ms")?
                .as_f64()
                .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
                .ok_or_else(|| RpcError::invalid_params("latency_ms: expected a number ≥ 0"))?;
            node.set_latency(peer, latency);
            Ok(Value::Null)
        }
        "test_sendUsableGenesisAccounts" => {
            if !node.config.has_txgen() {
                return Err(RpcError::method_not_found());
            }
            let start = arg_uint(&params, 0, "account_start_index")?;
            if !node.txgen_started() {
                let accounts = read_accounts(node, start).map_err(RpcError::internal)?;
                node.start_txgen(accounts);
            }
            Ok(json!("0x31"))
        }
        "test_generateOneBlock" => {
            let num_txs = arg_uint(&params, 0, "num_txs")? as usize;
            let size = arg_uint(&params, 1, "block_size_limit")? as usize;
            Ok(hash(node.generate_block(num_txs, size)))
        }
        "test_generateEmptyBlocks" => {
            let n = arg_uint(&params, 0, "num_blocks")?.min(10_000);
            Ok(Value::Array(
                (0..n).map(|_| hash(node.generate_block(0, 0))).collect(),
            ))
        }
        "test_getBlockCount" => Ok(json!(node.status().block_count)),
        "test_getGoodPut" => Ok(json!(node.goodput())),
        "cfx_getBestBlockHash" => Ok(hash(node.status().best_hash)),
        "cfx_epochNumber" => {
            let best = node.status().epoch;
            let epoch = match params.first() {
                None | Some(Value::Null) => best,
                Some(Value::String(tag)) => match tag.as_str() {
                    "latest_mined" => best,
                    "latest_state" | "latest_confirmed" => best.saturating_sub(5),
                    "latest_checkpoint" | "latest_finalized" | "earliest" => 0,
                    n if n.starts_with("0x") => {
                        let n = u64::from_str_radix(&n[2..], 16)
                            .map_err(|_| RpcError::invalid_params("epoch: bad hex number"))?;
                        if n > best {
                            return Err(RpcError::invalid_params(format!(
                                "expected a numbered epoch that once existed (≤ {best:#x}), got {n:#x}"
                            )));
                        }
                        n
                    }
                    other => {
                        return Err(RpcError::invalid_params(format!("unknown epoch {other}")));
                    }
                },
                Some(v) => return Err(RpcError::invalid_params(format!("epoch: got {v}"))),
            };
            Ok(hex(epoch))
        }
        "cfx_getStatus" => {
            let s = node.status();
            let chain = node.config.chain_id as u64;
            Ok(json!({
                "bestHash": s.best_hash.to_string(),
                "chainId": hex(chain),
                "ethereumSpaceChainId": hex(chain),
                "networkId": hex(chain),
                "epochNumber": hex(s.epoch),
                "blockNumber": hex(s.block_count as u64),
                "pendingTxNumber": hex(s.pending_txs as u64),
                "latestCheckpoint": hex(0),
                "latestConfirmed": hex(s.epoch.saturating_sub(5)),
                "latestState": hex(s.epoch.saturating_sub(5)),
                "latestFinalized": hex(0),
            }))
        }
        "test_stop" => {
            // Answer first, then stop: the caller gets its `null`.
            let node = node.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                node.request_stop();
            });
            Ok(Value::Null)
        }
        _ => Err(RpcError::method_not_found()),
    }
}

/// Reads genesis accounts `[start, start + txgen_account_count)` from the secrets file.
fn read_accounts(
    node: &Node,
    start: u64,
) -> Result<Vec<(u32, [u8; 32], super::types::H160)>, String> {
    let path = node
        .config
        .genesis_secrets
        .as_ref()
        .ok_or("no genesis_secrets configured")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(start as usize)
        .take(node.config.txgen_account_count)
    {
        let secret: H256 = line
            .trim()
            .parse()
            .map_err(|e| format!("`{}` line {}: {e}", path.display(), i + 1))?;
        let address = address_of_secret(&secret.0).ok_or_else(|| {
            format!(
                "`{}` line {}: not a secp256k1 secret",
                path.display(),
                i + 1
            )
        })?;
        out.push((i as u32, secret.0, address));
    }
    Ok(out)
}
