//! A minimal RLP encoder: enough to give transactions and block headers their real encoded sizes
//! and hashes (a Conflux hash is keccak256 of the object's RLP).
//!
//! Encoding only; devnodes talk to each other in their own framing (`wire`), never in RLP.

/// Appends an RLP header for a `len`-byte payload: `short_base + len` below 56 bytes, else
/// `long_base` + the length of the big-endian length, then that length.
fn push_header(out: &mut Vec<u8>, len: usize, short_base: u8, long_base: u8) {
    if len < 56 {
        out.push(short_base + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(long_base + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// Appends `bytes` as an RLP string.
pub fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        push_header(out, bytes.len(), 0x80, 0xb7);
        out.extend_from_slice(bytes);
    }
}

/// Appends an unsigned integer as an RLP string (big-endian, no leading zeros; 0 is empty).
pub fn uint(out: &mut Vec<u8>, value: u128) {
    let be = value.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    bytes(out, &be[skip..]);
}

/// Appends a 256-bit unsigned integer given big-endian, as `uint` does.
pub fn uint_be(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    bytes(out, &be[skip..]);
}

/// Appends a list whose items are already encoded back to back in `payload`.
pub fn list(out: &mut Vec<u8>, payload: &[u8]) {
    push_header(out, payload.len(), 0xc0, 0xf7);
    out.extend_from_slice(payload);
}

/// Wraps `payload` (encoded items) into a list and returns it.
pub fn into_list(payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    list(&mut out, &payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_yellow_paper_examples() {
        let mut out = Vec::new();
        bytes(&mut out, b"dog");
        assert_eq!(out, [0x83, b'd', b'o', b'g']);

        let mut items = Vec::new();
        bytes(&mut items, b"cat");
        bytes(&mut items, b"dog");
        assert_eq!(
            into_list(items),
            [0xc8, 0x83, b'c', b'a', b't', 0x83, b'd', b'o', b'g']
        );

        let mut out = Vec::new();
        uint(&mut out, 0);
        uint(&mut out, 15);
        uint(&mut out, 1024);
        assert_eq!(out, [0x80, 0x0f, 0x82, 0x04, 0x00]);

        let long = [b'a'; 56];
        let mut out = Vec::new();
        bytes(&mut out, &long);
        assert_eq!(&out[..2], &[0xb8, 56]);
        assert_eq!(into_list(vec![]), [0xc0]);
    }
}
