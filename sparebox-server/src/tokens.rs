//! Bearer tokens for accounts and hosts: random, shown once, stored as SHA-256 hashes.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of account API tokens.
pub const ACCOUNT_TOKEN_PREFIX: &str = "sbx_acct_";

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

/// The first characters of a token, kept to recognise it in lists.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(HOST_KEY_PREFIX.len() + 6).collect()
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
    }
}
