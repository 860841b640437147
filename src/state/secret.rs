//! Keeping secrets out of the state directory (DESIGN §6: "secrets never appear in output, logs,
//! plans, journals or reports").
//!
//! Two guards, both applied by `to_guarded_json`, which every state writer (journal, inventory,
//! lock record) goes through:
//! 1. [`Secret`]: a string that refuses to be serialized and prints as `***`. Credentials
//!    (access key secrets, private key material) should live in this type from the moment they
//!    are read, so an accidental `#[derive(Serialize)]` on a struct holding one fails loudly
//!    instead of writing it. The Aliyun and AWS credentials hold their secrets in it.
//! 2. A scan of the JSON about to be written: keys that name a secret (`AccessKeySecret`,
//!    `Password`, `private_key`, ...) and values that contain private key material (`-----BEGIN
//!    ... PRIVATE KEY-----`) are refused. This catches secrets passed as plain strings, e.g. in a
//!    journal intent's parameters copied from a request.
//!
//! Paths to key files (`ssh_key_path`) and public keys are not secrets and pass.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::StateError;

/// A credential. Never serialized, never printed; read it with [`Secret::expose`] at the one
/// place that needs the value (signing a request, authenticating a session).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call sites are the audit list of where secrets are used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(REFUSAL))
    }
}

const REFUSAL: &str = "a `Secret` cannot be serialized";

/// Serializes `value` to compact JSON for the state directory, refusing secrets.
/// `what` names the document in the error (`journal entry`, `inventory`, ...).
pub(crate) fn to_guarded_json<T: Serialize>(
    what: &'static str,
    value: &T,
) -> Result<String, StateError> {
    let json = serde_json::to_value(value).map_err(|e| StateError::Refused {
        what,
        reason: e.to_string(),
    })?;
    if let Some(found) = find_secret(&json) {
        return Err(StateError::Refused {
            what,
            reason: found,
        });
    }
    serde_json::to_string(&json).map_err(|e| StateError::Refused {
        what,
        reason: e.to_string(),
    })
}

/// The JSON path of the first secret-looking key or value in `value`, with why.
pub fn find_secret(value: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, path: &mut String) -> Option<String> {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    if secret_key(k) && !is_empty(child) {
                        return Some(format!("`{path}` looks like a secret"));
                    }
                    if let Some(found) = walk(child, path) {
                        return Some(found);
                    }
                    path.truncate(len);
                }
                None
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if let Some(found) = walk(child, path) {
                        return Some(found);
                    }
                    path.truncate(len);
                }
                None
            }
            serde_json::Value::String(s) if private_key_material(s) => {
                Some(format!("`{path}` holds private key material"))
            }
            _ => None,
        }
    }
    walk(value, &mut String::from("$"))
}

fn is_empty(v: &serde_json::Value) -> bool {
    matches!(v, serde_json::Value::Null) || v.as_str().is_some_and(str::is_empty)
}

/// Whether a key names a secret: compared without case and separators, so `AccessKeySecret`,
/// `access_key_secret` and `access-key-secret` all match. `ClientToken` and `NextToken` are
/// idempotency and paging tokens, not credentials, and pass.
fn secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const WORDS: &[&str] = &[
        "secret",
        "password",
        "passwd",
        "privatekey",
        "credential",
        "apikey",
        "authorization",
        "securitytoken",
        "sessiontoken",
        "accesstoken",
    ];
    WORDS.iter().any(|w| k.contains(w))
}

fn private_key_material(s: &str) -> bool {
    s.contains("PRIVATE KEY-----")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Credentials {
        access_key_id: String,
        access_key_secret: Secret,
    }

    #[test]
    fn a_secret_never_serializes_nor_prints() {
        let c = Credentials {
            access_key_id: "LTAI-id".into(),
            access_key_secret: Secret::new("hunter2"),
        };
        let err = to_guarded_json("credentials", &c).unwrap_err();
        assert!(err.to_string().contains("cannot be serialized"), "{err}");
        assert!(!format!("{:?}", c.access_key_secret).contains("hunter2"));
        assert!(serde_json::to_string(&Secret::new("x")).is_err());
        assert_eq!(c.access_key_secret.expose(), "hunter2");
    }

    #[test]
    fn secrets_are_read_from_config_files() {
        let s: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn secret_looking_keys_are_refused_wherever_they_nest() {
        for (doc, path) in [
            (json!({"AccessKeySecret": "x"}), "$.AccessKeySecret"),
            (json!({"params": {"Password": "p"}}), "$.params.Password"),
            (
                json!({"list": [{"ok": 1}, {"private_key": "k"}]}),
                "$.list[1].private_key",
            ),
            (
                json!({"x-acs-security-token": "t"}),
                "$.x-acs-security-token",
            ),
        ] {
            let found = find_secret(&doc).unwrap_or_else(|| panic!("missed {doc}"));
            assert!(found.contains(path), "{found}");
        }
    }

    #[test]
    fn private_key_material_is_refused_under_any_key() {
        let pem =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----";
        let found = find_secret(&json!({"note": pem})).unwrap();
        assert!(found.contains("$.note"), "{found}");
    }

    #[test]
    fn ordinary_state_passes() {
        let doc = json!({
            "ClientToken": "cfxm-0123456789abcdef-0",
            "NextToken": "abc",
            "KeyPairName": "conflux-massive-test-alice",
            "PublicKeyBody": "ssh-ed25519 AAAA alice",
            "ssh_key_path": "./keys/ssh-key.pem",
            "AccessKeyId": "LTAI5t",
            "Password": "",
            "Tag": [{"Key": "user", "Value": "alice"}],
        });
        assert_eq!(find_secret(&doc), None);
        assert!(to_guarded_json("x", &doc).is_ok());
    }
}
