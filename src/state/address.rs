//! [`Address`]: the stable identity of a resource or stage (DESIGN §5), shared by the desired
//! graph, live discovery, the journal and the plan.
//!
//! An address is `/`-separated segments, e.g. `aliyun/ap-southeast-1/vswitch/ap-southeast-1a`,
//! `aliyun/ap-southeast-1/hosts`, `stage/topology`. It lives here because the journal is the first
//! thing that persists addresses; `plan` builds them (and may add typed constructors), `discover`
//! maps tags to them. The form is checked once, at construction, so a persisted address always
//! reads back.

use std::fmt;
use std::str::FromStr;

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A resource address. Ordered and hashable, so it keys maps in plans and journals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

/// An address that is not `/`-separated segments of `[A-Za-z0-9._:+-]`.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
#[error("`{text}` is not a resource address: {reason}")]
#[diagnostic(
    code(cfxm::state::bad_address),
    help(
        "an address is segments of letters, digits and `._:+-` joined by `/`, e.g. `aliyun/ap-southeast-1/hosts`"
    )
)]
pub struct AddressError {
    pub text: String,
    pub reason: &'static str,
}

impl Address {
    /// Longest address accepted; real ones are under 100 bytes.
    pub const MAX_LEN: usize = 512;

    pub fn new(text: impl Into<String>) -> Result<Self, AddressError> {
        let text = text.into();
        let reason = if text.is_empty() {
            Some("it is empty")
        } else if text.len() > Self::MAX_LEN {
            Some("it is too long")
        } else if text.split('/').any(str::is_empty) {
            Some("it has an empty segment")
        } else if !text.chars().all(|c| c == '/' || segment_char(c)) {
            Some("it has a character outside `[A-Za-z0-9._:+-/]`")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(AddressError { text, reason }),
            None => Ok(Address(text)),
        }
    }

    /// Joins segments, e.g. `Address::from_segments(["aliyun", "ap-southeast-1", "hosts"])`.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, AddressError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parts: Vec<String> = segments
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        Address::new(parts.join("/"))
    }

    /// This address with one more segment.
    pub fn child(&self, segment: &str) -> Result<Self, AddressError> {
        Address::new(format!("{}/{segment}", self.0))
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '+' | '-')
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::new(s)
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Address::new(s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_examples_are_addresses() {
        for text in [
            "aliyun/ap-southeast-1/vswitch/ap-southeast-1a",
            "aliyun/ap-southeast-1/hosts",
            "aliyun/ap-southeast-1/hosts/ecs.g8i.2xlarge",
            "stage/topology",
        ] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
        let a = Address::from_segments(["aliyun", "cn-hongkong", "vpc"]).unwrap();
        assert_eq!(
            a.segments().collect::<Vec<_>>(),
            ["aliyun", "cn-hongkong", "vpc"]
        );
        assert_eq!(a.child("sg").unwrap().as_str(), "aliyun/cn-hongkong/vpc/sg");
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("a//b", "empty segment"),
            ("/a", "empty segment"),
            ("a/", "empty segment"),
            ("a b", "character"),
            ("a/é", "character"),
        ] {
            let err = Address::new(text).unwrap_err();
            assert!(err.reason.contains(reason), "{text:?}: {}", err.reason);
        }
        assert!(Address::new("a".repeat(Address::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn serde_checks_the_form_on_the_way_in() {
        let a: Address = serde_json::from_str("\"stage/nodes\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"stage/nodes\"");
        assert!(serde_json::from_str::<Address>("\"bad address\"").is_err());
    }
}
