//! What the API shows of hosts and agents.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::{
    AgentId, AgentState, DeployStage, HostId, HostPolicy, Reserve, SlotPlan, Tier,
};
use sparebox_protocol::{AgentStatusReport, HostHardware, IsolationMode, WorkspaceFile};
use sparebox_store::{AgentRecord, HostRecord, HostSettings};

/// A host as deployers and its owner see it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Its id.
    pub id: HostId,
    /// The owner's name for it.
    pub name: String,
    /// The first characters of its key; shown to its owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Hardware from the latest heartbeat.
    pub hardware: Option<HostHardware>,
    /// Isolation mode from the latest heartbeat.
    pub isolation: Option<IsolationMode>,
    /// True when the host runs at least one agent and the latest report of every running
    /// agent says its limits and hardening were verified (see ARCHITECTURE.md, "verified
    /// isolation"). A host with no running agent has nothing verified yet.
    pub isolation_verified: bool,
    /// Whether the host has sent a heartbeat recently.
    pub online: bool,
    /// When the latest heartbeat arrived (server clock).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// The tiers the owner offers.
    pub offered_tiers: BTreeSet<Tier>,
    /// Free slots per tier, from the agents it already holds, its offered tiers and cap.
    pub free_slots: BTreeMap<Tier, u64>,
    /// Price per tier in cents per month, where the owner set one.
    pub prices: BTreeMap<Tier, u32>,
    /// The owner's cap on agents, if any.
    pub max_agents: Option<u32>,
    /// The owner's region text, if any.
    pub region: Option<String>,
}

impl HostView {
    /// Builds the view from a host, the agents assigned to it, the platform's reserve and
    /// whether it is online; `for_owner` adds what only the owner sees.
    pub fn new(
        host: &HostRecord,
        agents: &[AgentRecord],
        reserve: &Reserve,
        online: bool,
        for_owner: bool,
    ) -> Self {
        let holding: Vec<Tier> = agents
            .iter()
            .filter(|a| a.state.holds_slot())
            .map(|a| a.tier)
            .collect();
        let free_slots = host
            .hardware
            .as_ref()
            .and_then(|hw| slot_plan(hw, &host.settings, reserve, holding))
            .map(|plan| plan.table().iter().collect())
            .unwrap_or_else(|| Tier::ALL.into_iter().map(|t| (t, 0)).collect());
        Self {
            id: host.id,
            name: host.name.clone(),
            key_prefix: for_owner.then(|| host.key_prefix.clone()),
            hardware: host.hardware.clone(),
            isolation: host.isolation,
            isolation_verified: isolation_verified(agents),
            online,
            last_heartbeat_at: host.last_heartbeat_at,
            offered_tiers: host.settings.offered.clone(),
            free_slots,
            prices: host.settings.prices.clone(),
            max_agents: host.settings.max_agents,
            region: host.settings.region.clone(),
        }
    }
}

/// The host's capacity plan, or `None` when its hardware or settings are beyond what the
/// slot maths accepts.
fn slot_plan(
    hw: &HostHardware,
    settings: &HostSettings,
    reserve: &Reserve,
    holding: Vec<Tier>,
) -> Option<SlotPlan> {
    let hardware =
        sparebox_core::Hardware::new(hw.ram_mb, u64::from(hw.cpu_cores) * 1000, hw.disk_gb);
    let policy = HostPolicy::new(
        settings.offered.iter().copied(),
        settings.max_agents,
        *reserve,
    )
    .ok()?;
    SlotPlan::new(hardware, policy, holding).ok()
}

/// Whether every running agent's latest report verified its isolation (and there is one).
fn isolation_verified(agents: &[AgentRecord]) -> bool {
    let mut running = agents
        .iter()
        .filter(|a| a.state == AgentState::Running)
        .peekable();
    running.peek().is_some()
        && running.all(|a| {
            a.last_report
                .as_ref()
                .and_then(|r| r.isolation.as_ref())
                .is_some_and(|i| i.verified)
        })
}

