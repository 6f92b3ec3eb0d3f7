//! Backups of agents' state and the schedules that ask for them.
//!
//! The store keeps only metadata: the archive is a file the server writes and seals at
//! rest. A backup's id is the id of the `backup` command that produced it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::{AgentId, CommandId, HostId};

use crate::{StoreError, StoreResult};

/// One stored backup, as [`crate::Store::insert_backup`] records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// The backup's id: the id of the command that produced it.
    pub id: CommandId,
    /// The agent whose state it holds.
    pub agent: AgentId,
    /// The host it was taken on.
    pub host: HostId,
    /// Size of the (compressed, unsealed) archive in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the archive, lowercase hexadecimal.
    pub sha256: String,
    /// When the server stored it (server clock).
    pub created_at: DateTime<Utc>,
}

/// How many backups the store keeps per agent; older ones are deleted when a new one is
/// recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupRetention {
    /// Backups kept per agent, at least one.
    pub keep: u32,
}

impl Default for BackupRetention {
    /// Seven backups per agent.
    fn default() -> Self {
        Self { keep: 7 }
    }
}

/// A byte count as stored (`BIGINT`/`INTEGER`), refusing values beyond `i64`.
pub(crate) fn size_column(size: u64) -> StoreResult<i64> {
    i64::try_from(size)
        .map_err(|_| StoreError::Invalid(format!("backups.size_bytes {size} is out of range")))
}

/// A stored byte count, refusing a negative one.
pub(crate) fn size_value(size: i64) -> StoreResult<u64> {
    u64::try_from(size).map_err(|_| StoreError::Corrupt {
        column: "backups.size_bytes",
        message: format!("{size} is negative"),
    })
}

/// How many backups to keep, at least one.
pub(crate) fn keep_count(retention: BackupRetention) -> i64 {
    i64::from(retention.keep.max(1))
}
