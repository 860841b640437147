//! The node's secp256k1 identity: the persistent network key, the node id derived from it, and
//! the recoverable signatures that prove it (`test_getNodeId`, the peer handshake).
//!
//! The harness recovers a node's id from `test_getNodeId(challenge)`: the node signs
//! keccak256(challenge) and returns r ‖ s ‖ v with v ∈ {0, 1}; the client adds 27 and recovers the
//! public key (conflux-node.md §2.3). [`recover_node_id`] is that client-side step, for the
//! experiment stages and the tests.

use std::io;
use std::path::{Path, PathBuf};

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use rand::RngExt;

use super::types::{H160, H256, NodeId, keccak256};

/// A recoverable ECDSA signature as the node returns it: r (32) ‖ s (32) ‖ v (1, 0 or 1).
pub type RecoverableSignature = [u8; 65];

/// The node's network secret key.
pub struct NodeKey {
    key: SigningKey,
    id: NodeId,
}

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{path}` does not hold a secp256k1 secret as 64 hex digits")]
    Malformed { path: PathBuf },
    #[error("`net_key` is not a secp256k1 secret as 64 hex digits")]
    BadNetKey,
}

impl NodeKey {
    /// The key from a 32-byte secret, or `None` when the secret is not a valid scalar.
    pub fn from_secret(secret: &[u8; 32]) -> Option<Self> {
        let key = SigningKey::from_slice(secret).ok()?;
        let id = node_id_of(key.verifying_key());
        Some(Self { key, id })
    }

    /// The key from hex (`net_key` in the config, or the key file's content).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let secret: H256 = hex.trim().parse().ok()?;
        Self::from_secret(&secret.0)
    }

    /// Loads the key from `path`, or creates a random one there (mode 0600) on first start, as the
    /// node does with `<data_dir>/net_config/key`.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text).ok_or_else(|| KeyError::Malformed {
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err)?;
                }
                let hex = H256(key.key.to_bytes().into()).to_string();
                // Written to a temporary file and renamed, so a crash never leaves half a key.
                let tmp = path.with_extension("tmp");
                write_private(&tmp, &hex.as_bytes()[2..]).map_err(io_err)?;
                std::fs::rename(&tmp, path).map_err(io_err)?;
                Ok(key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        loop {
            let secret: [u8; 32] = rng.random();
            if let Some(key) = Self::from_secret(&secret) {
                return key;
            }
        }
    }

    /// The node id this key proves.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The node's account address (Conflux user addresses start with the nibble 1).
    pub fn address(&self) -> H160 {
        address_of(self.key.verifying_key())
    }

    /// Signs keccak256(`message`) recoverably, as `test_getNodeId` and the handshake do.
    pub fn sign(&self, message: &[u8]) -> RecoverableSignature {
        self.sign_prehash(&keccak256(message))
    }

    /// Signs a 32-byte digest recoverably.
    pub fn sign_prehash(&self, digest: &H256) -> RecoverableSignature {
        // The harness only understands v = 0 or 1 (the y parity). The "x reduced" ids 2 and 3
        // occur with probability ~2^-127 per signature; folding them keeps the shape exact.
        let (sig, recid) = self.key.sign_prehash_recoverable(&digest.0);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte() & 1;
        out
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn node_id_of(key: &VerifyingKey) -> NodeId {
    let point = key.to_sec1_point(false);
    let mut id = [0u8; 64];
    id.copy_from_slice(&point.as_bytes()[1..65]);
    NodeId(id)
}

fn address_of(key: &VerifyingKey) -> H160 {
    let id = node_id_of(key);
    let hash = keccak256(&id.0);
    let mut addr = [0u8; 20];
    addr.copy_from_slice(&hash.0[12..]);
    addr[0] = (addr[0] & 0x0f) | 0x10;
    H160(addr)
}

/// The account address of a secp256k1 secret (a genesis account), or `None` if invalid.
pub fn address_of_secret(secret: &[u8; 32]) -> Option<H160> {
    SigningKey::from_slice(secret)
        .ok()
        .map(|k| address_of(k.verifying_key()))
}

/// Recovers the signer's node id from a signature over keccak256(`message`), exactly as the
/// harness does with `test_getNodeId` (v may be given as 0/1 or 27/28).
pub fn recover_node_id(message: &[u8], signature: &[u8]) -> Option<NodeId> {
    recover_prehash(&keccak256(message), signature)
}

/// Recovers the signer's node id from a signature over a 32-byte digest.
pub fn recover_prehash(digest: &H256, signature: &[u8]) -> Option<NodeId> {
    if signature.len() != 65 {
        return None;
    }
    let sig = Signature::from_slice(&signature[..64]).ok()?;
    let v = match signature[64] {
        v @ 0..=3 => v,
        v @ 27..=30 => v - 27,
        _ => return None,
    };
    let recid = RecoveryId::from_byte(v)?;
    let key = VerifyingKey::recover_from_prehash(&digest.0, &sig, recid).ok()?;
    Some(node_id_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_recover_to_the_node_id() {
        let key = NodeKey::generate();
        for challenge in [&[0x01u8][..], &[0xde, 0xad, 0xbe, 0xef], b""] {
            let sig = key.sign(challenge);
            assert!(sig[64] <= 1, "v must be 0 or 1");
            assert_eq!(recover_node_id(challenge, &sig), Some(key.node_id()));
            let mut eth = sig;
            eth[64] += 27;
            assert_eq!(recover_node_id(challenge, &eth), Some(key.node_id()));
            assert_ne!(recover_node_id(b"other", &sig), Some(key.node_id()));
        }
    }

    #[test]
    fn known_secret_gives_known_node_id_and_address() {
        // secret = 1: the public key is the generator point G.
        let mut secret = [0u8; 32];
        secret[31] = 1;
        let key = NodeKey::from_secret(&secret).unwrap();
        assert_eq!(
            key.node_id().to_string(),
            "0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
             483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
        );
        // Ethereum's address for secret 1 is 0x7e5f4552091a69125d5dfcb7b8c2659029395bdf; Conflux
        // replaces the first nibble with the user-account type 1.
        assert_eq!(
            key.address().to_string(),
            "0x1e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }

    #[test]
    fn key_file_persists_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net_config/key");
        let a = NodeKey::load_or_create(&path).unwrap();
        let b = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            NodeKey::load_or_create(&path),
            Err(KeyError::Malformed { .. })
        ));
    }
}
