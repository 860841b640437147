//! The HTTP side of the Aliyun client: one shared connection pool, request signing, and turning
//! responses into values or [`AliyunError`]s. The typed actions (`ecs`, `vpc`) build [`Params`]
//! and call [`Client::call`]; nothing else here knows about actions.
//!
//! Every call is `POST /` with the parameters in the query and an empty body, as the official
//! SDK sends them (aliyun-api.md §1.5). The client does not retry: the reconciler's retry policy
//! decides from each error's [`crate::provider::ErrorClass`], and a ClientToken makes creates
//! safe to resend.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::credentials::Credentials;
use super::endpoint::{Api, Endpoints};
use super::error::{AliyunError, local_codes};
use super::sign;
use crate::spec::RegionId;

/// Which signature scheme requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    /// `ACS3-HMAC-SHA256` in the `Authorization` header: what current SDKs send.
    #[default]
    V3,
    /// The RPC scheme: HMAC-SHA1 in the `Signature` parameter (Terraform, older SDKs).
    V1,
}

/// Request parameters in the order added. Lists use the wire styles of aliyun-api.md §3.2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, k: &str, v: impl ToString) -> Self {
        self.0.push((k.to_string(), v.to_string()));
        self
    }
    pub fn opt(self, k: &str, v: Option<impl ToString>) -> Self {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
    /// Sets `k` only when `v` is not empty.
    pub fn non_empty(self, k: &str, v: &str) -> Self {
        if v.is_empty() { self } else { self.set(k, v) }
    }
    /// `Name.1`, `Name.2`, … (a repeated list).
    pub fn list<S: AsRef<str>>(mut self, name: &str, items: &[S]) -> Self {
        for (i, v) in items.iter().enumerate() {
            self.0
                .push((format!("{name}.{}", i + 1), v.as_ref().to_string()));
        }
        self
    }
    /// `Name=["a","b"]` (a JSON-array string); nothing when empty.
    pub fn json_list<S: AsRef<str>>(self, name: &str, items: &[S]) -> Self {
        if items.is_empty() {
            return self;
        }
        let v: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        let json = serde_json::to_string(&v).expect("strings serialize");
        self.set(name, json)
    }
    /// `Tag.N.Key` / `Tag.N.Value`; a tag with an empty value filters by key only.
    pub fn tags(mut self, tags: &[super::Tag]) -> Self {
        for (i, t) in tags.iter().enumerate() {
            self.0.push((format!("Tag.{}.Key", i + 1), t.key.clone()));
            if !t.value.is_empty() {
                self.0
                    .push((format!("Tag.{}.Value", i + 1), t.value.clone()));
            }
        }
        self
    }
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// How a [`Client`] is built.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub credentials: Credentials,
    pub endpoints: Endpoints,
    pub signing: Signing,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
}

impl ClientConfig {
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Self {
        Self {
            credentials,
            endpoints,
            signing: Signing::V3,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Could not build the HTTP client.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot build the HTTP client: {0}")]
#[diagnostic(help(
    "this is a TLS setup problem; check that a rustls crypto provider is installed"
))]
pub struct ClientBuildError(String);

/// The Aliyun ECS + VPC client. Cheap to clone: clones share one connection pool, which keeps
/// TLS handshakes off the hot path when thousands of calls go to the same endpoints.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    inner: Arc<Inner>,
}

