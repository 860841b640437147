//! From a verified request to an answer: route by API and action, apply ClientToken
//! idempotency, and share the paging rules. The ECS and VPC actions themselves are in
//! [`super::ecs`] and [`super::vpc`]; they parse parameters, call the [`World`], and render the
//! wire JSON (without `RequestId`, which the server adds).

use std::fmt::Write as _;

use rand::rngs::StdRng;
use serde_json::Value;

use super::error::ApiError;
use super::knobs::Knobs;
use super::params::Params;
use super::world::{Millis, TokenRecord, World};
use crate::provider::aliyun::Api;

/// What a read-only action may use besides the world.
pub struct View<'a> {
    pub region: &'a str,
    pub now: Millis,
    pub knobs: &'a Knobs,
}

impl View<'_> {
    /// Whether a resource created at `created_ms` shows up in listings yet (the eventual
    /// consistency window).
    pub fn visible(&self, created_ms: Millis) -> bool {
        created_ms + self.knobs.consistency_window_ms as Millis <= self.now
    }
}

/// What a changing action may use besides the world: what a [`View`] has, and the rng for ids.
pub struct Ctx<'a> {
    pub region: &'a str,
    pub now: Millis,
    pub knobs: &'a Knobs,
    pub rng: &'a mut StdRng,
}

/// Actions that change the world (their success is persisted).
pub fn mutates(action: &str) -> bool {
    [
        "Create",
        "Delete",
        "Run",
        "Import",
        "Authorize",
        "Revoke",
        "Tag",
        "Copy",
    ]
    .iter()
    .any(|p| action.starts_with(p))
}

/// Actions that honour `ClientToken`.
const IDEMPOTENT: [&str; 9] = [
    "RunInstances",
    "CreateVpc",
    "CreateVSwitch",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroup",
    "CreateImage",
    "CopyImage",
    "DeleteVpc",
    "DeleteInstances",
];

/// Actions that need no `RegionId`.
pub fn region_free(action: &str) -> bool {
    matches!(action, "DescribeRegions" | "DescribeInstanceTypes")
}

/// Runs one action, honouring `ClientToken`: the same token with the same parameters answers
/// what it answered before (creating nothing); with other parameters it is
/// `IdempotentParameterMismatch`. Failed calls are not recorded, so a retry can succeed.
pub fn dispatch(
    api: Api,
    action: &str,
    p: &Params,
    world: &mut World,
    ctx: &mut Ctx<'_>,
) -> Result<Value, ApiError> {
    let token = p
        .get("ClientToken")
        .filter(|_| IDEMPOTENT.contains(&action));
    let Some(token) = token else {
        return route(api, action, p, world, ctx);
    };
    if token.len() > 64 || !token.is_ascii() {
        return Err(ApiError::bad(
            "InvalidClientToken.ValueNotSupported",
            "The ClientToken must be at most 64 ASCII characters.",
        ));
    }
    let key = format!("{}|{}|{action}|{token}", api.product(), ctx.region);
    let fingerprint = p.fingerprint();
    if let Some(rec) = world.tokens.get(&key) {
        if rec.fingerprint == fingerprint {
            return Ok(rec.response.clone());
        }
        return Err(ApiError::bad(
            "IdempotentParameterMismatch",
            "The specified parameters are different from before with the same ClientToken.",
        ));
    }
    let response = route(api, action, p, world, ctx)?;
    world.tokens.insert(
        key,
        TokenRecord {
            fingerprint,
            response: response.clone(),
        },
    );
    Ok(response)
}

fn route(
    api: Api,
    action: &str,
    p: &Params,
    world: &mut World,
    ctx: &mut Ctx<'_>,
) -> Result<Value, ApiError> {
    let answer = match api {
        Api::Ecs => super::ecs::handle_write(action, p, world, ctx),
        Api::Vpc => super::vpc::handle_write(action, p, world, ctx),
    };
    answer.unwrap_or_else(|| Err(unknown_action(api, action)))
}

/// Runs a read-only action; they share the world with each other (a read lock).
pub fn dispatch_read(
    api: Api,
    action: &str,
    p: &Params,
    world: &World,
    view: &View<'_>,
) -> Result<Value, ApiError> {
    let answer = match api {
        Api::Ecs => super::ecs::handle_read(action, p, world, view),
        Api::Vpc => super::vpc::handle_read(action, p, world, view),
    };
    answer.unwrap_or_else(|| Err(unknown_action(api, action)))
}

