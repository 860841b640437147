//! The spec's SSH key, as the key pair the planner imports: the public half of the private key
//! file, as an OpenSSH public key line. The private key is read here, in memory, and never
//! leaves this function; only the public line reaches plans and journals.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

/// The spec's key cannot be used.
#[derive(Debug, Error, Diagnostic)]
pub enum KeyError {
    #[error("cannot read the SSH key `{}`: {source}", path.display())]
    #[diagnostic(
        code(cfxm::plan::key_unreadable),
        help(
            "the spec's `ssh_key` is relative to the spec file; create a key with `ssh-keygen -t rsa -b 4096 -m PEM -f keys/ssh-key.pem`"
        )
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SSH key `{}` is encrypted with a passphrase", path.display())]
    #[diagnostic(
        code(cfxm::plan::key_encrypted),
        help("cfxm runs unattended; use a key without a passphrase for test hosts")
    )]
    Encrypted { path: PathBuf },
    #[error("`{}` is not a private key cfxm can read: {reason}", path.display())]
    #[diagnostic(
        code(cfxm::plan::key_invalid),
        help("use an OpenSSH or PEM private key (RSA, ECDSA or ed25519)")
    )]
    Invalid { path: PathBuf, reason: String },
}

/// The OpenSSH public key line (`ssh-rsa AAAA...`, no comment) of the private key at `path`.
pub fn public_key_line(path: &Path) -> Result<String, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let encrypted_pem = text
        .lines()
        .any(|l| l == "-----BEGIN ENCRYPTED PRIVATE KEY-----" || l == "Proc-Type: 4,ENCRYPTED");
    if encrypted_pem {
        return Err(KeyError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    let key = match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => k,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            return Err(KeyError::Encrypted {
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(KeyError::Invalid {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let line = key
        .public_key()
        .to_openssh()
        .map_err(|e| KeyError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    // Algorithm and blob; the comment (often `user@host`) is not the key.
    Ok(line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    #[test]
    fn the_public_line_of_a_private_key_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let path = dir.path().join("k");
        std::fs::write(&path, key.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
        let line = public_key_line(&path).unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(line.split_whitespace().count(), 2);
        assert!(crate::provider::aliyun::key_fingerprint(&line).is_some());

        assert!(matches!(
            public_key_line(&dir.path().join("missing")),
            Err(KeyError::Read { .. })
        ));
        std::fs::write(dir.path().join("junk"), "nope").unwrap();
        assert!(matches!(
            public_key_line(&dir.path().join("junk")),
            Err(KeyError::Invalid { .. })
        ));
    }
}
