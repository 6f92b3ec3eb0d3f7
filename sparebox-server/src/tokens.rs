//! Bearer tokens for accounts and hosts, session ids and CSRF tokens: random, shown once,
//! stored as SHA-256 hashes.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of personal API tokens.
pub const API_TOKEN_PREFIX: &str = "sbx_pat_";

/// Prefix of host keys.
pub const HOST_KEY_PREFIX: &str = "sbx_host_";

/// A new random token with `prefix`: 32 random bytes, hex-encoded.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The hash under which a token is stored and looked up. Tokens carry 256 random bits, so
/// a plain SHA-256 is enough (no password stretching needed), and lookups by hash do not
/// compare secrets byte by byte.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Random characters kept after a token's prefix to recognise it in lists.
const SHOWN_CHARS: usize = 6;

/// The first characters of a token (its `prefix` and a few random ones), kept to recognise
/// it in lists.
pub fn display_prefix(token: &str, prefix: &str) -> String {
    token.chars().take(prefix.len() + SHOWN_CHARS).collect()
}

/// Whether `presented` hashes to `expected`, compared in constant time.
pub fn matches_hash(presented: &str, expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    hash(presented).ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let a = generate(HOST_KEY_PREFIX);
        let b = generate(HOST_KEY_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(HOST_KEY_PREFIX));
        assert_eq!(a.len(), HOST_KEY_PREFIX.len() + 64);
        assert_eq!(hash(&a), hash(&a.clone()));
        assert_ne!(hash(&a), hash(&b));
        assert!(matches_hash(&a, &hash(&a)));
        assert!(!matches_hash(&a, &hash(&b)));
        assert_eq!(display_prefix(&a, HOST_KEY_PREFIX), a[..15]);
    }
}
