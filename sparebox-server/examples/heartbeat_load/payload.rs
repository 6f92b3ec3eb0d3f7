//! What a simulated host says in a heartbeat.

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, CommandId};
use sparebox_protocol::{
    AckStatus, AgentStatusReport, CommandAck, HeartbeatRequest, HostHardware, IsolationMode,
    IsolationReport, RuntimeStatus, PROTOCOL_VERSION,
};

/// One agent on a simulated host, as its daemon sees it.
#[derive(Clone, Debug)]
pub struct SimAgent {
    pub id: AgentId,
    pub running: bool,
    pub started_at: DateTime<Utc>,
    pub port: u16,
}

/// A 32 GiB, 16-core Linux host: room for eight agents of mixed tiers.
pub fn hardware() -> HostHardware {
    HostHardware {
        ram_mb: 32768,
        cpu_cores: 16,
        disk_gb: 500,
        os: "linux".into(),
        arch: "x86_64".into(),
        gpu: None,
    }
}

/// A heartbeat reporting `agents` with their metrics and acknowledging `acks`.
pub fn request(agents: &[SimAgent], acks: &[CommandId], now: DateTime<Utc>) -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: "0.1.0-load".into(),
        hardware: hardware(),
        isolation: IsolationMode::Docker,
        agent_statuses: agents.iter().map(|agent| report(agent, now)).collect(),
        command_acks: acks
            .iter()
            .map(|id| CommandAck {
                id: *id,
                status: AckStatus::Acked,
                error: None,
            })
            .collect(),
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    }
}

/// A running (or stopped) agent's full status report.
pub fn report(agent: &SimAgent, now: DateTime<Utc>) -> AgentStatusReport {
    let uptime = u64::try_from((now - agent.started_at).num_seconds()).unwrap_or(0);
    let seed = agent.id.to_string().len() as u64 + u64::from(agent.port);
    AgentStatusReport {
        agent_id: agent.id,
        status: if agent.running {
            RuntimeStatus::Running
        } else {
            RuntimeStatus::Stopped
        },
        deploy_stage: None,
        container_id: Some(format!("{:0>64}", agent.id.to_string().replace('-', ""))),
        cpu_percent: agent.running.then_some((seed % 40) as f64 + 1.5),
        ram_usage_mb: agent.running.then_some(400 + seed % 300),
        ram_limit_mb: Some(1024),
        uptime_seconds: agent.running.then_some(uptime),
        started_at: Some(agent.started_at),
        restart_count: 0,
        oom_killed: false,
        gateway_port: Some(agent.port),
        isolation: Some(IsolationReport {
            verified: true,
            mismatches: Vec::new(),
        }),
        error: None,
        image: Some(sparebox_server::DEFAULT_AGENT_IMAGE.into()),
        image_id: Some(
            "sha256:4f1c2d9a8b7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a".into(),
        ),
        openclaw_version: Some("2026.9.6".into()),
        image_update_available: false,
    }
}
