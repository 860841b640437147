//! AWS credentials from the standard chain; the secret is held in [`Secret`] (redacted, never
//! serialized).
//!
//! The chain is the subset of the AWS SDKs' default chain that a command-line tool needs
//! (no instance metadata, no SSO): the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), then the profile named by `AWS_PROFILE` (default `default`) in the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`), then the same
//! profile in the config file (`AWS_CONFIG_FILE`, default `~/.aws/config`, sections
//! `[profile NAME]` or `[default]`). Environment lookups go through a function so tests resolve
//! without touching the process environment.

use std::fmt;
use std::path::PathBuf;

/// Credentials are held in the one [`Secret`] type: redacted in Debug and Display, refused by
/// every serializer, so a secret cannot reach output, logs or state by accident.
pub use crate::state::Secret;

/// Where a set of credentials came from, for messages ("check `AWS_PROFILE=x` in ~/.aws/...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Given in code (tests, or a caller with its own source).
    Explicit,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`).
    Environment,
    /// A profile in a shared credentials or config file.
    Profile { name: String, file: PathBuf },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Explicit => f.write_str("credentials given by the caller"),
            CredentialSource::Environment => {
                f.write_str("`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from the environment")
            }
            CredentialSource::Profile { name, file } => {
                write!(f, "profile `{name}` in {}", file.display())
            }
        }
    }
}

/// An access key pair, optionally with a session token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id is not secret (it names the key, and appears in every signed request).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub source: CredentialSource,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
            source: CredentialSource::Explicit,
        }
    }

    /// Resolves the chain from the process environment.
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Resolves the chain with `var` standing in for the environment (`HOME` included).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                return Ok(Self {
                    access_key_id: id.trim().to_string(),
                    secret_access_key: Secret::new(secret.trim()),
                    session_token: var("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
                    source: CredentialSource::Environment,
                });
            }
            (Some(_), None) => {
                return Err(CredentialsError::HalfSet {
                    missing: "AWS_SECRET_ACCESS_KEY",
                });
            }
            (None, Some(_)) => {
                return Err(CredentialsError::HalfSet {
                    missing: "AWS_ACCESS_KEY_ID",
                });
            }
            (None, None) => {}
        }

        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        let home = var("HOME").map(PathBuf::from);
        let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
        let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| in_home(".aws/credentials"));
        let config_file = var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| in_home(".aws/config"));

        let mut tried = Vec::new();
        // The credentials file names sections `[NAME]`; the config file `[profile NAME]`, except
        // for `[default]`.
        let candidates = [
            (credentials_file, profile.clone()),
            (
                config_file,
                if profile == "default" {
                    profile.clone()
                } else {
                    format!("profile {profile}")
                },
            ),
        ];
        for (file, section) in candidates {
            let Some(file) = file else { continue };
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tried.push(file.display().to_string());
                    continue;
                }
                Err(source) => return Err(CredentialsError::Unreadable { file, source }),
            };
            tried.push(file.display().to_string());
            let Some(keys) = ini_section(&text, &section) else {
                continue;
            };
            let get = |k: &str| {
                keys.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty())
            };
            return match (get("aws_access_key_id"), get("aws_secret_access_key")) {
                (Some(id), Some(secret)) => Ok(Self {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: get("aws_session_token").map(Secret::new),
                    source: CredentialSource::Profile {
                        name: profile,
                        file,
                    },
                }),
                _ => Err(CredentialsError::ProfileIncomplete { profile, file }),
            };
        }
        Err(CredentialsError::NotFound {
            profile,
            tried: tried.join(", "),
        })
    }
}

/// The `key = value` pairs of section `[name]` of an INI file (AWS shared-file syntax: `#` and
/// `;` comment lines, keys case-insensitive), or `None` when the section is absent.
fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut in_section = false;
    let mut found = None::<Vec<(String, String)>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = header.split_whitespace().collect::<Vec<_>>().join(" ") == name;
            if in_section && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if in_section
            && let Some((k, v)) = line.split_once('=')
            && let Some(keys) = found.as_mut()
        {
            keys.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    found
}

