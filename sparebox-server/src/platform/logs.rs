//! Reading an agent's recent logs.
//!
//! The deployer asks with [`Platform::request_logs`], which queues a `logs` command with
//! its [`CommandParams::Logs`]. The host daemon reads the container's output, replaces
//! every secret value the agent runs with by `[redacted]`, cuts it to the size asked for,
//! and uploads it to [`Platform::receive_logs`] before acking. The platform seals the text
//! with its keyring, bound to the agent (never stored in plain text), and keeps it for
//! [`PlatformConfig::logs_retention`] (one hour by default); the sweep deletes it after.
//! [`Platform::agent_logs`] shows the command's status and, once uploaded, the text.
//!
//! Logs belong to the deployer: the host key can only upload them (only for a `logs`
//! command sent to that host, while it is `sent`), never read them back, and a host owner
//! sees nothing of them. Admins may read them.

use serde::{Deserialize, Serialize};
use sparebox_protocol::{CommandParams, MAX_LOG_BYTES};
use sparebox_store::CommandLogs;

use super::*;

/// Lines returned when a request names none.
pub const DEFAULT_LOG_TAIL_LINES: u32 = 500;

/// Bytes returned at most when a request names no cap: 256 KiB.
pub const DEFAULT_LOG_MAX_BYTES: u32 = 256 * 1024;

/// What a deployer asks for; every field is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsRequest {
    /// The last this many lines, 1 to 5000; [`DEFAULT_LOG_TAIL_LINES`] by default.
    #[serde(default)]
    pub tail_lines: Option<u32>,
    /// Only lines from the last this many seconds (1 to 604800); all by default.
    #[serde(default)]
    pub since_seconds: Option<u64>,
    /// At most this many bytes (newest kept), 1 to 1048576; [`DEFAULT_LOG_MAX_BYTES`] by
    /// default.
    #[serde(default)]
    pub max_bytes: Option<u32>,
}

/// A `logs` command as its reader sees it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsView {
    /// The command.
    pub command_id: CommandId,
    /// Where the command is (`pending`, `sent`, `acked`, `failed`, `expired`).
    pub status: CommandStatus,
    /// The daemon's error, when it failed.
    pub error: Option<String>,
    /// The redacted log text, once uploaded and until it expires.
    pub logs: Option<String>,
    /// Whether older lines were cut to stay within the size cap.
    pub truncated: bool,
    /// When the text is deleted.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Platform {
    /// Queues a `logs` command for an agent its owner controls.
    ///
    /// # Errors
    ///
    /// Bad request for parameters out of bounds; not found for someone else's agent;
    /// conflict for an agent with nothing on its host.
    pub async fn request_logs(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
        request: LogsRequest,
    ) -> Result<CommandRecord, PlatformError> {
        let params = CommandParams::logs(
            request.tail_lines.unwrap_or(DEFAULT_LOG_TAIL_LINES),
            request.since_seconds,
            request.max_bytes.unwrap_or(DEFAULT_LOG_MAX_BYTES),
        )
        .map_err(|err| PlatformError::bad_request(err.to_string()))?;
        let record = self.owned_agent(owner, agent).await?;
        if matches!(
            record.state,
            AgentState::PendingDeploy | AgentState::Undeploying | AgentState::Undeployed
        ) {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!(
                    "agent {agent} is {}: it has no logs on a host",
                    record.state
                ),
            ));
        }
        let command = self
            .enqueue(&record, CommandKind::Logs, Some(params))
            .await?;
        tracing::debug!(agent = %agent, command = %command.id, "logs requested");
        Ok(command)
    }

    /// A `logs` command of an agent and, once uploaded, its text, for the agent's owner or
    /// an admin.
    ///
    /// # Errors
    ///
    /// Not found when the reader may not see the agent or the command is not one of its
    /// `logs` commands; internal when the stored text cannot be opened.
    pub async fn agent_logs(
        &self,
        reader: &AccountRecord,
        agent: AgentId,
        command: CommandId,
    ) -> Result<LogsView, PlatformError> {
        self.readable_agent(reader, agent).await?;
        let record = match self.store.command(command).await? {
            Some(c) if c.agent == agent && c.kind == CommandKind::Logs => c,
            _ => return Err(PlatformError::not_found(format!("logs command {command}"))),
        };
        let now = self.clock.now();
        let stored = self
            .store
            .command_logs(command)
            .await?
            .filter(|logs| logs.expires_at > now);
        let text = stored
            .as_ref()
            .map(|logs| self.open_logs(agent, logs))
            .transpose()?;
        Ok(LogsView {
            command_id: command,
            status: record.status,
            error: record.error,
            logs: text,
            truncated: stored.as_ref().is_some_and(|l| l.truncated),
            expires_at: stored.map(|l| l.expires_at),
        })
    }

    /// Keeps the logs `host` uploaded for its `logs` command `command`, sealed.
    ///
    /// # Errors
    ///
    /// Not found unless `command` is a `logs` command sent to this host; conflict when it
    /// is no longer `sent`; bad request for text that is not UTF-8; payload too large for
    /// text over the command's `maxBytes`.
    pub async fn receive_logs(
        &self,
        host: &HostRecord,
        command: CommandId,
        text: &[u8],
        truncated: bool,
    ) -> Result<(), PlatformError> {
        let record = match self.store.command(command).await? {
            Some(c) if c.host == host.id && c.kind == CommandKind::Logs => c,
            _ => return Err(PlatformError::not_found(format!("logs command {command}"))),
        };
        if record.status != CommandStatus::Sent {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("command {command} is {}, not sent", record.status),
            ));
        }
        let cap = match record.params {
            Some(CommandParams::Logs { max_bytes, .. }) => max_bytes,
            _ => MAX_LOG_BYTES,
        };
        if text.len() > cap as usize {
            return Err(PlatformError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "logs of command {command}: {} bytes is over the command's cap of {cap}",
                    text.len()
                ),
            ));
        }
        std::str::from_utf8(text).map_err(|err| {
            PlatformError::bad_request(format!("logs of command {command}: not UTF-8: {err}"))
        })?;
        let sealed = self.keyring.seal(record.agent, text).map_err(|err| {
            tracing::error!(command = %command, error = %err, "sealing uploaded logs failed");
            PlatformError::new(ErrorCode::Internal, "the logs could not be encrypted")
        })?;
        let now = self.clock.now();
        self.store
            .put_command_logs(CommandLogs {
                command,
                sealed,
                bytes: text.len() as u64,
                truncated,
                uploaded_at: now,
                expires_at: now + chrono_duration(self.config.logs_retention),
            })
            .await?;
        tracing::debug!(command = %command, bytes = text.len(), "logs received");
        Ok(())
    }

    fn open_logs(&self, agent: AgentId, logs: &CommandLogs) -> Result<String, PlatformError> {
        let text = self.keyring.open(agent, &logs.sealed).map_err(|err| {
            tracing::error!(command = %logs.command, error = %err, "stored logs could not be opened");
            PlatformError::new(ErrorCode::Internal, "the stored logs could not be decrypted")
        })?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}
