//! What every handler shares: the platform, per-host rate limits and metrics.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sparebox_core::HostId;

use super::metrics::Metrics;
use crate::{ErrorCode, Platform, PlatformError};

/// Deploy bundles a host may fetch per minute.
pub const DEPLOY_CONFIG_PER_MINUTE: u32 = 10;
/// Sign-in attempts per email address per minute, against password guessing. Someone who
/// knows an address can use them up and hold its owner off for up to a minute; API tokens
/// keep working meanwhile.
pub const SIGN_INS_PER_MINUTE: u32 = 10;
/// Heartbeats a host may send per minute (a busy daemon sends about one a second).
pub const HEARTBEATS_PER_MINUTE: u32 = 240;

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    /// The platform logic.
    pub platform: Platform,
    /// Deploy-config requests per host.
    deploy_config: Arc<DefaultKeyedRateLimiter<HostId>>,
    /// Heartbeats per host.
    heartbeats: Arc<DefaultKeyedRateLimiter<HostId>>,
    /// Sign-in attempts per normalised email.
    sign_ins: Arc<DefaultKeyedRateLimiter<String>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for `platform` with the default limits.
    pub fn new(platform: Platform) -> Self {
        let per_minute =
            |n: u32| Quota::per_minute(NonZeroU32::new(n).expect("limits are positive"));
        Self {
            platform,
            deploy_config: Arc::new(RateLimiter::keyed(per_minute(DEPLOY_CONFIG_PER_MINUTE))),
            heartbeats: Arc::new(RateLimiter::keyed(per_minute(HEARTBEATS_PER_MINUTE))),
            sign_ins: Arc::new(RateLimiter::keyed(per_minute(SIGN_INS_PER_MINUTE))),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Charges one deploy-config request to `host`.
    pub fn check_deploy_config(&self, host: HostId) -> Result<(), PlatformError> {
        check(&self.deploy_config, host, "deploy-config requests")
    }

    /// Charges one heartbeat to `host`.
    pub fn check_heartbeat(&self, host: HostId) -> Result<(), PlatformError> {
        check(&self.heartbeats, host, "heartbeats")
    }

    /// Charges one sign-in attempt to `email` (trimmed and lowercased here).
    pub fn check_sign_in(&self, email: &str) -> Result<(), PlatformError> {
        let key = email.trim().to_lowercase();
        self.sign_ins.check_key(&key).map_err(|not_until| {
            let seconds = retry_seconds(not_until.wait_time_from(DefaultClock::default().now()));
            PlatformError::new(
                ErrorCode::RateLimited,
                format!("too many sign-in attempts for this email: retry in {seconds} s"),
            )
            .with_retry_after(seconds)
        })
    }

    /// Drops limiter entries of hosts and emails that have been quiet, so memory stays
    /// bounded.
    pub fn prune_limiters(&self) {
        self.deploy_config.retain_recent();
        self.heartbeats.retain_recent();
        self.sign_ins.retain_recent();
    }
}

fn check(
    limiter: &DefaultKeyedRateLimiter<HostId>,
    host: HostId,
    what: &str,
) -> Result<(), PlatformError> {
    limiter.check_key(&host).map_err(|not_until| {
        let seconds = retry_seconds(not_until.wait_time_from(DefaultClock::default().now()));
        PlatformError::new(
            ErrorCode::RateLimited,
            format!("too many {what} from host {host}: retry in {seconds} s"),
        )
        .with_retry_after(seconds)
    })
}

/// Whole seconds to wait, at least one.
fn retry_seconds(wait: Duration) -> u64 {
    wait.max(Duration::from_secs(1)).as_secs_f64().ceil() as u64
}