/// An agent as the owner of its host sees it: no configuration, files or secrets.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedAgent {
    /// Its id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Tier.
    pub tier: Tier,
    /// State as the platform sees it.
    pub state: AgentState,
}

impl From<&AgentRecord> for HostedAgent {
    fn from(agent: &AgentRecord) -> Self {
        Self {
            id: agent.id,
            name: agent.name.clone(),
            tier: agent.tier,
            state: agent.state,
        }
    }
}

/// One of the caller's hosts with the agents placed on it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedHostView {
    /// The host, with what only its owner sees.
    #[serde(flatten)]
    pub host: HostView,
    /// Agents on it that are not undeployed, oldest first.
    pub agents: Vec<HostedAgent>,
}

/// Live metrics of an agent, from its host's latest report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMetrics {
    /// CPU in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Working-set memory in MiB.
    pub ram_usage_mb: Option<u64>,
    /// Memory limit in MiB.
    pub ram_limit_mb: Option<u64>,
    /// Seconds since the container started.
    pub uptime_seconds: Option<u64>,
    /// Restarts by the engine.
    pub restart_count: u32,
    /// When the report arrived (server clock).
    pub reported_at: Option<DateTime<Utc>>,
}

/// An agent as its deployer sees it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// Its id.
    pub id: AgentId,
    /// Its host.
    pub host_id: HostId,
    /// Display name.
    pub name: String,
    /// Tier.
    pub tier: Tier,
    /// State as the platform sees it.
    pub state: AgentState,
    /// Deploy stage while deploying.
    pub deploy_stage: Option<DeployStage>,
    /// Deploy progress in percent while deploying.
    pub deploy_progress: Option<u8>,
    /// Last error.
    pub error: Option<String>,
    /// The image it runs.
    pub image: String,
    /// The OpenClaw version the host reports it running, when the image tells it.
    pub openclaw_version: Option<String>,
    /// Whether the host found a newer image under the agent's image reference; the
    /// platform decides whether to upgrade.
    pub image_update_available: bool,
    /// Live metrics.
    pub metrics: AgentMetrics,
    /// Whether its limits and hardening were verified on the host.
    pub isolation_verified: Option<bool>,
    /// The deployer's `openclaw.json`.
    pub openclaw_config: serde_json::Value,
    /// Workspace file paths and sizes (content is not repeated here).
    pub workspace_files: Vec<WorkspaceFileSummary>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A workspace file's path and size.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceFileSummary {
    /// Relative path.
    pub path: String,
    /// Size in bytes.
    pub size: usize,
}

impl From<&AgentRecord> for AgentView {
    fn from(agent: &AgentRecord) -> Self {
        let report: Option<&AgentStatusReport> = agent.last_report.as_ref();
        Self {
            id: agent.id,
            host_id: agent.host,
            name: agent.name.clone(),
            tier: agent.tier,
            state: agent.state,
            deploy_stage: agent.deploy_stage,
            deploy_progress: agent.deploy_stage.map(DeployStage::progress_percent),
            error: agent.error.clone(),
            image: agent.image.clone(),
            openclaw_version: report.and_then(|r| r.openclaw_version.clone()),
            image_update_available: report.is_some_and(|r| r.image_update_available),
            metrics: AgentMetrics {
                cpu_percent: report.and_then(|r| r.cpu_percent),
                ram_usage_mb: report.and_then(|r| r.ram_usage_mb),
                ram_limit_mb: report.and_then(|r| r.ram_limit_mb),
                uptime_seconds: report.and_then(|r| r.uptime_seconds),
                restart_count: report.map(|r| r.restart_count).unwrap_or(0),
                reported_at: agent.last_report_at,
            },
            isolation_verified: report.and_then(|r| r.isolation.as_ref().map(|i| i.verified)),
            openclaw_config: agent.openclaw_config.clone(),
            workspace_files: agent
                .workspace_files
                .iter()
                .map(|f: &WorkspaceFile| WorkspaceFileSummary {
                    path: f.path.clone(),
                    size: f.content.len(),
                })
                .collect(),
            created_at: agent.created_at,
        }
    }
}
