//! Building each agent's status report from the daemon's state and the runtime.

use std::collections::BTreeMap;

use chrono::Utc;
use sparebox_core::AgentId;
use sparebox_protocol::{AgentStatusReport, RuntimeStatus, MAX_REPORTS_PER_HEARTBEAT};
use sparebox_runtime::{ContainerInfo, ContainerState, Runtime};
use tracing::debug;

use crate::images::ImageWatch;
use crate::journal::AgentRecord;
use crate::state::{Phase, SharedState};

const MIB: u64 = 1024 * 1024;

/// A report for every agent the daemon manages or has a phase for, at most
/// [`MAX_REPORTS_PER_HEARTBEAT`], without image update information.
#[cfg(test)]
pub async fn agent_reports(runtime: &dyn Runtime, state: &SharedState) -> Vec<AgentStatusReport> {
    agent_reports_with(runtime, state, &ImageWatch::new()).await
}

/// A report for every agent the daemon manages or has a phase for, at most
/// [`MAX_REPORTS_PER_HEARTBEAT`]; `images` tells which agents have a newer image.
pub async fn agent_reports_with(
    runtime: &dyn Runtime,
    state: &SharedState,
    images: &ImageWatch,
) -> Vec<AgentStatusReport> {
    let records: BTreeMap<AgentId, AgentRecord> = state
        .agents()
        .into_iter()
        .map(|record| (record.agent_id, record))
        .collect();
    let phases = state.phases();
    let missing = state.missing();
    let mut agents: Vec<AgentId> = records
        .keys()
        .chain(phases.keys())
        .chain(missing.iter())
        .copied()
        .collect();
    agents.sort();
    agents.dedup();
    agents.truncate(MAX_REPORTS_PER_HEARTBEAT);

    // Stats calls can take a second or more each (the engine samples CPU twice), so the
    // agents are observed concurrently.
    let reports = agents.into_iter().map(|agent| {
        let record = records.get(&agent);
        let phase = phases.get(&agent);
        report_one(runtime, agent, record, phase, images)
    });
    futures::future::join_all(reports).await
}

async fn report_one(
    runtime: &dyn Runtime,
    agent: AgentId,
    record: Option<&AgentRecord>,
    phase: Option<&Phase>,
    images: &ImageWatch,
) -> AgentStatusReport {
    match phase {
        Some(Phase::Deploying(stage)) => {
            let mut report = AgentStatusReport::new(agent, RuntimeStatus::Deploying);
            report.deploy_stage = Some(*stage);
            report.gateway_port = record.map(|r| r.gateway_port);
            report
        }
        Some(Phase::Failed(message)) => {
            let mut report = observe(runtime, agent, record, images).await;
            report.status = RuntimeStatus::Error;
            report.error = Some(message.clone());
            report
        }
        None => observe(runtime, agent, record, images).await,
    }
}

/// What the runtime shows of the agent right now.
async fn observe(
    runtime: &dyn Runtime,
    agent: AgentId,
    record: Option<&AgentRecord>,
    images: &ImageWatch,
) -> AgentStatusReport {
    let container = match runtime.inspect(agent).await {
        Ok(container) => container,
        Err(err) => {
            let mut report = AgentStatusReport::new(agent, RuntimeStatus::Error);
            report.error = Some(format!("inspect: {err}"));
            return report;
        }
    };
    let Some(container) = container else {
        let mut report = AgentStatusReport::new(agent, RuntimeStatus::Missing);
        report.gateway_port = record.map(|r| r.gateway_port);
        return report;
    };
    let stopped_on_purpose = record.is_some_and(|r| r.stopped);
    let mut report = from_container(agent, &container, stopped_on_purpose);
    report.gateway_port = record.map(|r| r.gateway_port);
    report.image_update_available = images.update_available(&container);
    if container.state == ContainerState::Running {
        match runtime.stats(agent).await {
            Ok(stats) => {
                report.cpu_percent = Some(stats.cpu_percent);
                report.ram_usage_mb = Some(stats.memory_bytes / MIB);
                report.ram_limit_mb = Some(stats.memory_limit_bytes / MIB);
            }
            Err(err) => debug!(agent.id = %agent, error = %err, "no stats this time"),
        }
    }
    report
}

fn from_container(
    agent: AgentId,
    container: &ContainerInfo,
    stopped_on_purpose: bool,
) -> AgentStatusReport {
    let status = match container.state {
        ContainerState::Running => RuntimeStatus::Running,
        _ if stopped_on_purpose => RuntimeStatus::Stopped,
        _ => RuntimeStatus::Exited,
    };
    let mut report = AgentStatusReport::new(agent, status);
    report.container_id = Some(container.container_id.clone());
    report.restart_count = container.restart_count;
    report.oom_killed = container.oom_killed;
    report.ram_limit_mb = container.memory_limit_bytes.map(|bytes| bytes / MIB);
    report.isolation = Some(container.isolation.clone());
    report.started_at = container.started_at;
    report.image = Some(container.image.clone()).filter(|image| !image.is_empty());
    report.image_id = container.image_id.clone();
    report.openclaw_version = container.openclaw_version.clone();
    if status == RuntimeStatus::Running {
        report.uptime_seconds = container.started_at.map(|started| {
            let seconds = (Utc::now() - started).num_seconds();
            u64::try_from(seconds).unwrap_or(0)
        });
    }
    report
}
