//! Logs a daemon uploaded for a `logs` command.

use chrono::{DateTime, Utc};
use sparebox_core::CommandId;

/// One `logs` command's output as kept by the platform: sealed under its keyring (never
/// stored in plain text) and deleted after `expires_at`. `Debug` shows sizes, not content.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandLogs {
    /// The `logs` command.
    pub command: CommandId,
    /// The redacted log text, sealed by the caller.
    pub sealed: Vec<u8>,
    /// Length of the text before sealing, in bytes.
    pub bytes: u64,
    /// Whether the daemon cut older lines to stay within the command's size cap.
    pub truncated: bool,
    /// When the daemon uploaded it (server clock).
    pub uploaded_at: DateTime<Utc>,
    /// When it is deleted.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for CommandLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandLogs")
            .field("command", &self.command)
            .field("sealed_bytes", &self.sealed.len())
            .field("bytes", &self.bytes)
            .field("truncated", &self.truncated)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A byte count as stored (`BIGINT`/`INTEGER`), refusing values beyond `i64`.
pub(crate) fn bytes_column(bytes: u64) -> crate::StoreResult<i64> {
    i64::try_from(bytes).map_err(|_| {
        crate::StoreError::Invalid(format!("command_logs.bytes: {bytes} is too large"))
    })
}
