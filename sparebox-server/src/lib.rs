//! The Sparebox platform: accounts with roles, sessions and API tokens; hosts, agents, the
//! command queue and deploy bundles.
//!
//! The platform logic lives in [`Platform`] and works without HTTP, over any
//! [`sparebox_store::Store`]. The `http` feature (on by default) adds an axum router in
//! [`http`] and the `sparebox-server` reference binary.
//!
//! | cargo feature | default | what it adds |
//! |---|---|---|
//! | `http` | yes | the axum API under `/api/v1` and the binary |
//! | `sqlite` | yes | the embedded SQLite store |
//! | `postgres` | no | the PostgreSQL store, for several replicas |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sparebox_core::Secret;
//! use sparebox_server::{Keyring, EncryptionKey, Platform, PlatformConfig, SignUp};
//! use sparebox_store::sqlite::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open("sparebox.db").await?);
//! let keyring = Keyring::new(EncryptionKey::from_hex(&std::env::var("SPAREBOX_ENCRYPTION_KEY")?)?);
//! let platform = Platform::new(store, PlatformConfig::default(), keyring);
//! let (account, _token, token_value) = platform
//!     .sign_up(SignUp {
//!         email: "alice@example.com".into(),
//!         password: Secret::new("a long passphrase"),
//!         roles: vec!["deployer".into()],
//!         name: None,
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup_files;
mod billing;
mod clock;
mod config;
mod error;
mod passwords;
mod platform;
mod secrets;
mod tokens;
mod validate;
mod views;

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
mod web;

pub use billing::{CheckoutSession, MAX_WEBHOOK_BYTES, WEBHOOK_TOLERANCE_SECS};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BackupConfig, PlatformConfig, StripeConfig, DEFAULT_AGENT_IMAGE, DEFAULT_MAX_BACKUP_BYTES,
    DEFAULT_STRIPE_API_BASE,
};
pub use error::{ErrorCode, PlatformError};
pub use platform::{
    check_image_reference, ImageReferenceError, LogsRequest, LogsView, RolloutReport,
    RolloutRequest, DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_TAIL_LINES,
};
pub use platform::{
    AgentRequest, BackupList, ConfigUpdate, HeartbeatOutcome, HostFilter, HostSettingsRequest,
    Platform, RotationReport, SessionStart, SignIn, SignUp, SweepSummary, WebhookResult,
    BUSY_RETRY_AFTER_SECS, MAX_BACKUP_INTERVAL_HOURS,
};
pub use secrets::ALLOWED_SECRET_NAMES;
pub use sparebox_core::crypto::{EncryptionKey, Keyring};
pub use sparebox_store::{AccountRecord, ApiTokenRecord, Role};
pub use sparebox_store::{SubscriptionRecord, SubscriptionStatus};
pub use views::{AgentView, HostView, HostedAgent, OwnedHostView};
