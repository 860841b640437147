//! Aliyun credentials: where they come from (first found wins) and how the secret is kept out
//! of output, logs and state.
//!
//! Order (issue 3): the spec's `credentials`; `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`; the
//! original tool's `ALI_ACCESS_KEY_ID`/`ALI_ACCESS_KEY_SECRET`; the aliyun CLI's
//! `~/.aliyun/config.json` current profile (AK mode only). A source that gives half a pair is an
//! error rather than skipped, because silently falling through to another account is worse.

use std::fmt;
use std::path::{Path, PathBuf};

/// Credentials are held in the one [`Secret`] type: redacted in Debug and Display, refused by
/// every serializer, so a secret cannot reach output, logs or state by accident.
pub use crate::state::Secret;

/// Where a credential pair was found, for messages ("using the key from ALI_ACCESS_KEY_ID").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Given directly by code (tests, the local cloud).
    Explicit,
    /// The spec's `cloud.aliyun.credentials`.
    Spec,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_SECRET`.
    AlibabaCloudEnv,
    /// `ALI_ACCESS_KEY_ID` / `ALI_ACCESS_KEY_SECRET` (the original tool's `.env`).
    AliEnv,
    /// A profile of the aliyun CLI's config file.
    CliProfile { path: PathBuf, profile: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Explicit => f.write_str("explicit credentials"),
            CredentialSource::Spec => f.write_str("the spec's `cloud.aliyun.credentials`"),
            CredentialSource::AlibabaCloudEnv => f.write_str("`ALIBABA_CLOUD_ACCESS_KEY_ID`"),
            CredentialSource::AliEnv => f.write_str("`ALI_ACCESS_KEY_ID`"),
            CredentialSource::CliProfile { path, profile } => {
                write!(f, "profile `{profile}` of `{}`", path.display())
            }
        }
    }
}

/// An access key pair.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub source: CredentialSource,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: Secret::new(access_key_secret),
            source: CredentialSource::Explicit,
        }
    }
}

/// Why no usable credentials were found.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CredentialsError {
    #[error("no Aliyun credentials found")]
    #[diagnostic(help(
        "export `ALIBABA_CLOUD_ACCESS_KEY_ID` and `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (preferred), \
         or run `aliyun configure`, or set `cloud.aliyun.credentials` in the spec"
    ))]
    Missing,
    #[error("{source_name} gives an access key id but no secret, or a secret but no id")]
    #[diagnostic(help("set both halves of the key pair in the same place"))]
    HalfPair { source_name: String },
    #[error("cannot read the aliyun CLI config `{}`: {reason}", path.display())]
    #[diagnostic(help(
        "fix or remove the file, or export `ALIBABA_CLOUD_ACCESS_KEY_ID` and `_SECRET`"
    ))]
    CliConfig { path: PathBuf, reason: String },
    #[error("profile `{profile}` of `{}` uses mode `{mode}`; cfxm reads only `AK` profiles", path.display())]
    #[diagnostic(help(
        "switch to an AK profile (`aliyun configure --mode AK`) or export \
         `ALIBABA_CLOUD_ACCESS_KEY_ID` and `ALIBABA_CLOUD_ACCESS_KEY_SECRET`"
    ))]
    UnsupportedMode {
        path: PathBuf,
        profile: String,
        mode: String,
    },
}

/// Finds credentials in the documented order. `spec` is the spec's pair (either half may be
/// absent), `env` reads an environment variable, `home` is the home directory (for
/// `~/.aliyun/config.json`).
pub fn resolve(
    spec: (Option<&str>, Option<&str>),
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Credentials, CredentialsError> {
    let pair = |id: Option<String>, secret: Option<String>, source: CredentialSource| {
        let id = id.filter(|s| !s.is_empty());
        let secret = secret.filter(|s| !s.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some(Credentials {
                access_key_id: id,
                access_key_secret: Secret::new(secret),
                source,
            })),
            (None, None) => Ok(None),
            _ => Err(CredentialsError::HalfPair {
                source_name: source.to_string(),
            }),
        }
    };
    let candidates = [
        (
            spec.0.map(str::to_string),
            spec.1.map(str::to_string),
            CredentialSource::Spec,
        ),
        (
            env("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            CredentialSource::AlibabaCloudEnv,
        ),
        (
            env("ALI_ACCESS_KEY_ID"),
            env("ALI_ACCESS_KEY_SECRET"),
            CredentialSource::AliEnv,
        ),
    ];
    for (id, secret, source) in candidates {
        if let Some(c) = pair(id, secret, source)? {
            return Ok(c);
        }
    }
    if let Some(home) = home {
        let path = home.join(".aliyun").join("config.json");
        if path.exists() {
            return cli_profile(&path);
        }
    }
    Err(CredentialsError::Missing)
}

/// Resolves with the process environment and `$HOME`.
pub fn resolve_from_env(
    spec: (Option<&str>, Option<&str>),
) -> Result<Credentials, CredentialsError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    resolve(spec, &|k| std::env::var(k).ok(), home.as_deref())
}

