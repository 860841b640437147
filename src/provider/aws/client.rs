//! The EC2 Query API transport: one shared HTTP client, endpoint resolution, SigV4 signing of
//! every request, XML decoding, error classification and `NextToken` pagination.
//!
//! [`AwsClient`] is built once (credentials, endpoint, HTTP connection pool) and hands out cheap
//! per-region [`Ec2`] handles; the typed actions live in `network`, `compute` and `tags`. Every
//! request is `POST /` with a form body (`Action=…&Version=2016-11-15&…`) signed for service
//! `ec2` in the handle's region: moto routes on that credential scope (aliyun-api.md §6.1), and
//! with a fixed endpoint the region reaches the server only through it.
//!
//! This layer does not retry: a failed call returns its classified [`AwsError`] and the
//! reconciler's retry policy decides (STYLE §9).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::de::DeserializeOwned;

use super::credentials::{CredentialSource, Credentials, CredentialsError};
use super::error::AwsError;
use super::sigv4::{self, SignableRequest};
use crate::spec::{RegionId, ZoneId};

/// The EC2 API version every request names.
pub const EC2_VERSION: &str = "2016-11-15";

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Where EC2 requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS itself: `https://ec2.<region>.amazonaws.com` (`.amazonaws.com.cn` for `cn-` regions).
    Aws,
    /// One URL for every region (moto, a proxy, a VPC endpoint). The region still travels in the
    /// signature's credential scope.
    Fixed(Url),
}

impl Endpoint {
    /// The standard overrides: `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`, else AWS;
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` disables both, as in the AWS SDKs.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, AwsSetupError> {
        let ignore = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if ignore {
            return Ok(Endpoint::Aws);
        }
        for name in ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"] {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            return Endpoint::fixed(value.trim()).map_err(|reason| AwsSetupError::Endpoint {
                var: name,
                value,
                reason,
            });
        }
        Ok(Endpoint::Aws)
    }

    /// A fixed endpoint from a URL such as `http://127.0.0.1:5000`.
    pub fn fixed(url: &str) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme must be http or https, not `{}`",
                url.scheme()
            ));
        }
        if url.host_str().is_none() {
            return Err("the URL has no host".into());
        }
        Ok(Endpoint::Fixed(url))
    }

    fn url_for(&self, region: &RegionId) -> Url {
        match self {
            Endpoint::Fixed(url) => url.clone(),
            Endpoint::Aws => {
                let suffix = if region.as_str().starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                Url::parse(&format!("https://ec2.{region}.{suffix}/"))
                    .expect("a region id makes a valid host name")
            }
        }
    }
}

