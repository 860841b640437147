//! The HTTP side: one axum server for every region and both APIs. A request is decoded (query
//! and form body merged), authenticated, routed by version (`x-acs-version` or `Version`) and
//! `RegionId`, delayed, throttled or failed as the knobs say, run against the world under one
//! lock, logged, persisted if it changed anything, and answered with the service's JSON and
//! error shapes. Also the `/_emulator/*` control endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::actions::{self, Ctx, View};
use super::auth::{self, AccessKey, NonceCache};
use super::calls::{CallLog, CallRecord};
use super::catalog::Catalog;
use super::clock::Clock;
use super::error::ApiError;
use super::knobs::{Knobs, Throttle};
use super::params::{self, Params};
use super::persist;
use super::world::World;
use crate::provider::aliyun::Api;

/// Everything the handlers share.
pub(crate) struct Shared {
    pub key: AccessKey,
    pub catalog: Catalog,
    pub state_file: Option<PathBuf>,
    /// The world with its clock and knobs. Read-only actions share it (a read lock, so pages
    /// render in parallel); changing ones take it alone. Held only for in-memory work, never
    /// across I/O.
    pub core: RwLock<Core>,
    /// Ids, request ids and injected faults: seeded once, so a seeded run is reproducible.
    pub rng: Mutex<StdRng>,
    /// Nonces of the last 15 minutes (replay protection).
    pub nonces: Mutex<NonceCache>,
    /// Token buckets per (region, action).
    pub throttle: Mutex<Throttle>,
    pub calls: Mutex<CallLog>,
    /// The generation last written to the state file: writes happen outside `core`, and this
    /// lock keeps an older snapshot from overwriting a newer one.
    pub persisted: Mutex<u64>,
    /// TCP connections accepted, so tests and benchmarks can see keep-alive at work.
    pub connections: Connections,
}

/// Counters of accepted connections (lock-free: bumped on every accept).
#[derive(Debug, Default)]
pub(crate) struct Connections {
    pub accepted: AtomicU64,
    /// Of those, how many have `TCP_NODELAY` on, read back from the socket after setting it.
    pub no_delay: AtomicU64,
}

pub(crate) struct Core {
    pub world: World,
    pub clock: Clock,
    pub knobs: Knobs,
    /// Bumped by every change to the world.
    pub generation: u64,
}

impl Shared {
    pub fn read(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().expect("core lock")
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().expect("core lock")
    }

    /// Saves the world if it changed since the last save. Failures are logged, not fatal: the
    /// in-memory world is still right, and the next change retries.
    pub fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let (generation, bytes) = {
            let core = self.read();
            (
                core.generation,
                persist::snapshot(&core.world, core.clock.now_ms()),
            )
        };
        let mut last = self.persisted.lock().expect("persist lock");
        if generation <= *last {
            return;
        }
        match persist::write(path, &bytes) {
            Ok(()) => *last = generation,
            Err(e) => tracing::warn!("{e}"),
        }
    }

    pub fn reset(&self) {
        {
            let mut core = self.write();
            let now = core.clock.now_ms();
            let core = &mut *core;
            core.world = World::new(&self.catalog, now, &mut *self.rng.lock().expect("rng lock"));
            core.generation += 1;
        }
        self.calls.lock().expect("calls lock").clear();
        self.throttle.lock().expect("throttle lock").clear();
        self.persist();
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(api).post(api))
        .route("/_emulator/calls", get(calls))
        .route("/_emulator/world", get(world))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/faults", get(faults).post(set_faults))
        .route("/_emulator/clock", post(clock))
        .route("/_emulator/stock", post(stock))
        .with_state(shared)
}

fn request_id(rng: &mut impl rand::Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn product_of(api: Option<Api>) -> &'static str {
    api.map_or("Ecs", Api::product)
}

