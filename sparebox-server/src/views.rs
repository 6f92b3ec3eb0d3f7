//! What the API shows of hosts and agents.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::{AgentId, AgentState, DeployStage, HostId, Reserve, Tier};
use sparebox_protocol::{AgentStatusReport, HostHardware, IsolationMode, WorkspaceFile};
use sparebox_store::{AgentRecord, HostRecord};

/// A host as deployers and its owner see it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Its id.
    pub id: HostId,
    /// The owner's name for it.
    pub name: String,
    /// The first characters of its key.
    pub key_prefix: String,
    /// Hardware from the latest heartbeat.
    pub hardware: Option<HostHardware>,
    /// Isolation mode from the latest heartbeat.
    pub isolation: Option<IsolationMode>,
    /// Whether the host has sent a heartbeat recently.
    pub online: bool,
    /// When the latest heartbeat arrived (server clock).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Free slots per tier, counting the agents it already holds.
    pub free_slots: BTreeMap<Tier, u64>,
}

impl HostView {
    /// Builds the view from a host, the tiers of the agents holding slots on it, and
    /// whether it is online.
    pub fn new(host: &HostRecord, occupied: &[Tier], reserve: &Reserve, online: bool) -> Self {
        let free_slots = Tier::ALL
            .into_iter()
            .map(|tier| {
                let n = host
                    .hardware
                    .as_ref()
                    .map(|hw| free_slots(hw, reserve, occupied, tier))
                    .unwrap_or(0);
                (tier, n)
            })
            .collect();
        Self {
            id: host.id,
            name: host.name.clone(),
            key_prefix: host.key_prefix.clone(),
            hardware: host.hardware.clone(),
            isolation: host.isolation,
            online,
            last_heartbeat_at: host.last_heartbeat_at,
            free_slots,
        }
    }
}

/// How many more agents of `tier` fit next to `occupied`.
fn free_slots(hw: &HostHardware, reserve: &Reserve, occupied: &[Tier], tier: Tier) -> u64 {
    let hardware =
        sparebox_core::Hardware::new(hw.ram_mb, u64::from(hw.cpu_cores) * 1000, hw.disk_gb);
    let mut placed = occupied.to_vec();
    let mut count = 0;
    while sparebox_core::can_place(&hardware, reserve, placed.iter().copied(), tier) {
        placed.push(tier);
        count += 1;
    }
    count
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
