//! The fingerprint EC2 shows for an imported public key, computed locally, so the planner can
//! tell whether a key pair holds the spec's key (original-tool.md §1.3).
//!
//! EC2's algorithm depends on the key type (EC2 API reference, `KeyPairInfo.keyFingerprint`):
//! - RSA, imported: MD5 of the DER `SubjectPublicKeyInfo`, colon-separated hex (what
//!   `openssl pkey -pubin -outform DER | openssl md5 -c` prints; the original tool's way);
//! - ED25519: the base64 SHA-256 of the OpenSSH key blob, as OpenSSH ≥ 6.8 shows it.
//!
//! moto agrees for RSA but shows colon-hex SHA-256 of the DER key for ED25519, so the provider
//! compares keys by reading them back (`DescribeKeyPairs IncludePublicKey=true`) and running
//! them through this same function; the cloud's own string is only the fallback.

use base64::Engine as _;
use md5::Digest as _;

/// EC2's fingerprint of an OpenSSH public key line (`ssh-rsa AAAA… [comment]`); `None` for a
/// line that is not one, or a key type EC2 does not import (ECDSA, DSA).
pub fn key_fingerprint(public_key_line: &str) -> Option<String> {
    let mut parts = public_key_line.split_whitespace();
    let kind = parts.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(parts.next()?)
        .ok()?;
    match kind {
        "ssh-rsa" => {
            let der = rsa_spki(&blob)?;
            let digest = md5::Md5::digest(&der);
            Some(
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            )
        }
        "ssh-ed25519" => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(&blob);
            Some(base64::engine::general_purpose::STANDARD.encode(digest))
        }
        _ => None,
    }
}

/// The DER `SubjectPublicKeyInfo` of an OpenSSH RSA key blob (`string "ssh-rsa", mpint e,
/// mpint n`; RFC 4253 §6.6). SSH mpints are minimal two's-complement big-endian, which is DER's
/// INTEGER content as is.
fn rsa_spki(blob: &[u8]) -> Option<Vec<u8>> {
    let mut rest = blob;
    let mut field = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(value)
    };
    if field()? != b"ssh-rsa" {
        return None;
    }
    let e = field()?.to_vec();
    let n = field()?.to_vec();
    let rsa_public_key = der(0x30, &[der(0x02, &n), der(0x02, &e)].concat());
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1), NULL parameters.
    let algorithm = der(
        0x30,
        &[
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let bits = der(0x03, &[&[0u8][..], &rsa_public_key].concat());
    Some(der(0x30, &[algorithm, bits].concat()))
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_get_the_md5_of_their_der_public_key() {
        // `ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c`
        let line = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC0L9fWRQETvVv7/lBIOzsuc6EonPCWTAd1NvfqYdcRulebUxzYo+V507cM52yG+0uwGv2J0jj6My8g16VdIAxEW++jj0kksKn4Y39G4VJ6Mcy1Sn4/mt65OI4VMKvEPlfX35GtHX6190nKpwC4IUnIqyQdkgfHaKaYYuKNB7P7HQ== root@vm";
        assert_eq!(
            key_fingerprint(line).as_deref(),
            Some("35:0a:7d:ca:3e:2a:ee:e0:c2:c0:d6:b4:f2:3d:fb:25")
        );
    }

    #[test]
    fn ed25519_keys_get_the_openssh_sha256() {
        // `ssh-keygen -lf k.pub` shows `SHA256:voq9…nCI` (without the padding).
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChI3YfmGrty57Hea29mYU2jrAZEwj4JWzB0CP5kzabT cfxm-test";
        assert_eq!(
            key_fingerprint(line).as_deref(),
            Some("voq9QrqmFOzMH9nAP/S6b3I+EnNv5ppoOG4SaeSGnCI=")
        );
    }

    #[test]
    fn other_lines_have_none() {
        assert_eq!(key_fingerprint("ecdsa-sha2-nistp256 AAAAE2VjZHNh"), None);
        assert_eq!(key_fingerprint("ssh-rsa !!!"), None);
        assert_eq!(key_fingerprint(""), None);
        // A blob that claims RSA but is cut short.
        assert_eq!(key_fingerprint("ssh-rsa AAAAB3NzaC1yc2EAAAAD"), None);
    }

    #[test]
    fn long_der_lengths_use_the_long_form() {
        assert_eq!(der(0x04, &[7; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[7; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }
}
