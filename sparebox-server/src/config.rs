//! Settings of the platform logic.

use std::time::Duration;

use sparebox_core::{Reserve, Secret};

/// The OpenClaw image agents run unless the operator chooses another. A pinned version:
/// a moving tag would change agents under their deployers' feet.
pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/openclaw/openclaw:2026.9.6";

/// How the platform behaves. Every field has a production default.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// The image every agent runs (chosen by the platform, never by a deployer).
    pub agent_image: String,
    /// What every host keeps for itself before offering slots.
    pub reserve: Reserve,
    /// How often daemons should heartbeat.
    pub heartbeat_interval: Duration,
    /// The longest a heartbeat may be held open waiting for a command.
    pub max_heartbeat_wait: Duration,
    /// How many heartbeats are processed at once (a held heartbeat waiting for a command
    /// does not count). More wait their turn, in arrival order.
    pub heartbeat_concurrency: usize,
    /// The longest a heartbeat waits for its turn before it is refused with
    /// [`crate::ErrorCode::Unavailable`] (HTTP 503 with `Retry-After`). Refusing early
    /// keeps an overloaded server answering the heartbeats it does take promptly, instead of
    /// queueing connections until it runs out of them.
    pub heartbeat_queue_timeout: Duration,
    /// Commands not acknowledged within this window expire. A delivered one expires then
    /// only if its host has heartbeated since without acknowledging it; otherwise (its
    /// host has not been able to reach the server since) after
    /// [`PlatformConfig::delivered_command_expiry`].
    pub command_expiry: Duration,
    /// The longest a delivered command waits for its host's acknowledgement while the host
    /// is not heard from (a server outage, a host gone for good).
    pub delivered_command_expiry: Duration,
    /// How long a deploy bundle stays valid after it is served (at most an hour: a daemon
    /// refuses longer-lived bundles).
    pub bundle_ttl: Duration,
    /// How long a browser session lasts from sign-in. The expiry is fixed, not sliding:
    /// using a session does not extend it, so a stolen cookie stops working on schedule.
    pub session_ttl: Duration,
    /// Whether the session cookie carries the `Secure` attribute (browsers then send it
    /// over HTTPS only). Turn it on whenever the server is reached over HTTPS.
    pub secure_cookies: bool,
    /// Stripe billing. `None` (the default) is free mode: agents are created without
    /// payment. With it, deployers pay through Stripe Checkout before an agent exists.
    pub stripe: Option<StripeConfig>,
    /// Backups of agents' state: where they are kept, how large and how many.
    pub backups: BackupConfig,
    /// How long an agent's host must have been offline before its deployer may move the
    /// agent to another host (15 minutes by default).
    pub move_grace: Duration,
    /// How long logs a daemon uploaded for a `logs` command are kept (sealed) before the
    /// sweep deletes them. One hour by default.
    pub logs_retention: Duration,
    /// Whether a rollout may name a moving image reference (the `latest` tag, or no tag
    /// at all). Off by default: a moving tag would change what an agent runs without a
    /// rollout, and an upgrade could not be told from a restart. Turn it on for local
    /// development only.
    pub allow_moving_image_tags: bool,
}

/// The default cap on one backup archive: 256 MiB.
pub const DEFAULT_MAX_BACKUP_BYTES: u64 = 256 * 1024 * 1024;

/// Where and how the platform keeps backups of agents' state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupConfig {
    /// The directory backup files are written to, one subdirectory per agent. `None` (the
    /// default for an embedded [`crate::Platform`]) turns backups off: requesting one is
    /// refused. The reference binary uses `<data-dir>/backups`.
    pub dir: Option<std::path::PathBuf>,
    /// The largest archive a host may upload, in bytes; a larger upload is refused with
    /// 413 and the backup command fails.
    pub max_bytes: u64,
    /// Backups kept per agent; the oldest are deleted when a new one is stored.
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: DEFAULT_MAX_BACKUP_BYTES,
            keep: 7,
        }
    }
}

/// Stripe's API, used unless [`StripeConfig::api_base`] says otherwise.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// How the platform talks to Stripe. The keys print as `[REDACTED]`.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// The secret API key (`sk_live_...` or `sk_test_...`).
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_...`).
    pub webhook_secret: Secret,
    /// The API's base URL, [`DEFAULT_STRIPE_API_BASE`] in production.
    pub api_base: String,
    /// Where Stripe sends the deployer after paying.
    pub success_url: String,
    /// Where Stripe sends the deployer after giving up.
    pub cancel_url: String,
    /// The ISO currency code of host prices, lowercase (`usd`).
    pub currency: String,
}

impl StripeConfig {
    /// Settings for the real Stripe API with `secret_key` and `webhook_secret`, prices in
    /// US dollars, and the given redirect URLs.
    pub fn new(
        secret_key: Secret,
        webhook_secret: Secret,
        success_url: impl Into<String>,
        cancel_url: impl Into<String>,
    ) -> Self {
        Self {
            secret_key,
            webhook_secret,
            api_base: DEFAULT_STRIPE_API_BASE.to_owned(),
            success_url: success_url.into(),
            cancel_url: cancel_url.into(),
            currency: "usd".to_owned(),
        }
    }
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            agent_image: DEFAULT_AGENT_IMAGE.to_owned(),
            reserve: Reserve::default(),
            heartbeat_interval: Duration::from_secs(60),
            max_heartbeat_wait: Duration::from_secs(30),
            heartbeat_concurrency: 64,
            heartbeat_queue_timeout: Duration::from_secs(2),
            command_expiry: Duration::from_secs(5 * 60),
            delivered_command_expiry: Duration::from_secs(24 * 60 * 60),
            bundle_ttl: Duration::from_secs(10 * 60),
            session_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            secure_cookies: false,
            stripe: None,
            backups: BackupConfig::default(),
            move_grace: Duration::from_secs(15 * 60),
            logs_retention: Duration::from_secs(60 * 60),
            allow_moving_image_tags: false,
        }
    }
}
