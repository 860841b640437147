//! Where each (API, region) call goes (aliyun-api.md §2.1).
//!
//! Default: HTTPS to `ecs.<region>.aliyuncs.com` / `vpc.<region>.aliyuncs.com`, except the
//! older regions the official SDKs send to the central `ecs.aliyuncs.com` / `vpc.aliyuncs.com`
//! (the central host routes by `RegionId`). One override URL replaces all of it: every region
//! and both APIs then go to that one server, which routes by `RegionId` and version, as the
//! emulator does. `CFXM_ALIYUN_ENDPOINT` beats the spec's `endpoint`, so a test or an operator
//! can point an existing spec at an emulator without editing it.

use reqwest::Url;

/// The environment variable that overrides every Aliyun endpoint.
pub const ENDPOINT_ENV: &str = "CFXM_ALIYUN_ENDPOINT";

/// The two RPC APIs cfxm speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    /// ECS, version `2014-05-26`.
    Ecs,
    /// VPC, version `2016-04-28`.
    Vpc,
}

impl Api {
    pub fn version(self) -> &'static str {
        match self {
            Api::Ecs => "2014-05-26",
            Api::Vpc => "2016-04-28",
        }
    }
    pub fn from_version(v: &str) -> Option<Api> {
        match v {
            "2014-05-26" => Some(Api::Ecs),
            "2016-04-28" => Some(Api::Vpc),
            _ => None,
        }
    }
    pub fn product(self) -> &'static str {
        match self {
            Api::Ecs => "Ecs",
            Api::Vpc => "Vpc",
        }
    }
    fn host_prefix(self) -> &'static str {
        match self {
            Api::Ecs => "ecs",
            Api::Vpc => "vpc",
        }
    }
}

/// Regions the official SDKs send to the central endpoint (aliyun-api.md §2.1).
const CENTRAL_REGIONS: [&str; 9] = [
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hongkong",
    "ap-southeast-1",
    "us-west-1",
    "us-east-1",
];

/// A resolved endpoint: the URL to POST to and the `host` header value that is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Url,
    /// `host[:port]` exactly as sent (the port only when not the scheme's default).
    pub host: String,
}

impl Endpoint {
    fn from_url(url: Url) -> Self {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        Self { url, host }
    }
}

/// Bad override URL.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{value}` (from {origin}) is not an endpoint URL: {reason}")]
#[diagnostic(help(
    "use a URL such as `http://127.0.0.1:8080` (scheme, host and optional port, nothing else)"
))]
pub struct EndpointError {
    pub value: String,
    pub origin: String,
    pub reason: String,
}

/// How endpoints are chosen: the real cloud's, or one override for everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoints {
    override_url: Option<Url>,
}

impl Endpoints {
    /// The real cloud's endpoints.
    pub fn aliyun() -> Self {
        Self::default()
    }

    /// One server for every region and both APIs.
    pub fn single(url: &str, origin: &str) -> Result<Self, EndpointError> {
        let fail = |reason: &str| EndpointError {
            value: url.to_string(),
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        let parsed = Url::parse(url).map_err(|e| fail(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(fail("the scheme must be `http` or `https`"));
        }
        if parsed.host_str().is_none() {
            return Err(fail("it has no host"));
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(fail("it must not have a path or query"));
        }
        Ok(Self {
            override_url: Some(parsed),
        })
    }

    /// `CFXM_ALIYUN_ENDPOINT` if set, else the spec's `endpoint`, else the real cloud.
    pub fn resolve(
        spec_endpoint: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, EndpointError> {
        if let Some(v) = env(ENDPOINT_ENV).filter(|v| !v.is_empty()) {
            return Self::single(&v, &format!("`{ENDPOINT_ENV}`"));
        }
        match spec_endpoint {
            Some(v) => Self::single(v, "the spec's `cloud.aliyun.endpoint`"),
            None => Ok(Self::aliyun()),
        }
    }

    /// Whether one override serves everything.
    pub fn is_single(&self) -> bool {
        self.override_url.is_some()
    }

    /// The endpoint for `api` in `region` (`None` for region-less calls).
    pub fn for_call(&self, api: Api, region: Option<&str>) -> Endpoint {
        if let Some(url) = &self.override_url {
            return Endpoint::from_url(url.clone());
        }
        let host = match region {
            Some(r) if !CENTRAL_REGIONS.contains(&r) => {
                format!("{}.{r}.aliyuncs.com", api.host_prefix())
            }
            _ => format!("{}.aliyuncs.com", api.host_prefix()),
        };
        let url = Url::parse(&format!("https://{host}/")).expect("a valid host makes a valid URL");
        Endpoint::from_url(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_and_central_hosts() {
        let e = Endpoints::aliyun();
        assert_eq!(
            e.for_call(Api::Ecs, Some("ap-southeast-5")).url.as_str(),
            "https://ecs.ap-southeast-5.aliyuncs.com/"
        );
        assert_eq!(
            e.for_call(Api::Vpc, Some("me-east-1")).host,
            "vpc.me-east-1.aliyuncs.com"
        );
        assert_eq!(
            e.for_call(Api::Ecs, Some("cn-hongkong")).host,
            "ecs.aliyuncs.com"
        );
        assert_eq!(e.for_call(Api::Ecs, None).host, "ecs.aliyuncs.com");
    }

    #[test]
    fn one_override_serves_every_region_and_api_env_first() {
        let env = |k: &str| (k == ENDPOINT_ENV).then(|| "http://127.0.0.1:18080".to_string());
        let e = Endpoints::resolve(Some("http://10.0.0.1:1"), &env).unwrap();
        for api in [Api::Ecs, Api::Vpc] {
            let ep = e.for_call(api, Some("ap-southeast-1"));
            assert_eq!(ep.url.as_str(), "http://127.0.0.1:18080/");
            assert_eq!(ep.host, "127.0.0.1:18080");
        }
        let e = Endpoints::resolve(Some("http://10.0.0.1"), &|_| None).unwrap();
        assert_eq!(e.for_call(Api::Vpc, None).host, "10.0.0.1");
        assert!(Endpoints::resolve(Some("ftp://x"), &|_| None).is_err());
        assert!(Endpoints::resolve(Some("http://x/path"), &|_| None).is_err());
        assert!(Endpoints::resolve(Some("not a url"), &|_| None).is_err());
    }
}
