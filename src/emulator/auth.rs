//! Request authentication, as the service does it: V3 (`Authorization: ACS3-HMAC-SHA256 …`) or
//! the RPC scheme (`Signature` parameter, HMAC-SHA1), both recomputed with
//! [`crate::provider::aliyun::sign`] against the emulator's key; timestamps more than 15 minutes
//! from the real clock and reused nonces are refused (aliyun-api.md §1).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};

use super::error::ApiError;
use crate::provider::aliyun::sign;

/// How far a request's timestamp may be from the server's clock, and how long a nonce is kept.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Which scheme signed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V3,
    V1,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::V3 => "V3",
            Scheme::V1 => "V1",
        }
    }
}

/// A request that passed authentication.
#[derive(Debug, Clone)]
pub struct Verified {
    pub scheme: Scheme,
    pub action: String,
    pub version: String,
}

/// Nonces seen in the last [`WINDOW`], per access key.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: HashMap<String, Instant>,
    last_prune: Option<Instant>,
}

impl NonceCache {
    /// Records a nonce; `false` if it was already used within the window.
    fn insert(&mut self, key: String) -> bool {
        let now = Instant::now();
        if self
            .last_prune
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(30))
        {
            self.seen.retain(|_, t| now.duration_since(*t) < WINDOW);
            self.last_prune = Some(now);
        }
        match self.seen.get(&key) {
            Some(t) if now.duration_since(*t) < WINDOW => false,
            _ => {
                self.seen.insert(key, now);
                true
            }
        }
    }
}

/// The emulator's one account key.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: crate::provider::aliyun::Secret,
}

fn mismatch() -> ApiError {
    ApiError::bad(
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation.",
    )
}

fn incomplete(what: &str) -> ApiError {
    ApiError::bad(
        "IncompleteSignature",
        format!("The request signature does not conform to Aliyun standards: {what}."),
    )
}

fn check_time(value: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(), ApiError> {
    let ts = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc())
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(value).map(|t| t.to_utc()))
        .map_err(|_| {
            ApiError::bad(
                "InvalidTimeStamp.Format",
                format!("The timestamp `{value}` is not `yyyy-MM-ddTHH:mm:ssZ`."),
            )
        })?;
    let skew = (now - ts).num_seconds().unsigned_abs();
    if skew > WINDOW.as_secs() {
        return Err(ApiError::bad(
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired: `{value}` is {skew} s from the server's time."
            ),
        ));
    }
    Ok(())
}

/// Checks a request's signature, timestamp and nonce. `query` and `body` are the decoded
/// pairs; `body_bytes` the raw body (V3 hashes it).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[(String, String)],
    body_bytes: &[u8],
    key: &AccessKey,
    nonces: &mut NonceCache,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verified, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(auth) =
        header("authorization").filter(|a| a.trim_start().starts_with(sign::V3_ALGORITHM))
    {
        let parsed = sign::parse_v3_authorization(auth)
            .ok_or_else(|| incomplete("malformed Authorization header"))?;
        if parsed.access_key_id != key.id {
            return Err(key_not_found());
        }
        for required in sign::V3_REQUIRED_SIGNED {
            if !parsed.signed_headers.iter().any(|h| h == required) {
                return Err(incomplete(&format!("`{required}` must be a signed header")));
            }
        }
        let mut signed = Vec::with_capacity(parsed.signed_headers.len());
        for name in &parsed.signed_headers {
            let values: Vec<&str> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(incomplete(&format!("signed header `{name}` is missing")));
            }
            signed.push((name.as_str(), values.join(",")));
        }
        let payload_hash = header("x-acs-content-sha256").unwrap_or_default();
        if payload_hash != sign::sha256_hex(body_bytes) {
            return Err(mismatch());
        }
        let signed_refs: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let canonical = sign::v3_canonical_request(
            method.as_str(),
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &signed_refs,
            payload_hash,
        );
        let expected = sign::v3_signature(key.secret.expose(), &canonical);
        if !sign::signatures_equal(&expected, &parsed.signature) {
            return Err(mismatch());
        }
        check_time(header("x-acs-date").unwrap_or_default(), now)?;
        let nonce = header("x-acs-signature-nonce").unwrap_or_default();
        if nonce.is_empty() || !nonces.insert(format!("{}\n{nonce}", key.id)) {
            return Err(nonce_used());
        }
        return Ok(Verified {
            scheme: Scheme::V3,
            action: header("x-acs-action").unwrap_or_default().to_string(),
            version: header("x-acs-version").unwrap_or_default().to_string(),
        });
    }

    let all: Vec<(&str, &str)> = query
        .iter()
        .chain(body.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let param = |name: &str| all.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let Some(signature) = param("Signature") else {
        return Err(incomplete(
            "no `Authorization` header and no `Signature` parameter",
        ));
    };
    if param("AccessKeyId") != Some(key.id.as_str()) {
        return Err(key_not_found());
    }
    if param("SignatureMethod") != Some("HMAC-SHA1") {
        return Err(ApiError::bad(
            "InvalidSignatureMethod",
            "SignatureMethod must be HMAC-SHA1.",
        ));
    }
    if param("SignatureVersion") != Some("1.0") {
        return Err(ApiError::bad(
            "InvalidSignatureVersion",
            "SignatureVersion must be 1.0.",
        ));
    }
    let expected = sign::v1_signature(key.secret.expose(), method.as_str(), all.iter().copied());
    if !sign::signatures_equal(&expected, signature) {
        return Err(mismatch());
    }
    check_time(param("Timestamp").unwrap_or_default(), now)?;
    let nonce = param("SignatureNonce").unwrap_or_default();
    if nonce.is_empty() || !nonces.insert(format!("{}\n{nonce}", key.id)) {
        return Err(nonce_used());
    }
    Ok(Verified {
        scheme: Scheme::V1,
        action: param("Action").unwrap_or_default().to_string(),
        version: param("Version").unwrap_or_default().to_string(),
    })
}

