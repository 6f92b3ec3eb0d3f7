//! The rows a [`crate::Store`] reads and writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sparebox_core::{
    AgentId, AgentState, CommandId, CommandKind, CommandStatus, DeployStage, HostId, Tier,
};
use sparebox_protocol::{AgentStatusReport, HostHardware, IsolationMode, WorkspaceFile};
use uuid::Uuid;

/// Identifies an account (a person or a script that owns hosts and agents).
pub type AccountId = Uuid;

/// A new account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// Unique display name.
    pub name: String,
    /// SHA-256 of the account's API token.
    pub token_hash: Vec<u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A stored account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    /// Its id.
    pub id: AccountId,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A new host.
#[derive(Clone, Debug)]
pub struct NewHost {
    /// The owning account.
    pub owner: AccountId,
    /// The owner's name for the machine.
    pub name: String,
    /// SHA-256 of the host key.
    pub key_hash: Vec<u8>,
    /// The key's first characters, for recognising it in lists.
    pub key_prefix: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// A stored host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRecord {
    /// Its id.
    pub id: HostId,
    /// The owning account.
    pub owner: AccountId,
    /// The owner's name for the machine.
    pub name: String,
    /// The key's first characters.
    pub key_prefix: String,
    /// Hardware from the latest heartbeat.
    pub hardware: Option<HostHardware>,
    /// Isolation mode from the latest heartbeat.
    pub isolation: Option<IsolationMode>,
    /// The daemon's version from the latest heartbeat.
    pub daemon_version: Option<String>,
    /// When the latest heartbeat arrived (server clock).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// What a heartbeat says about its host.
#[derive(Clone, Debug)]
pub struct HostHeartbeat {
    /// Measured hardware.
    pub hardware: HostHardware,
    /// Isolation mode.
    pub isolation: IsolationMode,
    /// Daemon version.
    pub daemon_version: String,
}

/// A new agent.
#[derive(Clone, Debug)]
pub struct NewAgent {
    /// Its id, chosen by the caller.
    pub id: AgentId,
    /// The host it runs on.
    pub host: HostId,
    /// The deployer's account.
    pub owner: AccountId,
    /// Display name.
    pub name: String,
    /// Resource tier.
    pub tier: Tier,
    /// Container image, chosen by the platform.
    pub image: String,
    /// The deployer's `openclaw.json` as JSON.
    pub openclaw_config: serde_json::Value,
    /// Workspace files.
    pub workspace_files: Vec<WorkspaceFile>,
    /// The agent's secrets, sealed by the server (never plain text).
    pub sealed_secrets: Vec<u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A stored agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRecord {
    /// Its id.
    pub id: AgentId,
    /// The host it runs on.
    pub host: HostId,
    /// The deployer's account.
    pub owner: AccountId,
    /// Display name.
    pub name: String,
    /// Resource tier.
    pub tier: Tier,
    /// Container image.
    pub image: String,
    /// The deployer's `openclaw.json`.
    pub openclaw_config: serde_json::Value,
    /// Workspace files.
    pub workspace_files: Vec<WorkspaceFile>,
    /// Sealed secrets.
    pub sealed_secrets: Vec<u8>,
    /// State as the platform sees it.
    pub state: AgentState,
    /// Current deploy stage while deploying.
    pub deploy_stage: Option<DeployStage>,
    /// Last error, when `state` is `error`.
    pub error: Option<String>,
    /// The daemon's latest report on it.
    pub last_report: Option<AgentStatusReport>,
    /// When the latest report arrived (server clock).
    pub last_report_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Fields of an agent that change over its life. `None` leaves a field as it is, except
/// where noted.
#[derive(Clone, Debug, Default)]
pub struct AgentUpdate {
    /// New state.
    pub state: Option<AgentState>,
    /// New deploy stage; `Some(None)` clears it.
    pub deploy_stage: Option<Option<DeployStage>>,
    /// New error; `Some(None)` clears it.
    pub error: Option<Option<String>>,
    /// A new status report, with the server time it arrived.
    pub report: Option<(AgentStatusReport, DateTime<Utc>)>,
    /// New configuration.
    pub openclaw_config: Option<serde_json::Value>,
    /// New workspace files.
    pub workspace_files: Option<Vec<WorkspaceFile>>,
    /// New sealed secrets.
    pub sealed_secrets: Option<Vec<u8>>,
}

/// A command to queue.
#[derive(Clone, Debug)]
pub struct NewCommand {
    /// Its id, chosen by the caller.
    pub id: CommandId,
    /// The agent.
    pub agent: AgentId,
    /// The agent's host.
    pub host: HostId,
    /// What to do.
    pub kind: CommandKind,
    /// When it was queued (server clock).
    pub created_at: DateTime<Utc>,
}

/// A stored command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRecord {
    /// Its id.
    pub id: CommandId,
    /// The agent.
    pub agent: AgentId,
    /// The agent's host.
    pub host: HostId,
    /// What to do.
    #[serde(rename = "type")]
    pub kind: CommandKind,
    /// Where it is in its life.
    pub status: CommandStatus,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was handed to the daemon.
    pub sent_at: Option<DateTime<Utc>>,
    /// When its ack (or nack) arrived.
    pub acked_at: Option<DateTime<Utc>>,
    /// The daemon's error, for failed commands.
    pub error: Option<String>,
    /// True when an ack arrived after the command had expired.
    pub late_ack: bool,
}

/// What applying an ack did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The command moved to acked or failed.
    Applied(CommandRecord),
    /// The command was already acked or failed; nothing changed.
    Duplicate(CommandRecord),
    /// The command had expired; the ack was recorded as late, the status kept.
    Late(CommandRecord),
    /// No command with that id is addressed to this host.
    Unknown,
}

/// The kinds of event in an agent's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEventKind {
    /// Deployed and running for the first time.
    Deployed,
    /// Started.
    Started,
    /// Stopped on request.
    Stopped,
    /// Exited on its own.
    Crashed,
    /// Killed for exceeding its memory limit.
    OomKilled,
    /// Restarted.
    Restarted,
    /// Configuration applied.
    ConfigUpdated,
    /// Removed from its host.
    Undeployed,
    /// A command failed.
    CommandFailed,
}

impl AgentEventKind {
    /// The snake_case storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentEventKind::Deployed => "deployed",
            AgentEventKind::Started => "started",
            AgentEventKind::Stopped => "stopped",
            AgentEventKind::Crashed => "crashed",
            AgentEventKind::OomKilled => "oom_killed",
            AgentEventKind::Restarted => "restarted",
            AgentEventKind::ConfigUpdated => "config_updated",
            AgentEventKind::Undeployed => "undeployed",
            AgentEventKind::CommandFailed => "command_failed",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        use AgentEventKind::*;
        [
            Deployed,
            Started,
            Stopped,
            Crashed,
            OomKilled,
            Restarted,
            ConfigUpdated,
            Undeployed,
            CommandFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An event to append.
#[derive(Clone, Debug)]
pub struct NewAgentEvent {
    /// The agent.
    pub agent: AgentId,
    /// What happened.
    pub kind: AgentEventKind,
    /// Details for people.
    pub message: String,
    /// When (server clock).
    pub at: DateTime<Utc>,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentEventRecord {
    /// The agent.
    pub agent: AgentId,
    /// What happened.
    pub kind: AgentEventKind,
    /// Details for people.
    pub message: String,
    /// When (server clock).
    pub at: DateTime<Utc>,
}
