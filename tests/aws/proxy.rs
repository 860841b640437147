//! A fault-injecting, recording HTTP proxy in front of moto.
//!
//! moto never answers `InsufficientInstanceCapacity`, `Unsupported` or `RequestLimitExceeded`
//! (aliyun-api.md §6.2), so this proxy does, for the requests a test chooses, with EC2's real
//! error shape (`<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/>`) and
//! status. Every other request goes to moto unchanged. It also records each request's action and
//! parameters, so tests can check what went on the wire (tags in the create call, the gp3 disk,
//! `NextToken` pages).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub action: String,
    /// The region of the signature's credential scope (how moto routes, too).
    pub region: String,
    pub params: Vec<(String, String)>,
}

impl Recorded {
    /// `TagSpecification.n`: its resource type and tags.
    pub fn tag_spec(&self, n: usize) -> (Option<String>, cfxm::provider::aws::Tags) {
        let kind = self
            .get(&format!("TagSpecification.{n}.ResourceType"))
            .map(str::to_string);
        let mut tags = cfxm::provider::aws::Tags::new();
        for m in 1.. {
            let Some(k) = self.get(&format!("TagSpecification.{n}.Tag.{m}.Key")) else {
                break;
            };
            let v = self
                .get(&format!("TagSpecification.{n}.Tag.{m}.Value"))
                .unwrap_or_default();
            tags.insert(k.to_string(), v.to_string());
        }
        (kind, tags)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answer requests of `action` whose parameters include all of `when` with an EC2 error, `times`
/// times (then let them through).
#[derive(Debug, Clone)]
pub struct Fault {
    pub action: &'static str,
    pub when: Vec<(&'static str, &'static str)>,
    pub times: usize,
    pub status: u16,
    pub body: FaultBody,
}

#[derive(Debug, Clone)]
pub enum FaultBody {
    /// EC2's error XML with this code and message.
    Ec2 {
        code: &'static str,
        message: &'static str,
    },
    /// Not XML at all (a load balancer's page).
    Raw(&'static str),
    /// Passed to moto (so the call takes effect), but the answer never comes back: the client
    /// is left waiting, as when it dies during the call.
    ForwardThenHang,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<Recorded>>,
}

pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        crate::install_crypto();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the proxy serves");
        });
        Proxy { url, state, task }
    }

    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push(fault);
    }

    /// Lets everything through again.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Requests seen so far (faulted ones included).
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn recorded_actions(&self, action: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.action == action)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn handle(
    State(state): State<Arc<ProxyState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_pairs(&body);
    let action = params
        .iter()
        .find(|(n, _)| n == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let region = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or_default()
        .to_string();
    let recorded = Recorded {
        action,
        region,
        params,
    };

    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let hit = faults.iter_mut().find(|f| {
            f.times > 0
                && f.action == recorded.action
                && f.when.iter().all(|(k, v)| recorded.get(k) == Some(*v))
        });
        hit.map(|f| {
            f.times -= 1;
            f.clone()
        })
    };
    state.log.lock().unwrap().push(recorded);

    if let Some(f) = fault {
        let status = StatusCode::from_u16(f.status).unwrap();
        return match f.body {
            FaultBody::Ec2 { code, message } => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
                    quick_xml::escape::escape(message),
                    uuid::Uuid::new_v4()
                );
                (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
            }
            FaultBody::Raw(text) => (status, [("content-type", "text/html")], text).into_response(),
            FaultBody::ForwardThenHang => {
                let _ = forward(&state, method, uri, &headers, body).await;
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
        };
    }
    forward(&state, method, uri, &headers, body).await
}

async fn forward(
    state: &ProxyState,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut forward = state
        .http
        .request(method, format!("{}{}", state.upstream, uri))
        .body(body);
    // The signed headers as signed: `host` too, or moto (with signature checking on) would
    // see the proxy's address in place of the one the client signed.
    for name in [
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "content-type",
    ] {
        if let Some(v) = headers.get(name) {
            forward = forward.header(name, v.as_bytes());
        }
    }
    match forward.send().await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/xml")
                .to_string();
            let body = resp.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    }
}
