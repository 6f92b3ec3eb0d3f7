//! The Sparebox platform: accounts, hosts, agents, the command queue and deploy bundles.
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
//! use sparebox_server::{MasterKey, Platform, PlatformConfig};
//! use sparebox_store::sqlite::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open("sparebox.db").await?);
//! let platform = Platform::new(store, PlatformConfig::default(), MasterKey::generate());
//! let (account, token) = platform.create_account("alice").await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod error;
mod platform;
mod secrets;
mod tokens;
mod validate;
mod views;

#[cfg(feature = "http")]
pub mod http;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PlatformConfig, DEFAULT_AGENT_IMAGE};
pub use error::{ErrorCode, PlatformError};
pub use platform::{AgentRequest, ConfigUpdate, HeartbeatOutcome, Platform, SweepSummary};
pub use secrets::{MasterKey, ALLOWED_SECRET_NAMES};
pub use views::{AgentView, HostView};
