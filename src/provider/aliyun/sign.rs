//! Aliyun request signing: the RPC scheme (HMAC-SHA1, "signature method V1/V2") and V3
//! (`ACS3-HMAC-SHA256`), with the RFC 3986 encoding both use (aliyun-api.md §1).
//!
//! This is the only implementation of the algorithms in cfxm: the client signs with it and the
//! emulator verifies with it, so a bug cannot hide by being made twice in opposite directions.
//! The test vectors A–E of the reference pin it to the official signers.
//!
//! Nothing here knows about HTTP libraries or secrets handling; callers pass plain strings and
//! bytes, and keep secrets in [`super::Secret`].

use std::fmt::Write as _;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The `Authorization` scheme name of V3.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// SHA-256 of the empty body, the `x-acs-content-sha256` of every request cfxm sends.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Headers a V3 verifier insists are signed, whatever else the client chose to sign.
pub const V3_REQUIRED_SIGNED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
];

/// RFC 3986 over UTF-8: `A-Z a-z 0-9 - _ . ~` stay, every other byte becomes uppercase `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `name=value` pairs sorted byte-wise by name (then value, for a stable order of repeats),
/// both encoded, joined with `&`. Empty values are kept as `name=`.
fn canonical_pairs<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.into_iter().collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// The RPC scheme's StringToSign: `METHOD&%2F&` + encode(canonical query). `Signature` itself
/// is excluded; query and form-body parameters count alike (§1.3).
pub fn v1_string_to_sign<'a>(
    method: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let canonical = canonical_pairs(params.into_iter().filter(|(k, _)| *k != "Signature"));
    format!("{method}&%2F&{}", percent_encode(&canonical))
}

/// The RPC scheme's signature: Base64(HMAC-SHA1(secret + `&`, StringToSign)).
pub fn v1_signature<'a>(
    secret: &str,
    method: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let string_to_sign = v1_string_to_sign(method, params);
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Lowercase hex SHA-256, the form of `x-acs-content-sha256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// V3's canonical request (§1.4). `signed_headers` are (lowercase name, value) pairs, in any
/// order; `payload_hash` is the hex SHA-256 of the body.
pub fn v3_canonical_request<'a>(
    method: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    signed_headers: &[(&str, &str)],
    payload_hash: &str,
) -> String {
    let mut headers: Vec<(String, &str)> = signed_headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    headers.sort_unstable();
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        canonical_headers.push_str(k);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{method}\n/\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        canonical_pairs(query),
        names.join(";")
    )
}

/// V3's signature: hex HMAC-SHA256(raw secret, `ACS3-HMAC-SHA256\n` + hex SHA-256(canonical)).
pub fn v3_signature(secret: &str, canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>` (no spaces after
/// commas, unlike AWS).
pub fn v3_authorization(
    access_key_id: &str,
    signed_header_names: &[&str],
    signature: &str,
) -> String {
    let mut names: Vec<String> = signed_header_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={signature}",
        names.join(";")
    )
}

