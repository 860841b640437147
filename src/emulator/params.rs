//! Request parameters as the service reads them: query and form body merged, `+` decoded as a
//! space, empty values kept; typed getters for the wire's list styles (aliyun-api.md §1.5,
//! §3.2), each failing with the code the real service uses.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::provider::aliyun::Tag;

/// Decodes `a=1&b=x+y` (form encoding: `+` is a space). Keeps empty values and repeats.
pub fn decode_form(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Parameters that authenticate or frame a request rather than say what to do.
pub const COMMON: [&str; 11] = [
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "SecurityToken",
];

/// The merged parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Later pairs win on a repeated name (the body over the query).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            map: pairs.into_iter().collect(),
        }
    }

    /// A parameter, `None` when absent or empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.map
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, k: &str) -> String {
        self.get(k).unwrap_or_default().to_string()
    }

    pub fn required(&self, k: &str) -> Result<&str, ApiError> {
        self.get(k).ok_or_else(|| ApiError::missing(k))
    }

    /// A boolean; the official SDK sends Python's `True`/`False`.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(format!(
                "The parameter {k} (`{v}`) is not a boolean."
            ))),
        }
    }

    pub fn u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::invalid(format!(
                    "The parameter {k} (`{v}`) is not a non-negative integer."
                ))
            }),
        }
    }

    /// `Name.1`, `Name.2`, … in numeric order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, &String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((n, v))
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// A JSON-array string (`["a", "b"]`).
    pub fn json_list(&self, k: &str) -> Result<Vec<String>, ApiError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_str::<Vec<String>>(v).map_err(|_| {
                ApiError::invalid(format!(
                    "The parameter {k} must be a JSON array of strings."
                ))
            }),
        }
    }

    /// The numbered groups `Name.N.Field`: N → (Field → value), in numeric order.
    pub fn groups(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("{name}.");
        let mut groups: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.map {
            if let Some(rest) = k.strip_prefix(&prefix)
                && let Some((n, field)) = rest.split_once('.')
                && let Ok(n) = n.parse::<u32>()
            {
                groups
                    .entry(n)
                    .or_default()
                    .insert(field.to_string(), v.clone());
            }
        }
        groups.into_values().collect()
    }

    /// `Tag.N.Key` / `Tag.N.Value`. A value without a key is refused.
    pub fn tags(&self) -> Result<Vec<Tag>, ApiError> {
        let mut out = Vec::new();
        for g in self.groups("Tag") {
            let key = g.get("Key").filter(|k| !k.is_empty());
            let value = g.get("Value").cloned().unwrap_or_default();
            match key {
                Some(k) => out.push(Tag::new(k.clone(), value)),
                None if !value.is_empty() => {
                    return Err(ApiError::bad(
                        "InvalidParameter.TagValue",
                        "A Tag.N.Value was given without its Tag.N.Key.",
                    ));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// The business parameters in a canonical form, for ClientToken fingerprints.
    pub fn fingerprint(&self) -> String {
        self.map
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()) && k.as_str() != "ClientToken")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_and_list_styles() {
        let pairs = decode_form(
            "Tag.1.Value=web+prod&Tag.1.Key=k&InstanceIds=%5B%22i-a%22%2C+%22i-b%22%5D&Id.10=z&Id.2=y&Empty=&Force=True",
        );
        let p = Params::new(pairs);
        assert_eq!(p.tags().unwrap(), vec![Tag::new("k", "web prod")]);
        assert_eq!(p.json_list("InstanceIds").unwrap(), ["i-a", "i-b"]);
        assert_eq!(p.list("Id"), ["y", "z"]);
        assert_eq!(p.get("Empty"), None);
        assert_eq!(p.bool("Force").unwrap(), Some(true));
        assert!(p.required("Nope").unwrap_err().code == "MissingParameter");
        let bad = Params::new(decode_form("Tag.1.Value=v"));
        assert_eq!(bad.tags().unwrap_err().code, "InvalidParameter.TagValue");
    }

    #[test]
    fn fingerprints_ignore_signing_and_token() {
        let a = Params::new(decode_form(
            "A=1&Timestamp=x&SignatureNonce=1&ClientToken=t",
        ));
        let b = Params::new(decode_form("A=1&Timestamp=y&SignatureNonce=2"));
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = Params::new(decode_form("A=2"));
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
