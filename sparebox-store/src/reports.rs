//! The routine part of a heartbeat, written in one transaction: what the host said about
//! itself, and status reports that change nothing but the report.

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, AgentState, DeployStage};
use sparebox_protocol::AgentStatusReport;

use crate::{AgentRecord, AgentSample};

/// What a caller saw of an agent when it decided that a report leaves the agent's state
/// alone. [`crate::Store::record_heartbeat_reports`] writes the report only while the
/// agent still matches it, so a state change made in between is never overwritten with a
/// conclusion drawn from the older state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenAgent {
    /// State.
    pub state: AgentState,
    /// Deploy stage.
    pub deploy_stage: Option<DeployStage>,
    /// Error.
    pub error: Option<String>,
    /// When its latest report arrived.
    pub last_report_at: Option<DateTime<Utc>>,
}

impl From<&AgentRecord> for SeenAgent {
    fn from(agent: &AgentRecord) -> Self {
        Self {
            state: agent.state,
            deploy_stage: agent.deploy_stage,
            error: agent.error.clone(),
            last_report_at: agent.last_report_at,
        }
    }
}

/// A status report to store as the agent's latest, without changing anything else.
#[derive(Clone, Debug)]
pub struct ReportWrite {
    /// The agent.
    pub agent: AgentId,
    /// The agent as the caller saw it.
    pub seen: SeenAgent,
    /// The report.
    pub report: AgentStatusReport,
    /// A resource sample to record with it, thinned like
    /// [`crate::Store::record_agent_sample`] does.
    pub sample: Option<AgentSample>,
}
