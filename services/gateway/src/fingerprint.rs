//! Stable, non-cryptographic fingerprints of bytes.
//!
//! Two things need a short value that never changes for the same input and
//! usually differs for different inputs: the cache-busting version of a static
//! asset (`/static/app.css?v=…`) and the colours of a film's fallback poster.
//! FNV-1a is tiny, has no dependency, and is stable across Rust releases
//! (unlike `std`'s `DefaultHasher`, which promises nothing).

/// The 64-bit FNV-1a hash of `bytes`.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
