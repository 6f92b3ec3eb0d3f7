//! The rows a [`crate::Store`] reads and writes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sparebox_core::{
    AgentId, AgentState, CommandId, CommandKind, CommandStatus, DeployStage, HostId, Tier,
};
use sparebox_protocol::{
    AgentStatusReport, CommandParams, HostHardware, IsolationMode, WorkspaceFile,
};
use uuid::Uuid;

/// Identifies an account: a signed-up user (or a script acting for one) that owns hosts,
/// agents, API tokens and sessions.
pub type AccountId = Uuid;

/// What an account may do. An account holds any set of roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Registers hosts and manages them.
    HostOwner,
    /// Creates agents on hosts and commands them.
    Deployer,
    /// Reads everything. Granted only by the server operator, never chosen at sign-up.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::HostOwner, Role::Deployer, Role::Admin];

    /// The snake_case name used in the API and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::HostOwner => "host_owner",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new account with its sign-in details.
#[derive(Clone)]
pub struct NewAccount {
    /// Its id, chosen by the caller.
    pub id: AccountId,
    /// Unique sign-in email, normalised by the caller (the store compares it exactly).
    pub email: String,
    /// Display name (need not be unique).
    pub name: String,
    /// The password hash in PHC string format (never the password itself).
    pub password_hash: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"[REDACTED]")
            .field("roles", &self.roles)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A stored account. Its password hash is not part of it (see [`AccountCredentials`]), so
/// the record can be shown and logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    /// Its id.
    pub id: AccountId,
    /// Its sign-in email; `None` for accounts created before sign-up existed, which can
    /// only use their API tokens.
    pub email: Option<String>,
    /// Its display name.
    pub name: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl AccountRecord {
    /// Whether the account holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// An account with its password hash, for signing in.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountCredentials {
    /// The account.
    pub account: AccountRecord,
    /// The password hash in PHC string format; `None` when it has no password.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("account", &self.account)
            .field("password_hash", &"[REDACTED]")
            .finish()
    }
}

/// Identifies a personal API token.
pub type ApiTokenId = Uuid;

/// A new personal API token.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    /// Its id, chosen by the caller.
    pub id: ApiTokenId,
    /// The account it authenticates.
    pub account: AccountId,
    /// The owner's name for it.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// The token's first characters, for recognising it in lists.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A stored personal API token (without its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenRecord {
    /// Its id.
    pub id: ApiTokenId,
    /// The account it authenticates.
    #[serde(skip)]
    pub account: AccountId,
    /// The owner's name for it.
    pub name: String,
    /// The token's first characters.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A new browser session.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// SHA-256 of the random session id kept in the cookie.
    pub id_hash: Vec<u8>,
    /// The signed-in account.
    pub account: AccountId,
    /// SHA-256 of the session's CSRF token.
    pub csrf_hash: Vec<u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A stored, unexpired session with its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The signed-in account.
    pub account: AccountRecord,
    /// SHA-256 of the session's CSRF token.
    pub csrf_hash: Vec<u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A host owner's offer: which tiers, at what price, how many agents at most, where.
///
/// The store enforces `offered` and `max_agents` when it places an agent
/// ([`crate::Store::create_agent`]); prices and region are kept for browsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSettings {
    /// The tiers deployers may choose on this host. Empty pauses new agents.
    pub offered: BTreeSet<Tier>,
    /// Price per offered tier in cents per month.
    pub prices: BTreeMap<Tier, u32>,
    /// The most agents the host runs at once, whatever the hardware allows.
    pub max_agents: Option<u32>,
    /// A short free-text region, such as `eu-west`.
    pub region: Option<String>,
}

impl Default for HostSettings {
    /// Every tier, no prices, no cap, no region: what a newly registered host offers.
    fn default() -> Self {
        Self {
            offered: Tier::ALL.into_iter().collect(),
            prices: BTreeMap::new(),
            max_agents: None,
            region: None,
        }
    }
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
    /// The owner's offer.
    pub settings: HostSettings,
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
    /// New pinned image (after a successful upgrade).
    pub image: Option<String>,
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
    /// What it needs beyond its kind, delivered to the daemon with it.
    pub params: Option<CommandParams>,
    /// For an upgrade: the image the agent moves to (the agent's record keeps its current
    /// image until the upgrade succeeds).
    pub image: Option<String>,
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
    /// What it needs beyond its kind.
    pub params: Option<CommandParams>,
    /// For an upgrade: the image the agent moves to.
    pub image: Option<String>,
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
    /// An upgrade to a new image was handed to the host.
    UpgradeStarted,
    /// Upgraded: running and healthy on the new image.
    Upgraded,
    /// An upgrade failed and the agent went back to its previous image.
    UpgradeRolledBack,
    /// A backup of the agent's state was taken and stored.
    BackedUp,
    /// The agent's state was replaced by a backup.
    Restored,
    /// The agent is being moved to another host.
    MoveStarted,
    /// The agent was moved to another host and runs there.
    Moved,
    /// Moving the agent to another host failed.
    MoveFailed,
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
            AgentEventKind::UpgradeStarted => "upgrade_started",
            AgentEventKind::Upgraded => "upgraded",
            AgentEventKind::UpgradeRolledBack => "upgrade_rolled_back",
            AgentEventKind::BackedUp => "backed_up",
            AgentEventKind::Restored => "restored",
            AgentEventKind::MoveStarted => "move_started",
            AgentEventKind::Moved => "moved",
            AgentEventKind::MoveFailed => "move_failed",
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
            UpgradeStarted,
            Upgraded,
            UpgradeRolledBack,
            BackedUp,
            Restored,
            MoveStarted,
            Moved,
            MoveFailed,
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
