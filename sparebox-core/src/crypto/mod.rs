//! Secrets at rest and in transit.
//!
//! | module | what it owns |
//! |---|---|
//! | [`at_rest`] | [`Keyring`]: AES-256-GCM with key ids, so the server's key can rotate |
//! | [`backup`] | [`seal_backup`] / [`open_backup`]: an agent's backup archive sealed under a command's session key |
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
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use chrono::{Duration, Utc};
//! use sparebox_core::crypto::{BundleDraft, ReplayGuard, SessionKey};
//! use sparebox_core::{AgentId, CommandId, Secret, Tier};
//!
//! // On the server, per deploy command:
//! let key = SessionKey::generate();
//! let (agent, command, now) = (AgentId::new_random(), CommandId::new_random(), Utc::now());
//! let bundle = BundleDraft {
//!     agent_id: agent,
//!     command_id: command,
//!     tier: Tier::Standard,
//!     image: "sparebox/openclaw:2026.9.6".to_owned(),
//!     openclaw_config: serde_json::json!({}),
//!     workspace_files: Vec::new(),
//!     secrets: BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new("sk-..."))]),
//!     issued_at: now,
//!     expires_at: now + Duration::minutes(5),
//! }
//! .seal(&key)?;
//!
//! // On the daemon, with the key that came with the command:
//! let mut guard = ReplayGuard::default();
//! let verified = bundle.verify(&key, agent, command, now)?;
//! guard.admit(verified.command_id, verified.expires_at, now)?;
//! assert!(guard.admit(command, verified.expires_at, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Keys and decrypted secrets are zeroed when dropped. HMAC's internal state
//! (`hmac` 0.12) cannot be zeroed from outside and lives only for one call.

pub mod at_rest;
pub mod backup;
pub mod bundle;
mod canonical;
pub mod replay;
mod session_key;

pub use at_rest::{AtRestError, EncryptionKey, KeyId, Keyring};
pub use backup::{open_backup, seal_backup, BackupSealError, BACKUP_OVERHEAD};
pub use bundle::{
    BundleDraft, BundleError, BundleFile, BundleSignature, SealedSecrets, SessionKey, SignedBundle,
    VerifiedBundle,
};
pub use replay::{ReplayError, ReplayGuard};