fn key_not_found() -> ApiError {
    ApiError::not_found(
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
    )
}

fn nonce_used() -> ApiError {
    ApiError::bad(
        "SignatureNonceUsed",
        "Specified signature nonce was used already.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AccessKey {
        AccessKey {
            id: "testid".into(),
            secret: crate::provider::aliyun::Secret::new("testsecret"),
        }
    }

    fn v1_query(nonce: &str, ts: &str) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = [
            ("Action", "DescribeRegions"),
            ("Version", "2014-05-26"),
            ("Format", "JSON"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce),
            ("Timestamp", ts),
            ("SignatureType", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = sign::v1_signature(
            "testsecret",
            "POST",
            q.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        q.push(("Signature".into(), sig));
        q
    }

    #[test]
    fn v1_accepts_then_refuses_replay_stale_and_wrong_key() {
        let now = chrono::Utc::now();
        let ts = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut nonces = NonceCache::default();
        let h = HeaderMap::new();
        let q = v1_query("n1", &ts);
        let v = verify(&Method::POST, &h, &q, &[], b"", &key(), &mut nonces, now).unwrap();
        assert_eq!(
            (v.scheme, v.action.as_str()),
            (Scheme::V1, "DescribeRegions")
        );
        let e = verify(&Method::POST, &h, &q, &[], b"", &key(), &mut nonces, now).unwrap_err();
        assert_eq!(e.code, "SignatureNonceUsed");
        // The same parameters split between query and body verify alike.
        let q2 = v1_query("n2", &ts);
        let (a, b) = q2.split_at(4);
        verify(&Method::POST, &h, a, b, b"", &key(), &mut nonces, now).unwrap();
        // The method is signed.
        let e = verify(
            &Method::GET,
            &h,
            &v1_query("n3", &ts),
            &[],
            b"",
            &key(),
            &mut nonces,
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let stale = (now - chrono::Duration::minutes(20))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let e = verify(
            &Method::POST,
            &h,
            &v1_query("n4", &stale),
            &[],
            b"",
            &key(),
            &mut nonces,
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidTimeStamp.Expired");
        let other = AccessKey {
            id: "other".into(),
            ..key()
        };
        let e = verify(
            &Method::POST,
            &h,
            &v1_query("n5", &ts),
            &[],
            b"",
            &other,
            &mut nonces,
            now,
        )
        .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.status),
            ("InvalidAccessKeyId.NotFound", 404)
        );
    }

    #[test]
    fn v3_vector_d_verifies_at_its_own_time() {
        // Vector D, with the time check pinned to the vector's date.
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "15215528852396"),
            ("x-acs-content-sha256", sign::EMPTY_SHA256),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let names = [
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        ];
        h.insert(
            "authorization",
            sign::v3_authorization(
                "testid",
                &names,
                "185137949aaf28db418270e8fc6eb4e3f00aa32cf4c538b3e643b8083c45b620",
            )
            .parse()
            .unwrap(),
        );
        let q = super::super::params::decode_form(
            "Amount=2&ClientToken=cfxm-0123456789abcdef&ImageId=ubuntu_22_04_x64_20G_alibase_20240101.vhd&InstanceName=web-%5B1%2C2%5D&InstanceType=ecs.g7.large&RegionId=cn-hangzhou&Tag.1.Key=cfxm%3Astack&Tag.1.Value=web+prod%2A~%2F%C3%A9",
        );
        let at = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let mut nonces = NonceCache::default();
        let v = verify(&Method::POST, &h, &q, &[], b"", &key(), &mut nonces, at).unwrap();
        assert_eq!(
            (v.scheme, v.action.as_str(), v.version.as_str()),
            (Scheme::V3, "RunInstances", "2014-05-26")
        );
        // Any change to a signed part breaks it; so does a body the hash does not cover.
        let mut tampered = q.clone();
        tampered[0].1 = "3".into();
        let e = verify(
            &Method::POST,
            &h,
            &tampered,
            &[],
            b"",
            &key(),
            &mut nonces,
            at,
        )
        .unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let e = verify(&Method::POST, &h, &q, &[], b"x=1", &key(), &mut nonces, at).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        // A year later the same request is stale.
        let later = at + chrono::Duration::days(365);
        let e = verify(
            &Method::POST,
            &h,
            &q,
            &[],
            b"",
            &key(),
            &mut NonceCache::default(),
            later,
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidTimeStamp.Expired");
    }
}
