//! Agents moving from one host to another: the persisted state of each move.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::{AgentId, CommandId, HostId};

/// Where a move is.
///
/// ```text
/// backing_up ──(backup acked, failed or skipped)──▶ deploying ──(deploy acked)──▶ restoring ──▶ (done)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    /// A fresh backup is being taken on the old host.
    BackingUp,
    /// The agent is assigned to the new host and its deploy is on the way.
    Deploying,
    /// The backup is being restored on the new host.
    Restoring,
}

impl MovePhase {
    /// The snake_case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            MovePhase::BackingUp => "backing_up",
            MovePhase::Deploying => "deploying",
            MovePhase::Restoring => "restoring",
        }
    }
}

impl fmt::Display for MovePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MovePhase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            MovePhase::BackingUp,
            MovePhase::Deploying,
            MovePhase::Restoring,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown move phase {s:?}"))
    }
}

/// One agent's move in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveRecord {
    /// The agent.
    pub agent: AgentId,
    /// The host it leaves.
    pub from_host: HostId,
    /// The host it goes to, once chosen.
    pub to_host: Option<HostId>,
    /// Where the move is.
    pub phase: MovePhase,
    /// The command the move waits for, if any.
    pub command: Option<CommandId>,
    /// The backup restored on the new host, if any.
    pub backup: Option<CommandId>,
    /// Why the agent moves (shown to its deployer).
    pub reason: String,
    /// When the move began (server clock).
    pub started_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether its deployer had stopped it: it is stopped again once it has moved, since a
    /// deploy on the new host starts it.
    pub keep_stopped: bool,
}

/// Checks that `deploy` deploys `agent` on `to`.
pub(crate) fn check_deploy(
    agent: AgentId,
    to: HostId,
    deploy: &crate::NewCommand,
) -> crate::StoreResult<()> {
    if deploy.agent != agent
        || deploy.host != to
        || deploy.kind != sparebox_core::CommandKind::Deploy
    {
        return Err(crate::StoreError::Invalid(format!(
            "the command moving agent {agent} must be a deploy of it on host {to}"
        )));
    }
    Ok(())
}
