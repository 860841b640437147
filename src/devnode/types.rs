//! The node's fixed-size values (hashes, addresses, node ids) and keccak256.
//!
//! `Debug` and `Display` print what the Conflux node prints for the same values: ethereum-types'
//! `H256`/`H160` `Debug` is `0x` plus every lowercase hex digit, and the log lines the analysis
//! parses embed exactly that text (conflux-node.md §3.3).

use std::fmt;
use std::str::FromStr;

use sha3::{Digest, Keccak256};

/// keccak256 of `data`, the hash of every Conflux object.
pub fn keccak256(data: &[u8]) -> H256 {
    H256(Keccak256::digest(data).into())
}

/// keccak256 over several pieces, without concatenating them first.
pub fn keccak256_parts(parts: &[&[u8]]) -> H256 {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    H256(h.finalize().into())
}

fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    f.write_str("0x")?;
    for b in bytes {
        f.write_char(DIGITS[(b >> 4) as usize] as char)?;
        f.write_char(DIGITS[(b & 0xf) as usize] as char)?;
    }
    Ok(())
}

/// Parses `0x`-prefixed (or bare) hex of exactly `N` bytes.
fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The value as bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self([0u8; $len])
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                parse_hex::<$len>(s).map(Self).ok_or_else(|| {
                    format!("expected `0x` and {} hex digits, got `{s}`", 2 * $len)
                })
            }
        }
    };
}

fixed_bytes!(
    /// A 32-byte hash (block, transaction, root).
    H256,
    32
);
fixed_bytes!(
    /// A 20-byte account address.
    H160,
    20
);
fixed_bytes!(
    /// A node id: the 64-byte uncompressed secp256k1 public key without the `04` prefix, as
    /// `test_getNodeId`, `test_addNode` and `test_getPeerInfo` show it.
    NodeId,
    64
);

/// `H256` of the well-known empty values, as the node uses them in headers.
pub mod consts {
    use super::H256;

    /// keccak256 of the empty string (`MERKLE_NULL_NODE`, `KECCAK_EMPTY`).
    pub const KECCAK_EMPTY: H256 = H256([
        0xc5, 0xd2, 0x46, 0x01, 0x86, 0xf7, 0x23, 0x3c, 0x92, 0x7e, 0x7d, 0xb2, 0xdc, 0xc7, 0x03,
        0xc0, 0xe5, 0x00, 0xb6, 0x53, 0xca, 0x82, 0x27, 0x3b, 0x7b, 0xfa, 0xd8, 0x04, 0x5d, 0x85,
        0xa4, 0x70,
    ]);
    /// keccak256 of the RLP of an empty list (`KECCAK_EMPTY_LIST_RLP`).
    pub const KECCAK_EMPTY_LIST_RLP: H256 = H256([
        0x1d, 0xcc, 0x4d, 0xe8, 0xde, 0xc7, 0x5d, 0x7a, 0xab, 0x85, 0xb5, 0x67, 0xb6, 0xcc, 0xd4,
        0x1a, 0xd3, 0x12, 0x45, 0x1b, 0x94, 0x8a, 0x74, 0x13, 0xf0, 0xa1, 0x42, 0xfd, 0x40, 0xd4,
        0x93, 0x47,
    ]);
    /// keccak256 of an empty 256-byte logs bloom (`KECCAK_EMPTY_BLOOM`).
    pub const KECCAK_EMPTY_BLOOM: H256 = H256([
        0xd3, 0x97, 0xb3, 0xb0, 0x43, 0xd8, 0x7f, 0xcd, 0x6f, 0xad, 0x12, 0x91, 0xff, 0x0b, 0xfd,
        0x16, 0x40, 0x1c, 0x27, 0x48, 0x96, 0xd8, 0xc6, 0x3a, 0x92, 0x37, 0x27, 0xf0, 0x77, 0xb8,
        0xe0, 0xb5,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_full_lowercase_hex() {
        let h = H256([0xab; 32]);
        assert_eq!(format!("{h:?}"), format!("0x{}", "ab".repeat(32)));
        assert_eq!(
            format!("{:?}", H160::default()),
            format!("0x{}", "0".repeat(40))
        );
    }

    #[test]
    fn well_known_hashes_match_keccak() {
        assert_eq!(keccak256(b""), consts::KECCAK_EMPTY);
        assert_eq!(keccak256(&[0xc0]), consts::KECCAK_EMPTY_LIST_RLP);
        assert_eq!(keccak256(&[0u8; 256]), consts::KECCAK_EMPTY_BLOOM);
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_lengths() {
        let id = NodeId([7; 64]);
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        assert!("0x1234".parse::<NodeId>().is_err());
        assert!(format!("0x{}", "zz".repeat(32)).parse::<H256>().is_err());
    }
}
