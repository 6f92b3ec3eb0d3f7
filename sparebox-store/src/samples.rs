//! Agents' resource history: one sample of CPU and memory at a time, for charts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::AgentId;

use crate::{StoreError, StoreResult};

/// One point of an agent's resource history, as a heartbeat reported it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSample {
    /// The agent.
    pub agent: AgentId,
    /// When the report arrived (server clock).
    pub at: DateTime<Utc>,
    /// CPU in percent of one core (may exceed 100 on several cores).
    pub cpu_percent: Option<f64>,
    /// Working-set memory in MiB.
    pub ram_usage_mb: Option<u64>,
    /// Memory limit in MiB.
    pub ram_limit_mb: Option<u64>,
}

/// How [`crate::Store::record_agent_sample`] thins and prunes the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRetention {
    /// A sample less than this long after the agent's latest one is dropped.
    pub min_interval: chrono::Duration,
    /// Samples (of any agent) older than this before the new sample are deleted.
    pub keep_for: chrono::Duration,
}

impl Default for SampleRetention {
    /// One sample a minute, kept for 48 hours.
    fn default() -> Self {
        Self {
            min_interval: chrono::Duration::minutes(1),
            keep_for: chrono::Duration::hours(48),
        }
    }
}

/// A megabyte count as stored (`BIGINT`/`INTEGER`), refusing values beyond `i64`.
pub(crate) fn mb_column(column: &'static str, mb: Option<u64>) -> StoreResult<Option<i64>> {
    mb.map(|v| {
        i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{column} {v} is out of range")))
    })
    .transpose()
}

/// A stored megabyte count back as `u64`.
pub(crate) fn mb_value(column: &'static str, mb: Option<i64>) -> StoreResult<Option<u64>> {
    mb.map(|v| {
        u64::try_from(v).map_err(|_| StoreError::Corrupt {
            column,
            message: format!("negative size {v}"),
        })
    })
    .transpose()
}