/// Why an [`AwsClient`] could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AwsSetupError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("`{var}={value}` is not a usable EC2 endpoint: {reason}")]
    #[diagnostic(
        code(cfxm::aws::endpoint),
        help("set it to a URL such as `http://127.0.0.1:5000`, or unset it to use AWS")
    )]
    Endpoint {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot build the HTTP client")]
    #[diagnostic(code(cfxm::aws::http))]
    Http(#[source] reqwest::Error),
}

/// Everything the per-region handles share.
#[derive(Debug, Clone)]
struct Shared {
    /// The one connection pool for every region and action; reqwest bounds idle connections
    /// per host, and the reconciler bounds concurrent calls.
    http: reqwest::Client,
    credentials: Credentials,
    endpoint: Endpoint,
    /// `MaxResults` asked of paginated Describe calls, clamped to each action's allowed range.
    page_size: u32,
}

/// An EC2 client for every region: credentials, endpoint and the shared connection pool.
#[derive(Debug, Clone)]
pub struct AwsClient {
    shared: Arc<Shared>,
}

impl AwsClient {
    /// Builds a client with explicit credentials and endpoint (tests, or callers with their own
    /// configuration).
    pub fn new(credentials: Credentials, endpoint: Endpoint) -> Result<Self, AwsSetupError> {
        // reqwest is built with `rustls-no-provider` and panics without a process-wide provider;
        // `main` installs ring, and so does this for library callers (a no-op when already set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("cfxm/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(AwsSetupError::Http)?;
        Ok(AwsClient {
            shared: Arc::new(Shared {
                http,
                credentials,
                endpoint,
                page_size: 1000,
            }),
        })
    }

    /// Credentials from the standard chain and the endpoint from the standard variables, read
    /// from the process environment.
    pub fn from_env() -> Result<Self, AwsSetupError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`AwsClient::from_env`], with `var` standing in for the environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, AwsSetupError> {
        let credentials = Credentials::from_lookup(&var)?;
        let endpoint = Endpoint::from_lookup(&var)?;
        Self::new(credentials, endpoint)
    }

    /// Asks paginated Describe calls for pages of `n` items (clamped per action to AWS's allowed
    /// range, at least 5). The default is each action's maximum.
    pub fn with_page_size(mut self, n: u32) -> Self {
        Arc::make_mut(&mut self.shared).page_size = n;
        self
    }

    /// Where the credentials came from, for messages.
    pub fn credential_source(&self) -> &CredentialSource {
        &self.shared.credentials.source
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    /// The EC2 API of one region.
    pub fn ec2(&self, region: RegionId) -> Ec2 {
        Ec2 {
            shared: Arc::clone(&self.shared),
            region,
        }
    }
}

/// The EC2 API of one region. Cheap to clone; the typed actions are its methods.
#[derive(Debug, Clone)]
pub struct Ec2 {
    shared: Arc<Shared>,
    region: RegionId,
}

/// The parameters of one Query API request, in the order they are added.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) action: &'static str,
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn new(action: &'static str) -> Self {
        Params {
            action,
            pairs: Vec::new(),
        }
    }

    /// Sets `name` (replacing an earlier value).
    pub(crate) fn set(&mut self, name: impl Into<String>, value: impl ToString) -> &mut Self {
        let name = name.into();
        let value = value.to_string();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((name, value)),
        }
        self
    }

    /// `prefix.1`, `prefix.2`, … (the Query API's list encoding).
    pub(crate) fn list<S: AsRef<str>>(
        &mut self,
        prefix: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        // Pushed, not `set`: the numbered names are new, and id lists run to 1,000 entries.
        for (i, v) in values.into_iter().enumerate() {
            self.pairs
                .push((format!("{prefix}.{}", i + 1), v.as_ref().to_string()));
        }
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n.starts_with(prefix))
    }

    /// The form body: `Action` and `Version` first, then the parameters, RFC 3986-encoded.
    fn body(&self) -> String {
        let mut body = format!("Action={}&Version={EC2_VERSION}", self.action);
        for (n, v) in &self.pairs {
            body.push('&');
            body.push_str(&sigv4::encode(n));
            body.push('=');
            body.push_str(&sigv4::encode(v));
        }
        body
    }
}

/// A paginated response: its items and the token for the next page.
pub(crate) trait Page: DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

/// Most pages a paginated call follows before giving up: far beyond any real listing (10,000
/// instances are 10 pages of 1,000), and a guard against a server that never stops.
const MAX_PAGES: usize = 10_000;

