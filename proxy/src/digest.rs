//! SHA-256 for the session token's stored hash, the audit chain, key ids and the banner's
//! CSP hash.
//!
//! ring's implementation (linked already, for TLS) picks the CPU's vector code at run time;
//! RustCrypto's `sha2` falls back to portable code on a CPU without the SHA extensions.
//! On such a machine ring hashed an audit record's ~480 canonical bytes in 1.6 µs against
//! 2.9 µs, and every forwarded request hashes its session token and its audit record.
//! The tests check every use against `sha2`, as an independent implementation.

use ring::digest::{Context, SHA256};

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// [`sha256`] as 64 lower-case hex digits.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hex = [0u8; 64];
    // 32 bytes are exactly 64 hex digits.
    let _ = hex::encode_to_slice(sha256(parts), &mut hex);
    String::from_utf8_lossy(&hex).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_digest_is_sha256_of_the_parts_joined_whatever_their_lengths() {
        // Lengths either side of SHA-256's 64-byte block and its 55-byte padding limit.
        for len in [0usize, 1, 55, 56, 63, 64, 65, 480, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let want = Sha256::digest(&data);
            assert_eq!(sha256(&[&data])[..], want[..], "length {len}");
            let (a, b) = data.split_at(len / 3);
            assert_eq!(sha256(&[a, b])[..], want[..], "length {len} in two parts");
            assert_eq!(sha256_hex(&[a, &[], b]), hex::encode(want), "length {len}");
        }
        assert_eq!(
            sha256_hex(&[b"abc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
