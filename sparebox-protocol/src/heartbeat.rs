//! Heartbeats, commands and acknowledgements.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sparebox_core::lifecycle::HostReport;
use sparebox_core::{AgentId, CommandId, CommandKind, DeployStage, Tier};

/// How a host isolates agents from each other and from itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// One Docker container per agent, with hard limits.
    Docker,
    /// One Podman container per agent, with hard limits.
    Podman,
    /// One OpenClaw profile (plain process) per agent: limited isolation.
    Profile,
    /// Nothing usable was found; the host cannot run agents.
    None,
}

impl IsolationMode {
    /// The lowercase wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            IsolationMode::Docker => "docker",
            IsolationMode::Podman => "podman",
            IsolationMode::Profile => "profile",
            IsolationMode::None => "none",
        }
    }
}

/// The host's hardware as the daemon measured it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostHardware {
    /// Total RAM in MiB.
    pub ram_mb: u64,
    /// Logical CPU cores.
    pub cpu_cores: u32,
    /// Disk available for agents, in GB.
    pub disk_gb: u64,
    /// Operating system name, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// GPU model when one was found; `null` when the host has none.
    #[serde(default)]
    pub gpu: Option<String>,
}

/// One heartbeat from a daemon. Unknown fields are ignored, so daemons newer than the
/// server can add optional fields without being refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The protocol version the daemon speaks; see [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The daemon's own version.
    pub daemon_version: String,
    /// The host's hardware.
    pub hardware: HostHardware,
    /// How this host isolates agents.
    pub isolation: IsolationMode,
    /// The state of every agent the daemon manages.
    #[serde(default)]
    pub agent_statuses: Vec<AgentStatusReport>,
    /// Results of commands, including ones already reported but not yet confirmed.
    #[serde(default)]
    pub command_acks: Vec<CommandAck>,
    /// When set, the server may hold the request up to this many seconds and answer as
    /// soon as a command for this host is queued.
    #[serde(default)]
    pub wait_seconds: Option<u32>,
    /// Lifecycle events the container engine reported since the last heartbeat the server
    /// answered successfully, oldest first. The daemon keeps each event until a heartbeat
    /// carrying it gets a success answer, so an event may arrive twice after a lost
    /// answer; `(agentId, kind, at)` identifies it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_events: Vec<AgentEventReport>,
    /// Free slots per tier as the daemon computes them from the measured hardware and the
    /// tiers of the agents it runs (with the default reserve and no host policy: the
    /// server applies the owner's offered tiers and cap on top). Absent from older
    /// daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<BTreeMap<Tier, u64>>,
}

/// One lifecycle event of an agent's container (or process), as the engine reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentEventReport {
    /// The agent.
    pub agent_id: AgentId,
    /// What happened.
    pub kind: AgentEventKind,
    /// When the engine says it happened (host clock).
    pub at: DateTime<Utc>,
    /// The exit code, for `died`, when the engine knows it.
    #[serde(default)]
    pub exit_code: Option<i64>,
}

/// What happened to an agent's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEventKind {
    /// Started on request (deploy, start, restart).
    Started,
    /// Its main process ended, on request or on its own, and not by an out-of-memory kill.
    Died,
    /// Killed for exceeding its memory limit (the engine's `OOMKilled` flag or `oom`
    /// event, never guessed from exit code 137).
    OomKilled,
    /// Started again by the engine's restart policy after dying on its own.
    Restarted,
}

/// What the daemon sees of one agent's container (or process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeStatus {
    /// A deploy or configuration update is in progress; see `deployStage`.
    Deploying,
    /// Running.
    Running,
    /// Stopped on purpose.
    Stopped,
    /// Exited on its own (crashed or killed) and not running.
    Exited,
    /// The daemon knows the agent but its container is gone.
    Missing,
    /// The last operation on it failed; see `error`.
    Error,
}

/// Whether the limits and hardening applied to an agent match its tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IsolationReport {
    /// True when every checked property matched.
    pub verified: bool,
    /// A line per property that did not match, e.g. `memory: 1073741824 != 2147483648`.
    #[serde(default)]
    pub mismatches: Vec<String>,
}

