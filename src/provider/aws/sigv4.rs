//! AWS Signature Version 4 (aliyun-api.md §6.4): the canonical request, the string to sign, the
//! derived signing key and the `Authorization` header.
//!
//! This module is pure (no clock, no IO): the caller passes the time and the exact bytes it will
//! send, so the signature can be checked against the published vectors and against moto with
//! signature checking on. It signs any Query-protocol service (`ec2`, and `iam` in the tests).
//! It does not decide what is sent; `client` builds the request and sends exactly what was signed.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded, as SigV4
/// requires for canonical query strings (and as the form body uses, so both agree).
pub(crate) const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The signing algorithm named in the `Authorization` header and the string to sign.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Percent-encodes one query or form component the SigV4 way.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// What is signed: everything of the request that the signature covers.
#[derive(Debug, Clone)]
pub struct SignableRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The `Host` header exactly as sent (with `:port` when the port is not the scheme's default).
    pub host: &'a str,
    /// The URI path, already in canonical form (`/` for the Query API).
    pub path: &'a str,
    /// Query parameters, unencoded; they are encoded and sorted here.
    pub query: &'a [(&'a str, &'a str)],
    /// The `Content-Type` header, when the request has one (it is then signed).
    pub content_type: Option<&'a str>,
    /// The body bytes exactly as sent.
    pub body: &'a [u8],
    /// The region of the credential scope, e.g. `us-east-1`.
    pub region: &'a str,
    /// The service of the credential scope, e.g. `ec2`.
    pub service: &'a str,
}

/// The headers a signed request must carry, besides `Host` and `Content-Type`.
#[derive(Clone)]
pub struct SignedHeaders {
    /// `X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    pub x_amz_date: String,
    /// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    pub authorization: String,
    /// `X-Amz-Security-Token`, for temporary (session) credentials.
    pub security_token: Option<String>,
}

// Hand-written so a session token never reaches a log through `{:?}`.
impl std::fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("x_amz_date", &self.x_amz_date)
            .field("authorization", &self.authorization)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Signs `req` with `creds` at time `now`.
pub fn sign(req: &SignableRequest<'_>, creds: &Credentials, now: DateTime<Utc>) -> SignedHeaders {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let security_token = creds.session_token.as_ref().map(|t| t.expose().to_string());

    // Canonical headers: lowercase names, trimmed values with inner runs of spaces collapsed,
    // sorted by name. The session token is signed too, as botocore does.
    let mut headers: Vec<(&str, String)> = vec![
        ("host", collapse_spaces(req.host)),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(ct) = req.content_type {
        headers.push(("content-type", collapse_spaces(ct)));
    }
    if let Some(token) = &security_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");

    let canonical_request = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload}",
        method = req.method,
        path = req.path,
        query = canonical_query(req.query),
        payload = hex(&Sha256::digest(req.body)),
    );
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );

    let secret = format!("AWS4{}", creds.secret_access_key.expose());
    let k_date = hmac(secret.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, req.region.as_bytes());
    let k_service = hmac(&k_region, req.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));

    SignedHeaders {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
        x_amz_date: amz_date,
        security_token,
    }
}

/// Names and values RFC 3986-encoded, then sorted by name and value.
fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aws::credentials::Secret;
    use chrono::TimeZone;

    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    fn example_creds() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        )
    }

    #[test]
    fn aws_documented_iam_get_vector() {
        let req = SignableRequest {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: &[("Action", "ListUsers"), ("Version", "2010-05-08")],
            content_type: Some(FORM),
            body: b"",
            region: "us-east-1",
            service: "iam",
        };
        let now = Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap();
        let signed = sign(&req, &example_creds(), now);
        assert_eq!(signed.x_amz_date, "20150830T123600Z");
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(signed.security_token.is_none());
    }

    #[test]
    fn ec2_post_vector_matches_botocore() {
        let body = "Action=DescribeInstances&Filter.1.Name=tag%3Acfxm%3Astack&Filter.1.Value.1=web&Version=2016-11-15";
        let req = SignableRequest {
            method: "POST",
            host: "ec2.us-east-1.amazonaws.com",
            path: "/",
            query: &[],
            content_type: Some(FORM),
            body: body.as_bytes(),
            region: "us-east-1",
            service: "ec2",
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let signed = sign(&req, &example_creds(), now);
        assert!(
            signed.authorization.ends_with(
                "Signature=6ae0a46d289d3ecd7a75ca23eb7eb83cece86caf98e9479ca49793188c58667c"
            ),
            "{}",
            signed.authorization
        );
        assert!(
            signed
                .authorization
                .contains("Credential=AKIDEXAMPLE/20240102/us-east-1/ec2/aws4_request, ")
        );
    }

    #[test]
    fn the_body_encoding_agrees_with_the_vector() {
        // The client builds bodies with `encode`; the EC2 vector's body is what it must produce.
        assert_eq!(encode("tag:cfxm:stack"), "tag%3Acfxm%3Astack");
        assert_eq!(encode("a b/~._-"), "a%20b%2F~._-");
    }

    #[test]
    fn a_session_token_is_sent_and_signed_but_never_debug_printed() {
        let mut creds = example_creds();
        creds.session_token = Some(Secret::new("TOKEN-SECRET-123"));
        let req = SignableRequest {
            method: "POST",
            host: "127.0.0.1:5000",
            path: "/",
            query: &[],
            content_type: Some(FORM),
            body: b"Action=DescribeRegions&Version=2016-11-15",
            region: "eu-west-1",
            service: "ec2",
        };
        let signed = sign(&req, &creds, Utc::now());
        assert_eq!(signed.security_token.as_deref(), Some("TOKEN-SECRET-123"));
        assert!(
            signed
                .authorization
                .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,")
        );
        assert!(!format!("{signed:?}").contains("TOKEN-SECRET-123"));
    }

    #[test]
    fn a_different_secret_gives_a_different_signature() {
        let req = SignableRequest {
            method: "POST",
            host: "h",
            path: "/",
            query: &[],
            content_type: None,
            body: b"x",
            region: "r",
            service: "ec2",
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let a = sign(&req, &example_creds(), now);
        let b = sign(
            &req,
            &Credentials::new("AKIDEXAMPLE", Secret::new("other")),
            now,
        );
        assert_ne!(a.authorization, b.authorization);
        assert!(a.authorization.contains("SignedHeaders=host;x-amz-date,"));
    }
}
