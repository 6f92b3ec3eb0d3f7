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

    /// Drops limiter entries of hosts that have been quiet, so memory stays bounded.
    pub fn prune_limiters(&self) {
        self.deploy_config.retain_recent();
        self.heartbeats.retain_recent();
    }
}

fn check(
    limiter: &DefaultKeyedRateLimiter<HostId>,
    host: HostId,
    what: &str,
) -> Result<(), PlatformError> {
    limiter.check_key(&host).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.max(Duration::from_secs(1)).as_secs_f64().ceil() as u64;
        PlatformError::new(
            ErrorCode::RateLimited,
            format!("too many {what} from host {host}: retry in {seconds} s"),
        )
        .with_retry_after(seconds)
    })
}