/// Why no credentials could be found.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CredentialsError {
    #[error("no AWS credentials: profile `{profile}` was not found (looked in: {tried})")]
    #[diagnostic(
        code(cfxm::aws::no_credentials),
        help(
            "set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or add the profile to \
             ~/.aws/credentials (`aws configure`), or choose another one with `AWS_PROFILE`"
        )
    )]
    NotFound { profile: String, tried: String },
    #[error("`{missing}` is not set, but the other half of the AWS key pair is")]
    #[diagnostic(
        code(cfxm::aws::half_set),
        help(
            "set both `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or neither to use a profile"
        )
    )]
    HalfSet { missing: &'static str },
    #[error("AWS profile `{profile}` in {} lacks `aws_access_key_id` or `aws_secret_access_key`", file.display())]
    #[diagnostic(
        code(cfxm::aws::profile_incomplete),
        help("add both keys to the profile, or choose another one with `AWS_PROFILE`")
    )]
    ProfileIncomplete { profile: String, file: PathBuf },
    #[error("cannot read {}", file.display())]
    #[diagnostic(code(cfxm::aws::unreadable), help("check the file's permissions"))]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_environment_comes_first() {
        let c = Credentials::from_lookup(lookup(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AWS_PROFILE", "ignored"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIAENV");
        assert_eq!(c.secret_access_key.expose(), "env-secret");
        assert_eq!(c.session_token.as_ref().unwrap().expose(), "tok");
        assert_eq!(c.source, CredentialSource::Environment);
    }

    #[test]
    fn half_a_key_pair_is_an_error_not_a_fallback() {
        let e = Credentials::from_lookup(lookup(&[("AWS_ACCESS_KEY_ID", "AKIA")])).unwrap_err();
        assert!(
            e.to_string().contains("`AWS_SECRET_ACCESS_KEY` is not set"),
            "{e}"
        );
    }

    #[test]
    fn profiles_come_from_the_shared_credentials_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = def\n\n\
             [work]\n; another comment\nAWS_ACCESS_KEY_ID=AKIAWORK\naws_secret_access_key= work-secret \n\
             aws_session_token = wtok\n",
        )
        .unwrap();
        let h = home.path().to_str().unwrap();
        let d = Credentials::from_lookup(lookup(&[("HOME", h)])).unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.expose()),
            ("AKIADEF", "def")
        );
        let w = Credentials::from_lookup(lookup(&[("HOME", h), ("AWS_PROFILE", "work")])).unwrap();
        assert_eq!(w.access_key_id, "AKIAWORK");
        assert_eq!(w.secret_access_key.expose(), "work-secret");
        assert_eq!(w.session_token.unwrap().expose(), "wtok");
        assert!(matches!(w.source, CredentialSource::Profile { ref name, .. } if name == "work"));
    }

    #[test]
    fn the_config_file_uses_profile_prefixed_sections() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[profile lab]\nregion = us-west-2\naws_access_key_id = AKIALAB\naws_secret_access_key = lab\n",
        )
        .unwrap();
        let c = Credentials::from_lookup(lookup(&[
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("absent").to_str().unwrap(),
            ),
            ("AWS_PROFILE", "lab"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIALAB");
    }

    #[test]
    fn a_missing_profile_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id=a\naws_secret_access_key=b\n",
        )
        .unwrap();
        let e = Credentials::from_lookup(lookup(&[
            ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
            ("AWS_PROFILE", "nope"),
        ]))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("profile `nope` was not found"), "{text}");
        assert!(text.contains(file.to_str().unwrap()), "{text}");
    }

    #[test]
    fn an_incomplete_profile_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, "[default]\naws_access_key_id=a\n").unwrap();
        let e = Credentials::from_lookup(lookup(&[(
            "AWS_SHARED_CREDENTIALS_FILE",
            file.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(
            matches!(e, CredentialsError::ProfileIncomplete { .. }),
            "{e}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::new("AKIA", Secret::new("very-secret"));
        let shown = format!("{c:?} {} {}", c.secret_access_key, c.source);
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("***"));
    }
}