fn unknown_action(api: Api, action: &str) -> ApiError {
    ApiError::not_found(
        "InvalidAction.NotFound",
        format!(
            "Specified api `{action}` is not found in version {}.",
            api.version()
        ),
    )
}

// ----- paging -----

/// `NextToken` + `MaxResults` paging: `max` rows from the first key ≥ the token.
pub struct TokenPaging {
    pub max: usize,
    pub start: Option<String>,
}

impl TokenPaging {
    pub fn parse(p: &Params, default: u64, limit: u64) -> Result<Self, ApiError> {
        let max = p.u64("MaxResults")?.unwrap_or(default);
        if max == 0 {
            return Err(ApiError::invalid(
                "The parameter MaxResults must be at least 1.",
            ));
        }
        let start = match p.get("NextToken") {
            None => None,
            Some(t) => Some(decode_token(t)?),
        };
        Ok(Self {
            max: max.min(limit) as usize,
            start,
        })
    }

    /// `items` must be sorted by key. Returns the page and the next token (empty at the end).
    /// Page before rendering: callers pass references and render only the page.
    pub fn page<K: AsRef<str>, T>(
        &self,
        items: impl IntoIterator<Item = (K, T)>,
    ) -> (Vec<T>, String) {
        let mut it = items
            .into_iter()
            .skip_while(|(k, _)| self.start.as_deref().is_some_and(|s| k.as_ref() < s));
        let page: Vec<T> = it.by_ref().take(self.max).map(|(_, v)| v).collect();
        let next = it
            .next()
            .map(|(k, _)| encode_token(k.as_ref()))
            .unwrap_or_default();
        (page, next)
    }
}

/// Page tokens are the next row's key, hex-encoded so they are opaque to clients.
fn encode_token(key: &str) -> String {
    let mut s = String::with_capacity(key.len() * 2);
    for b in key.bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn decode_token(t: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("The specified NextToken is invalid.");
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16))
        .collect();
    String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())
}

/// `PageNumber` (from 1) + `PageSize` paging.
pub struct NumberPaging {
    pub number: usize,
    pub size: usize,
}

impl NumberPaging {
    pub fn parse(p: &Params, default: u64, limit: u64) -> Result<Self, ApiError> {
        let number = p.u64("PageNumber")?.unwrap_or(1);
        let size = p.u64("PageSize")?.unwrap_or(default);
        if number == 0 {
            return Err(ApiError::invalid(
                "The parameter PageNumber must be at least 1.",
            ));
        }
        if size == 0 || size > limit {
            return Err(ApiError::invalid(format!(
                "The parameter PageSize must be between 1 and {limit}."
            )));
        }
        Ok(Self {
            number: number as usize,
            size: size as usize,
        })
    }

    pub fn page<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip((self.number - 1) * self.size)
            .take(self.size)
            .collect()
    }
}

/// `"*"`-wildcard match (`DescribeInstances` `InstanceName`, `DescribeKeyPairs` `KeyPairName`).
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// ECS tag shape: `{"Tag": [{"TagKey", "TagValue"}]}`.
pub fn ecs_tags(tags: &[crate::provider::aliyun::Tag]) -> Value {
    let rows: Vec<Value> = tags
        .iter()
        .map(|t| serde_json::json!({"TagKey": t.key, "TagValue": t.value}))
        .collect();
    serde_json::json!({ "Tag": rows })
}

/// VPC tag shape: `{"Tag": [{"Key", "Value"}]}`.
pub fn vpc_tags(tags: &[crate::provider::aliyun::Tag]) -> Value {
    let rows: Vec<Value> = tags
        .iter()
        .map(|t| serde_json::json!({"Key": t.key, "Value": t.value}))
        .collect();
    serde_json::json!({ "Tag": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paging_walks_every_row_once() {
        let items: Vec<(String, u32)> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let mut start = None;
        let mut seen = Vec::new();
        loop {
            let paging = TokenPaging {
                max: 3,
                start: start.clone(),
            };
            let (page, next) = paging.page(items.clone());
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            start = Some(decode_token(&next).unwrap());
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert!(decode_token("zz").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("conflux-*", "conflux-massive-test-alice"));
        assert!(wildcard("*alice", "conflux-massive-test-alice"));
        assert!(wildcard("c*test*e", "conflux-massive-test-alice"));
        assert!(!wildcard("x*", "conflux"));
        assert!(wildcard("exact", "exact") && !wildcard("exact", "exactly"));
    }
}
