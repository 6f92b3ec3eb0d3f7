//! Secrets at rest and in transit.
//!
//! | module | what it owns |
//! |---|---|
//! | [`at_rest`] | [`Keyring`]: AES-256-GCM with key ids, so the server's key can rotate |
//! | [`bundle`] | [`SessionKey`] and [`SignedBundle`]: a deploy bundle whose secrets are sealed under a one-time key and whose fields are signed and time-limited |
//! | [`replay`] | [`ReplayGuard`]: remembers which commands' bundles were already accepted |
//!
//! Everything here uses well-kept RustCrypto crates (`aes-gcm`, `hkdf`, `hmac`, `sha2`)
//! and the operating system's random numbers; nothing is home-made except the byte
//! layouts, which each module documents.
//!
//! # What this does not protect against
//!
//! The host daemon has to hand the secrets to the container as environment variables.
//! Whoever is root on the host can read them there: `docker inspect` shows a
//! container's environment, and the engine keeps it in its state directory. Sealing
//! protects secrets in the database, on the wire and against a bundle being replayed,
//! moved to another agent or altered; it does not hide them from the host's owner.
//!
//! Keys and decrypted secrets are zeroed when dropped. HMAC's internal state
//! (`hmac` 0.12) cannot be zeroed from outside and lives only for one call.

pub mod at_rest;
pub mod bundle;
mod canonical;
pub mod replay;

pub use at_rest::{AtRestError, EncryptionKey, KeyId, Keyring};
pub use bundle::{
    BundleDraft, BundleError, BundleFile, BundleSignature, SealedSecrets, SessionKey, SignedBundle,
    VerifiedBundle,
};
pub use replay::{ReplayError, ReplayGuard};
