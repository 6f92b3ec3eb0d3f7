//! Password hashing: argon2id with a random salt per password, in PHC string format.
//!
//! Hashing is deliberately slow (the `argon2` crate's default cost: 19 MiB, two passes),
//! so it runs on tokio's blocking pool, never on the async executor.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sparebox_core::Secret;

use crate::error::PlatformError;

/// Hashes `password` with a fresh salt.
///
/// # Errors
///
/// Internal when hashing fails (it does not for valid lengths) or the blocking pool is
/// gone.
pub async fn hash(password: Secret) -> Result<String, PlatformError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|err| internal(&format!("password hashing task: {err}")))?
}

/// Whether `password` matches `stored`. Without a stored hash (no such account, or an
/// account without a password), a dummy hash is checked instead and the answer is `false`,
/// so both cases take about as long as a wrong password.
pub async fn verify(password: Secret, stored: Option<String>) -> bool {
    let checked = tokio::task::spawn_blocking(move || {
        let (hash, real) = match &stored {
            Some(hash) => (hash.as_str(), true),
            None => (dummy_hash(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            tracing::error!("stored password hash is not a PHC string");
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        matches && real
    })
    .await;
    checked.unwrap_or(false)
}

fn hash_now(password: &Secret) -> Result<String, PlatformError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| internal(&format!("password hashing: {err}")))
}

/// A hash of a random password, computed once, to verify against when there is no real
/// hash.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = Secret::new(crate::tokens::generate(""));
        hash_now(&password).unwrap_or_default()
    })
}

fn internal(detail: &str) -> PlatformError {
    tracing::error!(error = detail, "password hashing failed");
    PlatformError::new(crate::ErrorCode::Internal, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify_only_the_right_password() {
        let first = hash(Secret::new("correct horse battery")).await.unwrap();
        let second = hash(Secret::new("correct horse battery")).await.unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");

        assert!(verify(Secret::new("correct horse battery"), Some(first.clone())).await);
        assert!(!verify(Secret::new("wrong horse battery"), Some(first)).await);
        assert!(!verify(Secret::new("correct horse battery"), None).await);
        assert!(!verify(Secret::new("x"), Some("not a hash".into())).await);
    }
}