/// The current profile of the aliyun CLI's config (`{"current": .., "profiles": [..]}`).
fn cli_profile(path: &Path) -> Result<Credentials, CredentialsError> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        current: String,
        #[serde(default)]
        profiles: Vec<Profile>,
    }
    #[derive(serde::Deserialize)]
    struct Profile {
        name: String,
        #[serde(default)]
        mode: String,
        #[serde(default)]
        access_key_id: String,
        #[serde(default)]
        access_key_secret: String,
    }
    let fail = |reason: String| CredentialsError::CliConfig {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let config: Config = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let wanted = if config.current.is_empty() {
        "default"
    } else {
        config.current.as_str()
    };
    let profile = config
        .profiles
        .into_iter()
        .find(|p| p.name == wanted)
        .ok_or_else(|| {
            fail(format!(
                "it has no profile named `{wanted}` (its `current`)"
            ))
        })?;
    if !profile.mode.is_empty() && profile.mode != "AK" {
        return Err(CredentialsError::UnsupportedMode {
            path: path.to_path_buf(),
            profile: profile.name,
            mode: profile.mode,
        });
    }
    let source = CredentialSource::CliProfile {
        path: path.to_path_buf(),
        profile: profile.name.clone(),
    };
    if profile.access_key_id.is_empty() || profile.access_key_secret.is_empty() {
        return Err(CredentialsError::HalfPair {
            source_name: source.to_string(),
        });
    }
    Ok(Credentials {
        access_key_id: profile.access_key_id,
        access_key_secret: Secret::new(profile.access_key_secret),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn secret_never_prints() {
        let c = Credentials::new("id", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.access_key_secret.to_string(), "***");
        assert_eq!(c.access_key_secret.expose(), "hunter2");
    }

    #[test]
    fn first_source_wins_in_the_documented_order() {
        let all = env(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "a"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "as"),
            ("ALI_ACCESS_KEY_ID", "b"),
            ("ALI_ACCESS_KEY_SECRET", "bs"),
        ]);
        let c = resolve((Some("s"), Some("ss")), &all, None).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.source),
            ("s", CredentialSource::Spec)
        );
        let c = resolve((None, None), &all, None).unwrap();
        assert_eq!(c.source, CredentialSource::AlibabaCloudEnv);
        let ali = env(&[("ALI_ACCESS_KEY_ID", "b"), ("ALI_ACCESS_KEY_SECRET", "bs")]);
        let c = resolve((None, None), &ali, None).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.source),
            ("b", CredentialSource::AliEnv)
        );
        assert!(matches!(
            resolve((None, None), &env(&[]), None),
            Err(CredentialsError::Missing)
        ));
    }

    #[test]
    fn half_a_pair_is_an_error_not_a_fall_through() {
        let e = resolve(
            (None, None),
            &env(&[
                ("ALI_ACCESS_KEY_ID", "b"),
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "x"),
            ]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{e}");
        assert!(matches!(
            resolve((Some("id"), None), &env(&[]), None),
            Err(CredentialsError::HalfPair { .. })
        ));
    }

    #[test]
    fn cli_config_current_profile_in_ak_mode() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aliyun")).unwrap();
        let file = home.path().join(".aliyun/config.json");
        std::fs::write(
            &file,
            r#"{"current":"work","profiles":[
                {"name":"default","mode":"AK","access_key_id":"d","access_key_secret":"ds"},
                {"name":"work","mode":"AK","access_key_id":"w","access_key_secret":"ws","region_id":"cn-hangzhou"}]}"#,
        )
        .unwrap();
        let c = resolve((None, None), &env(&[]), Some(home.path())).unwrap();
        assert_eq!(c.access_key_id, "w");
        assert_eq!(c.access_key_secret.expose(), "ws");
        std::fs::write(
            &file,
            r#"{"current":"sso","profiles":[{"name":"sso","mode":"CloudSSO"}]}"#,
        )
        .unwrap();
        let e = resolve((None, None), &env(&[]), Some(home.path())).unwrap_err();
        assert!(matches!(e, CredentialsError::UnsupportedMode { .. }), "{e}");
        std::fs::write(&file, "{not json").unwrap();
        let e = resolve((None, None), &env(&[]), Some(home.path())).unwrap_err();
        assert!(matches!(e, CredentialsError::CliConfig { .. }), "{e}");
    }
}