/// One agent's status and live metrics, as reported in a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatusReport {
    /// The agent.
    pub agent_id: AgentId,
    /// Its state on the host.
    pub status: RuntimeStatus,
    /// The deploy stage, while deploying.
    #[serde(default)]
    pub deploy_stage: Option<DeployStage>,
    /// The engine's container id (or the process id in profile mode).
    #[serde(default)]
    pub container_id: Option<String>,
    /// CPU use in percent of one core; may exceed 100 on multi-core tiers.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Working-set memory in MiB.
    #[serde(default)]
    pub ram_usage_mb: Option<u64>,
    /// The enforced memory limit in MiB.
    #[serde(default)]
    pub ram_limit_mb: Option<u64>,
    /// Seconds since the container last started.
    #[serde(default)]
    pub uptime_seconds: Option<u64>,
    /// When the container last started, by the host's clock.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// How often the engine restarted it.
    #[serde(default)]
    pub restart_count: u32,
    /// Whether the engine reports that the last exit was an out-of-memory kill.
    #[serde(default)]
    pub oom_killed: bool,
    /// The gateway port on the host's loopback interface.
    #[serde(default)]
    pub gateway_port: Option<u16>,
    /// Whether its limits and hardening were verified against its tier.
    #[serde(default)]
    pub isolation: Option<IsolationReport>,
    /// The last error, when `status` is `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// The image reference the agent's container was created from.
    #[serde(default)]
    pub image: Option<String>,
    /// The engine's id (digest) of the image the container runs.
    #[serde(default)]
    pub image_id: Option<String>,
    /// The OpenClaw version the agent runs, from its image's labels or, in profile mode,
    /// the `openclaw` binary; `None` when it cannot be told.
    #[serde(default)]
    pub openclaw_version: Option<String>,
    /// Whether the host's last check found that the agent's image reference now points at
    /// a different (newer) image than the one its container runs.
    #[serde(default)]
    pub image_update_available: bool,
}

impl AgentStatusReport {
    /// What this report says, in the terms of the platform's agent lifecycle
    /// ([`sparebox_core::lifecycle`]). A deploying report without a stage counts as the
    /// first stage.
    pub fn host_report(&self) -> HostReport {
        match self.status {
            RuntimeStatus::Deploying => HostReport::Deploying {
                stage: self.deploy_stage.unwrap_or(DeployStage::FetchingConfig),
            },
            RuntimeStatus::Running => HostReport::Running,
            RuntimeStatus::Stopped => HostReport::Stopped,
            RuntimeStatus::Exited => HostReport::Exited {
                oom_killed: self.oom_killed,
            },
            RuntimeStatus::Missing => HostReport::Missing,
            RuntimeStatus::Error => HostReport::Error {
                reason: self.error.clone().unwrap_or_default(),
            },
        }
    }

    /// A report with only the agent and its status; metrics empty.
    pub fn new(agent_id: AgentId, status: RuntimeStatus) -> Self {
        Self {
            agent_id,
            status,
            deploy_stage: None,
            container_id: None,
            cpu_percent: None,
            ram_usage_mb: None,
            ram_limit_mb: None,
            uptime_seconds: None,
            started_at: None,
            restart_count: 0,
            oom_killed: false,
            gateway_port: None,
            isolation: None,
            error: None,
            image: None,
            image_id: None,
            openclaw_version: None,
            image_update_available: false,
        }
    }
}

/// A command for the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Stable id: a re-delivered command carries the same id.
    pub id: CommandId,
    /// The agent it applies to.
    pub agent_id: AgentId,
    /// What to do.
    #[serde(rename = "type")]
    pub kind: CommandKind,
    /// The agent's tier, so the daemon can check capacity before fetching anything.
    pub tier: Tier,
    /// When the platform queued it (server clock).
    pub created_at: DateTime<Utc>,
    /// For deploy and update_config: the one-time key that opens and authenticates this
    /// command's deploy bundle. Redacted in `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<crate::SessionKey>,
    /// What the command needs beyond its kind (for `logs`, which lines; for `restore`,
    /// which backup); absent for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<crate::CommandParams>,
}

/// The outcome the daemon reports for a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// The command's effect is in place and durable.
    Acked,
    /// The command could not be carried out; see `error`.
    Failed,
}

/// The daemon's answer to one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAck {
    /// The command.
    pub id: CommandId,
    /// Success or failure.
    pub status: AckStatus,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// The server's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// Commands to carry out, oldest first.
    pub commands: Vec<Command>,
    /// Acks from this or earlier heartbeats that the server has recorded; the daemon may
    /// forget them.
    #[serde(default)]
    pub confirmed_acks: Vec<CommandId>,
    /// When to send the next heartbeat, in seconds.
    pub next_heartbeat_seconds: u32,
    /// The server's clock, for diagnostics only; the daemon never relies on it.
    pub server_time: DateTime<Utc>,
    /// Every agent the platform wants on this host and in which state, for the daemon to
    /// reconcile its containers against. `None` when the server does not say (the daemon
    /// then removes nothing); an agent missing from a `Some` list should not exist here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_agents: Option<Vec<DesiredAgent>>,
}

/// What the platform wants of one agent on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Its tier.
    pub tier: Tier,
    /// Whether it should run.
    pub state: DesiredState,
    /// Whether a command for it is still pending or in flight; the daemon leaves such an
    /// agent alone until the command has been carried out.
    #[serde(default)]
    pub command_pending: bool,
}

/// The state the platform wants an agent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Running: its deployer has not stopped it.
    Running,
    /// Stopped by its deployer: it must stay stopped, also across daemon restarts.
    Stopped,
}