fn error_response(e: &ApiError, request_id: &str, host: &str, api: Option<Api>) -> Response {
    let body = json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": e.code,
        "Message": e.message,
        "Recommend": format!(
            "https://api.aliyun.com/troubleshoot?q={}&product={}&requestId={request_id}",
            e.code,
            product_of(api)
        ),
    });
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(ms) = e.retry_after_ms {
        resp.headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    set_request_id(&mut resp, request_id);
    resp
}

fn set_request_id(resp: &mut Response, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-acs-request-id", v);
    }
}

/// What one API call did, for the log.
struct Outcome {
    api: Option<Api>,
    action: String,
    region: String,
    scheme: &'static str,
}

async fn api(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let at = chrono::Utc::now();
    let query = params::decode_form(raw_query.as_deref().unwrap_or(""));
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        params::decode_form(&String::from_utf8_lossy(&body))
    } else {
        Vec::new()
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("ecs.aliyuncs.com")
        .to_string();
    let rid = {
        let mut rng = shared.rng.lock().expect("rng lock");
        request_id(&mut *rng)
    };
    let mut outcome = Outcome {
        api: None,
        action: String::new(),
        region: String::new(),
        scheme: "",
    };
    let result = handle(
        &shared,
        &method,
        &headers,
        &query,
        &form,
        &body,
        at,
        &mut outcome,
    )
    .await;
    let (response, status, code) = match result {
        Ok(mut value) => {
            value["RequestId"] = json!(rid);
            let mut resp = axum::Json(value).into_response();
            set_request_id(&mut resp, &rid);
            (resp, 200, None)
        }
        Err(e) => (
            error_response(&e, &rid, &host, outcome.api),
            e.status,
            Some(e.code),
        ),
    };
    shared.calls.lock().expect("calls lock").push(CallRecord {
        seq: 0,
        at: at.to_rfc3339(),
        api: outcome
            .api
            .map(|a| a.product().to_ascii_lowercase())
            .unwrap_or_default(),
        action: outcome.action,
        region: outcome.region,
        signature: outcome.scheme.to_string(),
        status,
        code,
        request_id: rid,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    });
    response
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    form: &[(String, String)],
    body: &[u8],
    at: chrono::DateTime<chrono::Utc>,
    outcome: &mut Outcome,
) -> Result<Value, ApiError> {
    let verified = {
        let mut nonces = shared.nonces.lock().expect("nonce lock");
        auth::verify(
            method,
            headers,
            query,
            form,
            body,
            &shared.key,
            &mut nonces,
            at,
        )?
    };
    outcome.scheme = verified.scheme.as_str();
    outcome.action.clone_from(&verified.action);
    let api = Api::from_version(&verified.version).ok_or_else(|| {
        ApiError::bad(
            "InvalidVersion",
            format!("Specified parameter Version `{}` is not valid (2014-05-26 for ECS, 2016-04-28 for VPC).", verified.version),
        )
    })?;
    outcome.api = Some(api);
    let action = verified.action.as_str();
    if action.is_empty() {
        return Err(ApiError::missing("Action"));
    }
    let p = Params::new(query.iter().chain(form.iter()).cloned());
    let region = p.get("RegionId").unwrap_or_default().to_string();
    outcome.region.clone_from(&region);
    if region.is_empty() && !actions::region_free(action) {
        return Err(ApiError::missing("RegionId"));
    }

    let knobs = shared.read().knobs.clone();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if let Some(rate) = knobs.throttle_rate {
        let verdict = shared.throttle.lock().expect("throttle lock").take(
            &region,
            action,
            rate,
            knobs.throttle_burst,
        );
        if let Err(wait_ms) = verdict {
            let mut e = ApiError::bad(
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            e.retry_after_ms = Some(wait_ms);
            return Err(e);
        }
    }

    if knobs.throttle_probability > 0.0 {
        let mut rng = shared.rng.lock().expect("rng lock");
        if rng.random_bool(knobs.throttle_probability) {
            let mut e = ApiError::bad(
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            e.retry_after_ms = Some(rng.random_range(100..=500));
            return Err(e);
        }
    }
    if knobs.error_rate > 0.0 {
        let mut rng = shared.rng.lock().expect("rng lock");
        if rng.random_bool(knobs.error_rate) {
            return Err(if rng.random_bool(0.5) {
                ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            } else {
                ApiError::new(
                    500,
                    "InternalError",
                    "The request processing has failed due to some unknown error.",
                )
            });
        }
    }
    let mut changed = false;
    let result = if actions::mutates(action) {
        let mut guard = shared.write();
        let core = &mut *guard;
        let now = core.clock.now_ms();
        changed = core.world.sweep(now);
        let mut rng = shared.rng.lock().expect("rng lock");
        let mut ctx = Ctx {
            region: &region,
            now,
            knobs: &core.knobs,
            rng: &mut rng,
        };
        let result = actions::dispatch(api, action, &p, &mut core.world, &mut ctx);
        changed |= result.is_ok();
        if changed {
            core.generation += 1;
        }
        result
    } else {
        // Purge released instances first (rarely needed: take the write lock only then).
        let due = {
            let core = shared.read();
            core.world.sweep_due(core.clock.now_ms())
        };
        if due {
            let mut core = shared.write();
            let now = core.clock.now_ms();
            if core.world.sweep(now) {
                core.generation += 1;
                changed = true;
            }
        }
        let core = shared.read();
        let view = View {
            region: &region,
            now: core.clock.now_ms(),
            knobs: &core.knobs,
        };
        actions::dispatch_read(api, action, &p, &core.world, &view)
    };
    if changed {
        shared.persist();
    }
    result
}

async fn calls(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let since = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    axum::Json(shared.calls.lock().expect("calls lock").since(since)).into_response()
}

async fn world(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(super::view(&shared)).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    axum::Json(json!({"reset": true})).into_response()
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.read().knobs.clone()).into_response()
}

fn control_error(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": msg.into()})),
    )
        .into_response()
}

