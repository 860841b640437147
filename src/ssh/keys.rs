//! Private keys: read once per file, shared by every host that uses it.
//!
//! Formats: OpenSSH (`BEGIN OPENSSH PRIVATE KEY`), PEM PKCS#1 (`BEGIN RSA PRIVATE KEY`, what the
//! clouds hand out as `ssh-key.pem`) and PEM PKCS#8 (`BEGIN PRIVATE KEY`); algorithms RSA and
//! ed25519 (ECDSA also loads). Decoding is russh's (`russh::keys`), so no direct `ssh-key`
//! dependency pins a second copy of its pre-release crates. Encrypted keys are refused with a
//! clear message: cfxm runs unattended and has nobody to ask for a passphrase.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::keys::PrivateKey;

/// Keys by path. 10,000 hosts usually share one key file; it is parsed once.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<PathBuf, Arc<PrivateKey>>>,
}

impl KeyCache {
    /// The key at `path`, or a one-line reason it cannot be used.
    pub(crate) fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        if let Some(k) = self.keys.lock().expect("key cache lock").get(path) {
            return Ok(k.clone());
        }
        let key = Arc::new(load(path)?);
        self.keys
            .lock()
            .expect("key cache lock")
            .insert(path.to_path_buf(), key.clone());
        Ok(key)
    }
}

fn load(path: &Path) -> Result<PrivateKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let encrypted_pem = text
        .lines()
        .any(|l| l == "-----BEGIN ENCRYPTED PRIVATE KEY-----" || l == "Proc-Type: 4,ENCRYPTED");
    if encrypted_pem {
        return Err("the key is encrypted with a passphrase".into());
    }
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => Ok(k),
        // OpenSSH-format keys say whether they are encrypted only inside the blob.
        Err(russh::keys::Error::KeyIsEncrypted) => {
            Err("the key is encrypted with a passphrase".into())
        }
        Err(e) => Err(format!("not a private key cfxm can read ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = KeyCache::default()
            .load(&dir.path().join("nope"))
            .unwrap_err();
        assert!(missing.contains("No such file"), "{missing}");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello").unwrap();
        let err = KeyCache::default().load(&junk).unwrap_err();
        assert!(err.starts_with("not a private key"), "{err}");
    }
}