/// The parts of a V3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses a V3 `Authorization` header; `None` when it is not one (or is incomplete).
/// Tolerates spaces after the commas, which some clients add.
pub fn parse_v3_authorization(header: &str) -> Option<V3Authorization> {
    let rest = header.trim().strip_prefix(V3_ALGORITHM)?.trim_start();
    let (mut id, mut names, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => id = Some(v.to_string()),
            "SignedHeaders" => {
                names = Some(
                    v.split(';')
                        .filter(|s| !s.is_empty())
                        .map(str::to_ascii_lowercase)
                        .collect(),
                );
            }
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some(V3Authorization {
        access_key_id: id?,
        signed_headers: names?,
        signature: sig?,
    })
}

/// Compares two signatures without an early exit, so timing does not reveal a prefix.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        v.to_vec()
    }

    const VECTOR_B_BUSINESS: [(&str, &str); 8] = [
        ("RegionId", "cn-hangzhou"),
        ("ImageId", "ubuntu_22_04_x64_20G_alibase_20240101.vhd"),
        ("InstanceType", "ecs.g7.large"),
        ("Amount", "2"),
        ("ClientToken", "cfxm-0123456789abcdef"),
        ("Tag.1.Key", "cfxm:stack"),
        ("Tag.1.Value", "web prod*~/é"),
        ("InstanceName", "web-[1,2]"),
    ];

    #[test]
    fn percent_encoding_follows_rfc3986_with_uppercase_hex() {
        assert_eq!(percent_encode("a b*~/:é+="), "a%20b%2A~%2F%3A%C3%A9%2B%3D");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn vector_a_documented_rpc_example() {
        let p = pairs(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        assert_eq!(
            v1_string_to_sign("GET", p.iter().copied()),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature("testsecret", "GET", p.iter().copied()),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        // `Signature` never signs itself, and parameter order does not matter.
        let mut with_sig = p.clone();
        with_sig.reverse();
        with_sig.push(("Signature", "whatever"));
        assert_eq!(
            v1_signature("testsecret", "GET", with_sig.iter().copied()),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn vector_b_rpc_encoding_edge_cases_post() {
        let mut p = pairs(&[
            ("Action", "RunInstances"),
            ("Format", "JSON"),
            ("Version", "2014-05-26"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "15215528852396"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
        ]);
        p.extend(VECTOR_B_BUSINESS);
        assert_eq!(
            v1_string_to_sign("POST", p.iter().copied()),
            "POST&%2F&AccessKeyId%3Dtestid%26Action%3DRunInstances%26Amount%3D2%26ClientToken%3Dcfxm-0123456789abcdef%26Format%3DJSON%26ImageId%3Dubuntu_22_04_x64_20G_alibase_20240101.vhd%26InstanceName%3Dweb-%255B1%252C2%255D%26InstanceType%3Decs.g7.large%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D15215528852396%26SignatureVersion%3D1.0%26Tag.1.Key%3Dcfxm%253Astack%26Tag.1.Value%3Dweb%2520prod%252A~%252F%25C3%25A9%26Timestamp%3D2024-01-02T03%253A04%253A05Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature("testsecret", "POST", p.iter().copied()),
            "zQP+aEN6itRJ183/ifwG3bASk6E="
        );
        // Empty values still sign (`SignatureType=` from the legacy SDK).
        p.push(("SignatureType", ""));
        assert_ne!(
            v1_signature("testsecret", "POST", p.iter().copied()),
            "zQP+aEN6itRJ183/ifwG3bASk6E="
        );
    }

    #[test]
    fn vector_c_documented_v3_example() {
        let headers = [
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ];
        let query = [
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ];
        let canonical = v3_canonical_request("POST", query, &headers, EMPTY_SHA256);
        assert_eq!(
            v3_signature("YourAccessKeySecret", &canonical),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            v3_authorization("YourAccessKeyId", &names, "sig"),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=sig"
        );
    }

    fn vector_d_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "15215528852396"),
        ]
    }

    const VECTOR_D_QUERY: &str = "Amount=2&ClientToken=cfxm-0123456789abcdef&ImageId=ubuntu_22_04_x64_20G_alibase_20240101.vhd&InstanceName=web-%5B1%2C2%5D&InstanceType=ecs.g7.large&RegionId=cn-hangzhou&Tag.1.Key=cfxm%3Astack&Tag.1.Value=web%20prod%2A~%2F%C3%A9";

    #[test]
    fn vector_d_v3_query_parameters() {
        let mut headers = vector_d_headers();
        headers.push(("x-acs-content-sha256", EMPTY_SHA256));
        let canonical = v3_canonical_request("POST", VECTOR_B_BUSINESS, &headers, EMPTY_SHA256);
        assert_eq!(canonical.split('\n').nth(2), Some(VECTOR_D_QUERY));
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "e5bd46b68b0f76ae14a92c87ed92b2ab61fc41e5cf9e64fbd786cbc6722081d7"
        );
        assert_eq!(
            v3_signature("testsecret", &canonical),
            "185137949aaf28db418270e8fc6eb4e3f00aa32cf4c538b3e643b8083c45b620"
        );
    }

    #[test]
    fn vector_e_v3_form_body() {
        let body_hash = sha256_hex(VECTOR_D_QUERY.as_bytes());
        assert_eq!(
            body_hash,
            "1f0963eb8724c500832cc18cd4aabf62957d10ca66257ce4e01a04be2f43e2f1"
        );
        let mut headers = vector_d_headers();
        headers.push(("x-acs-content-sha256", &body_hash));
        headers.push(("content-type", "application/x-www-form-urlencoded"));
        let canonical = v3_canonical_request("POST", [], &headers, &body_hash);
        assert_eq!(
            canonical.split('\n').nth(11),
            Some(
                "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
            )
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "63974ac8ee350f12b33a39868a7f54a5b52a4cb654a6e02d30ddeb8635b9c72b"
        );
        assert_eq!(
            v3_signature("testsecret", &canonical),
            "da808b0696dd85ffb5a36f466c46208fcb2afdc85058ad6e07368b657d3933c6"
        );
    }

    #[test]
    fn authorization_header_round_trips_and_rejects_junk() {
        let h = v3_authorization("id", &["x-acs-date", "host"], "abc");
        let parsed = parse_v3_authorization(&h).unwrap();
        assert_eq!(parsed.access_key_id, "id");
        assert_eq!(parsed.signed_headers, ["host", "x-acs-date"]);
        assert_eq!(parsed.signature, "abc");
        let spaced = "ACS3-HMAC-SHA256 Credential=id, SignedHeaders=host, Signature=abc";
        assert!(parse_v3_authorization(spaced).is_some());
        assert!(parse_v3_authorization("AWS4-HMAC-SHA256 Credential=x").is_none());
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=id").is_none());
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