fn json_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return control_error(e),
    };
    match super::apply_knobs(&shared, &patch) {
        Ok(k) => axum::Json(k).into_response(),
        Err(e) => control_error(e),
    }
}

async fn clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return control_error(e),
    };
    let Some(ms) = v.get("advance_ms").and_then(Value::as_u64) else {
        return control_error("expected {\"advance_ms\": N}");
    };
    let now = {
        let mut core = shared.write();
        core.clock.advance(std::time::Duration::from_millis(ms));
        core.clock.now_ms()
    };
    axum::Json(json!({"now": super::clock::seconds(now)})).into_response()
}

async fn stock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        zone: String,
        instance_type: String,
        count: Option<u64>,
    }
    let req: Req = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return control_error(format!(
                "expected {{\"zone\", \"instance_type\", \"count\"}}: {e}"
            ));
        }
    };
    let result = {
        let mut core = shared.write();
        let r = core
            .world
            .set_stock(&req.zone, &req.instance_type, req.count);
        if r.is_ok() {
            core.generation += 1;
        }
        r
    };
    match result {
        Ok(()) => {
            shared.persist();
            axum::Json(
                json!({"zone": req.zone, "instance_type": req.instance_type, "count": req.count}),
            )
            .into_response()
        }
        Err(e) => control_error(e.message),
    }
}

/// Binds and serves until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use axum::serve::ListenerExt as _;
    // Clients keep connections alive (HTTP/1.1, hyper's default) and send small requests back
    // to back: with Nagle's algorithm a response's last segment would wait for the client's
    // delayed ACK (40 ms on Linux), so it is off on every accepted socket.
    let counters = shared.clone();
    let listener = listener.tap_io(move |tcp| {
        let c = &counters.connections;
        c.accepted.fetch_add(1, Ordering::Relaxed);
        if tcp.set_nodelay(true).is_ok() && tcp.nodelay().unwrap_or(false) {
            c.no_delay.fetch_add(1, Ordering::Relaxed);
        }
    });
    let app = router(shared);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("emulator server stopped: {e}");
    }
}

pub(crate) fn local_addr(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