struct Inner {
    credentials: Credentials,
    endpoints: Endpoints,
    signing: Signing,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("access_key_id", &self.inner.credentials.access_key_id)
            .field("endpoints", &self.inner.endpoints)
            .field("signing", &self.inner.signing)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(alias = "code", default)]
    #[serde(rename = "Code")]
    code: String,
    #[serde(alias = "message", default)]
    #[serde(rename = "Message")]
    message: String,
    #[serde(alias = "requestId", default)]
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        // As the AWS client does: a library caller (a test, the local cloud) may not have
        // installed a provider; the node RPC client no longer does it for everyone.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(15)))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("cfxm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Self {
            http,
            inner: Arc::new(Inner {
                credentials: config.credentials,
                endpoints: config.endpoints,
                signing: config.signing,
            }),
        })
    }

    pub fn access_key_id(&self) -> &str {
        &self.inner.credentials.access_key_id
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// Calls `action` and decodes the JSON answer into `T`. `RegionId` is added when `region`
    /// is given. This is the one place a request is signed and sent.
    pub async fn call<T: DeserializeOwned>(
        &self,
        api: Api,
        action: &'static str,
        region: Option<&RegionId>,
        params: Params,
    ) -> Result<T, AliyunError> {
        let mut params = params;
        if let Some(r) = region {
            params = params.set("RegionId", r);
        }
        let endpoint = self
            .inner
            .endpoints
            .for_call(api, region.map(RegionId::as_str));
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let secret = self.inner.credentials.access_key_secret.expose();
        let key_id = self.inner.credentials.access_key_id.as_str();

        let mut extra_headers: Vec<(&'static str, String)> = Vec::new();
        let query = match self.inner.signing {
            Signing::V3 => {
                let headers = [
                    ("host", endpoint.host.as_str()),
                    ("x-acs-action", action),
                    ("x-acs-version", api.version()),
                    ("x-acs-date", now.as_str()),
                    ("x-acs-signature-nonce", nonce.as_str()),
                    ("x-acs-content-sha256", sign::EMPTY_SHA256),
                ];
                let canonical = sign::v3_canonical_request(
                    "POST",
                    params.pairs(),
                    &headers,
                    sign::EMPTY_SHA256,
                );
                let signature = sign::v3_signature(secret, &canonical);
                let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
                for (k, v) in &headers[1..] {
                    extra_headers.push((k, (*v).to_string()));
                }
                extra_headers.push((
                    "authorization",
                    sign::v3_authorization(key_id, &names, &signature),
                ));
                params
            }
            Signing::V1 => {
                let all = params
                    .set("Action", action)
                    .set("Version", api.version())
                    .set("Format", "JSON")
                    .set("AccessKeyId", key_id)
                    .set("SignatureMethod", "HMAC-SHA1")
                    .set("SignatureVersion", "1.0")
                    .set("SignatureNonce", &nonce)
                    .set("Timestamp", &now);
                let signature = sign::v1_signature(secret, "POST", all.pairs());
                all.set("Signature", signature)
            }
        };
        let mut url = endpoint.url;
        let encoded: Vec<String> = query
            .pairs()
            .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
            .collect();
        url.set_query(Some(&encoded.join("&")));
        let mut request = self
            .http
            .post(url)
            .header("host", &endpoint.host)
            .header("accept", "application/json")
            .header("content-length", "0");
        for (k, v) in extra_headers {
            request = request.header(k, v);
        }

        let response = request.send().await.map_err(|e| {
            AliyunError::local(
                action,
                region.cloned(),
                local_codes::TRANSPORT,
                transport_message(&e),
            )
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("x-acs-retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.map_err(|e| {
            AliyunError::local(
                action,
                region.cloned(),
                local_codes::TRANSPORT,
                transport_message(&e),
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice::<T>(&bytes).map_err(|e| {
                AliyunError::local(
                    action,
                    region.cloned(),
                    local_codes::BAD_RESPONSE,
                    format!("cannot decode the answer: {e}"),
                )
            });
        }
        let (code, message, request_id) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) if !b.code.is_empty() => (b.code, b.message, b.request_id.or(header_request_id)),
            _ => (
                format!("HTTP{}", status.as_u16()),
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                header_request_id,
            ),
        };
        Err(AliyunError::service(
            action,
            region.cloned(),
            status.as_u16(),
            code,
            message,
            request_id,
            retry_after,
        ))
    }
}

/// reqwest's error chain in one line (its Display omits the cause, which is the useful part).
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aliyun::Tag;

    #[test]
    fn params_use_the_wire_list_styles() {
        let p = Params::new()
            .list("InstanceId", &["i-1", "i-2"])
            .json_list("InstanceIds", &["i-1", "i-2"])
            .json_list("Empty", &[] as &[&str])
            .tags(&[Tag::new("a", "1"), Tag::new("b", "")])
            .opt("X", None::<&str>)
            .non_empty("Y", "");
        let got: Vec<(&str, &str)> = p.pairs().collect();
        assert_eq!(
            got,
            [
                ("InstanceId.1", "i-1"),
                ("InstanceId.2", "i-2"),
                ("InstanceIds", r#"["i-1","i-2"]"#),
                ("Tag.1.Key", "a"),
                ("Tag.1.Value", "1"),
                ("Tag.2.Key", "b"),
            ]
        );
    }
}

/// Why a client for a spec could not be set up.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SetupError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Credentials(#[from] super::CredentialsError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Endpoint(#[from] super::EndpointError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] ClientBuildError),
}

impl Client {
    /// The client a spec's `cloud.aliyun` asks for: credentials from the spec, else the
    /// environment, else the aliyun CLI's profile; endpoints from `CFXM_ALIYUN_ENDPOINT`, else
    /// the spec's `endpoint`, else the real cloud.
    pub fn for_spec(settings: &crate::spec::AliyunSettings) -> Result<Self, SetupError> {
        let credentials = super::resolve_credentials_from_env((
            settings.access_key_id.as_deref(),
            settings
                .access_key_secret
                .as_ref()
                .map(super::Secret::expose),
        ))?;
        let endpoints =
            Endpoints::resolve(settings.endpoint.as_deref(), &|k| std::env::var(k).ok())?;
        Ok(Self::new(ClientConfig::new(credentials, endpoints))?)
    }
}