impl Ec2 {
    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// Sends one request and decodes its XML response into `T`.
    pub(crate) async fn call<T: DeserializeOwned>(&self, params: &Params) -> Result<T, AwsError> {
        let action = params.action;
        let url = self.shared.endpoint.url_for(&self.region);
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let body = params.body();
        let signed = sigv4::sign(
            &SignableRequest {
                method: "POST",
                host: &host,
                path: url.path(),
                query: &[],
                content_type: Some(FORM),
                body: body.as_bytes(),
                region: self.region.as_str(),
                service: "ec2",
            },
            &self.shared.credentials,
            chrono::Utc::now(),
        );
        let mut request = self
            .shared
            .http
            .post(url)
            .header(reqwest::header::HOST, &host)
            .header(reqwest::header::CONTENT_TYPE, FORM)
            .header("x-amz-date", &signed.x_amz_date)
            .header(reqwest::header::AUTHORIZATION, &signed.authorization);
        if let Some(token) = &signed.security_token {
            request = request.header("x-amz-security-token", token);
        }

        let started = Instant::now();
        let transport = |e: reqwest::Error| AwsError::transport(action, self.region.clone(), &e);
        let response = request.body(body).send().await.map_err(transport)?;
        let status = response.status();
        let header_request_id = ["x-amzn-requestid", "x-amz-request-id"]
            .iter()
            .find_map(|h| response.headers().get(*h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.map_err(transport)?;
        tracing::debug!(
            action,
            region = %self.region,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ec2 call"
        );

        if !status.is_success() {
            let zone = params
                .get("Placement.AvailabilityZone")
                .or_else(|| params.get("AvailabilityZone"))
                .map(ZoneId::new);
            return Err(AwsError::from_response(
                action,
                self.region.clone(),
                zone,
                status.as_u16(),
                &text,
                header_request_id,
            )
            .with_credential_source(&self.shared.credentials.source));
        }
        let start = || text.chars().take(120).collect::<String>();
        // Every field of a response is optional to serde, so any XML (or HTML) would decode as
        // "nothing found"; a listing that silently comes back empty makes a plan create
        // duplicates. EC2 names the root `<{Action}Response>`; insist on it.
        if !text.contains(&format!("<{action}Response")) {
            return Err(AwsError::malformed(
                action,
                self.region.clone(),
                header_request_id,
                format!(
                    "expected `<{action}Response>`; the response starts with `{}`",
                    start()
                ),
            ));
        }
        quick_xml::de::from_str::<T>(&text).map_err(|e| {
            AwsError::malformed(
                action,
                self.region.clone(),
                header_request_id,
                format!(
                    "cannot read the response ({e}); it starts with `{}`",
                    start()
                ),
            )
        })
    }

    /// Sends a Describe request and follows `NextToken` until the last page. `max_results` is
    /// the action's largest allowed `MaxResults`; `None` when the request names ids (AWS refuses
    /// `MaxResults` with id lists), which also means a single page.
    pub(crate) async fn call_paged<P: Page>(
        &self,
        mut params: Params,
        max_results: Option<u32>,
    ) -> Result<Vec<P::Item>, AwsError> {
        if let Some(max) = max_results {
            params.set("MaxResults", self.shared.page_size.clamp(5, max.max(5)));
        }
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page: P = self.call(&params).await?;
            let (mut batch, next) = page.into_parts();
            items.append(&mut batch);
            match next.filter(|t| !t.trim().is_empty()) {
                None => return Ok(items),
                Some(token) => {
                    if !seen.insert(token.clone()) {
                        return Err(AwsError::malformed(
                            params.action,
                            self.region.clone(),
                            None,
                            format!("the server returned the same NextToken `{token}` twice"),
                        ));
                    }
                    params.set("NextToken", token);
                }
            }
        }
        Err(AwsError::malformed(
            params.action,
            self.region.clone(),
            None,
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    /// Whether `params` names resources by id (then `MaxResults` must not be sent).
    pub(crate) fn names_ids(params: &Params, id_prefix: &str) -> bool {
        params.has_prefix(&format!("{id_prefix}."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Endpoint::from_lookup(env(&[])).unwrap(), Endpoint::Aws);
        let both = env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:2"),
        ]);
        assert_eq!(
            Endpoint::from_lookup(both).unwrap(),
            Endpoint::fixed("http://127.0.0.1:2").unwrap()
        );
        let general = env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
        assert_eq!(
            Endpoint::from_lookup(general).unwrap(),
            Endpoint::fixed("http://127.0.0.1:1").unwrap()
        );
        let ignored = env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(Endpoint::from_lookup(ignored).unwrap(), Endpoint::Aws);
        let bad = Endpoint::from_lookup(env(&[("AWS_ENDPOINT_URL_EC2", "ftp://x")])).unwrap_err();
        assert!(
            bad.to_string().contains("`AWS_ENDPOINT_URL_EC2=ftp://x`"),
            "{bad}"
        );
    }

    #[test]
    fn aws_endpoints_are_per_region() {
        let e = Endpoint::Aws;
        assert_eq!(
            e.url_for(&RegionId::new("us-west-2")).as_str(),
            "https://ec2.us-west-2.amazonaws.com/"
        );
        assert_eq!(
            e.url_for(&RegionId::new("cn-north-1")).as_str(),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn the_body_is_the_vector_s_body() {
        let mut p = Params::new("DescribeInstances");
        p.set("Filter.1.Name", "tag:cfxm:stack")
            .set("Filter.1.Value.1", "web");
        // The reference vector sorts `Version` last; the order does not matter to EC2 or to
        // the signature (the body is hashed as sent), only the encoding does.
        assert_eq!(
            p.body(),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Acfxm%3Astack&Filter.1.Value.1=web"
        );
        p.list("InstanceId", ["i-1", "i-2"]);
        assert_eq!(p.get("InstanceId.2"), Some("i-2"));
        assert!(Ec2::names_ids(&p, "InstanceId"));
        assert!(!Ec2::names_ids(&p, "VpcId"));
    }
}
