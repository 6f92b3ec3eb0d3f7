//! The agent's life as the platform sees it: one state machine driven by command results,
//! host reports and host loss.
//!
//! [`AgentLifecycle`] is [`AgentState`] with the data some states carry (the deploy stage,
//! the error reason). Every change goes through [`transition`]: a current state and an
//! [`AgentEvent`] give the next state, or an [`IllegalAgentTransition`] that leaves the
//! agent as it was. Nothing is silently overwritten.
//!
//! Rows apply to every state but undeployed (see below).
//!
//! | event | from | to |
//! |---|---|---|
//! | [`AgentEvent::CommandSent`] deploy | any but undeploying | deploying (fetching_config) |
//! | [`AgentEvent::CommandSent`] undeploy | any | undeploying |
//! | [`AgentEvent::CommandSent`] other | any | unchanged |
//! | [`AgentEvent::CommandAcked`] deploy, start, restart | any deployed state¹ | running |
//! | [`AgentEvent::CommandAcked`] update_config, upgrade, restore | stopped / other deployed¹ | stopped / running |
//! | [`AgentEvent::CommandAcked`] stop | any deployed state¹ | stopped |
//! | [`AgentEvent::CommandAcked`] logs, backup | any deployed state¹ | unchanged |
//! | [`AgentEvent::CommandAcked`] undeploy | any | undeployed |
//! | [`AgentEvent::CommandFailed`] logs, backup, upgrade | any but undeploying | unchanged³ |
//! | [`AgentEvent::CommandFailed`] other | any but undeploying | error (with the reason) |
//! | [`AgentEvent::CommandExpired`] deploy | pending_deploy, deploying | error |
//! | [`AgentEvent::Reported`] | any but undeploying | what the report shows² |
//! | [`AgentEvent::HostLost`] | any but undeploying | host_offline |
//! | [`AgentEvent::UndeployRequested`] | any | undeploying |
//! | [`AgentEvent::RetryRequested`] | error | pending_deploy |
//!
//! ¹ deploying, running, stopped, error or host_offline; a deploy ack is also accepted in
//! pending_deploy, but a start, stop, restart or update_config ack there is illegal: there
//! is nothing on the host yet.
//! ² a deploying report at stage `ready` means running; only that, a running report or a
//! deploy/start/restart ack make an agent running, never an intermediate stage.
//! ³ reading logs or taking a backup leaves the agent as it was, and a failed upgrade has
//! already put the agent back on its previous image; the next report shows its state.
//!
//! While undeploying, every event but the undeploy's own result keeps the agent
//! undeploying: the deployer asked for removal, and late results of earlier commands do
//! not undo that. An undeployed agent stays undeployed: a repeated undeploy ack, a
//! `missing` report, host loss and expiries are accepted without change, and anything
//! else (a running report, a new command) is an [`IllegalAgentTransition`] that the
//! server should act on (for example by sending another undeploy).
//!
//! Apply a heartbeat's acks first, in order, then its reports: a report is the newest
//! observation. Acks that [`crate::command::ack_outcome`] calls duplicate or late must not
//! be applied at all.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentState, DeployStage};
use crate::command::{AckResult, CommandKind};

/// The longest error reason kept, in characters; longer reasons are cut.
pub const MAX_REASON_CHARS: usize = 1000;

/// The reason used when a failure comes without one.
pub const UNKNOWN_REASON: &str = "unknown error";

/// An agent's state as the platform sees it, with the data that goes with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentLifecycle {
    /// Created; the deploy command has not reached the host yet.
    PendingDeploy,
    /// The host is deploying it (or applying a new configuration).
    Deploying {
        /// How far the deploy is; never [`DeployStage::Ready`], which means running.
        stage: DeployStage,
    },
    /// Deployed and running.
    Running,
    /// Deployed and stopped.
    Stopped,
    /// Something went wrong.
    Error {
        /// What went wrong: non-empty, at most [`MAX_REASON_CHARS`] characters.
        reason: String,
    },
    /// The host has stopped sending heartbeats; its next reports decide what follows.
    HostOffline,
    /// An undeploy has been requested and not yet confirmed.
    Undeploying,
    /// Removed from its host.
    Undeployed,
}

/// What the host daemon reports about one agent in a heartbeat (the platform-side mirror
/// of the protocol's runtime status, without its metrics).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HostReport {
    /// A deploy or configuration update is at this stage.
    Deploying {
        /// The stage reached.
        stage: DeployStage,
    },
    /// Running.
    Running,
    /// Stopped on purpose.
    Stopped,
    /// Exited on its own.
    Exited {
        /// Whether the engine says it was killed for exceeding its memory limit.
        oom_killed: bool,
    },
    /// The daemon knows the agent but its container is gone.
    Missing,
    /// The daemon's last operation on it failed.
    Error {
        /// The daemon's message.
        reason: String,
    },
}

impl HostReport {
    /// The state this report shows, whatever the platform thought before.
    pub fn shown_state(&self) -> AgentLifecycle {
        match self {
            HostReport::Deploying {
                stage: DeployStage::Ready,
            }
            | HostReport::Running => AgentLifecycle::Running,
            HostReport::Deploying { stage } => AgentLifecycle::Deploying { stage: *stage },
            HostReport::Stopped => AgentLifecycle::Stopped,
            HostReport::Exited { oom_killed: true } => {
                AgentLifecycle::error("killed for exceeding its memory limit")
            }
            HostReport::Exited { oom_killed: false } => {
                AgentLifecycle::error("exited unexpectedly")
            }
            HostReport::Missing => AgentLifecycle::error("container missing on host"),
            HostReport::Error { reason } => AgentLifecycle::error(reason),
        }
    }
}

/// Something that happens to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A command for it was handed to its host.
    CommandSent {
        /// The command's kind.
        kind: CommandKind,
    },
    /// Its host acknowledged a command: the effect is in place.
    CommandAcked {
        /// The command's kind.
        kind: CommandKind,
    },
    /// Its host reported that a command failed.
    CommandFailed {
        /// The command's kind.
        kind: CommandKind,
        /// The daemon's error.
        reason: String,
    },
    /// A command for it expired without an ack.
    CommandExpired {
        /// The command's kind.
        kind: CommandKind,
    },
    /// Its host reported on it in a heartbeat.
    Reported(HostReport),
    /// Its host stopped sending heartbeats.
    HostLost,
    /// Its deployer (or billing) asked for it to be removed.
    UndeployRequested,
    /// Its deployer asked for a failed deploy to be tried again; a new deploy is queued.
    RetryRequested,
}

impl AgentEvent {
    /// The event for an ack that [`crate::command::ack_outcome`] said to apply.
    pub fn from_ack(kind: CommandKind, result: AckResult, error: Option<&str>) -> Self {
        match result {
            AckResult::Acked => AgentEvent::CommandAcked { kind },
            AckResult::Failed => AgentEvent::CommandFailed {
                kind,
                reason: error.unwrap_or(UNKNOWN_REASON).to_owned(),
            },
        }
    }
}

impl fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentEvent::CommandSent { kind } => write!(f, "{kind} sent"),
            AgentEvent::CommandAcked { kind } => write!(f, "{kind} acked"),
            AgentEvent::CommandFailed { kind, .. } => write!(f, "{kind} failed"),
            AgentEvent::CommandExpired { kind } => write!(f, "{kind} expired"),
            AgentEvent::Reported(report) => write!(f, "report {}", report.shown_state().state()),
            AgentEvent::HostLost => f.write_str("host lost"),
            AgentEvent::UndeployRequested => f.write_str("undeploy requested"),
            AgentEvent::RetryRequested => f.write_str("retry requested"),
        }
    }
}

/// An event that cannot happen to an agent in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent in state {from}: {event} is not allowed")]
pub struct IllegalAgentTransition {
    /// The agent's state, which stays as it was.
    pub from: AgentState,
    /// The event, described.
    pub event: String,
}

/// Stored agent columns that do not describe a valid [`AgentLifecycle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent record: a deploying agent cannot be at stage ready")]
pub struct InvalidAgentRecord;

impl AgentLifecycle {
    /// An error state with `reason`: control characters become spaces, surrounding
    /// whitespace is trimmed, and the result is cut to [`MAX_REASON_CHARS`] characters; a
    /// blank reason becomes [`UNKNOWN_REASON`]. Applying this to its own output changes
    /// nothing, so reasons round-trip through storage.
    pub fn error(reason: &str) -> Self {
        let cleaned: String = reason
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_REASON_CHARS)
            .collect();
        let cleaned = cleaned.trim();
        let reason = if cleaned.is_empty() {
            UNKNOWN_REASON.to_owned()
        } else {
            cleaned.to_owned()
        };
        AgentLifecycle::Error { reason }
    }

    /// The plain state, as stored and shown.
    pub const fn state(&self) -> AgentState {
        match self {
            AgentLifecycle::PendingDeploy => AgentState::PendingDeploy,
            AgentLifecycle::Deploying { .. } => AgentState::Deploying,
            AgentLifecycle::Running => AgentState::Running,
            AgentLifecycle::Stopped => AgentState::Stopped,
            AgentLifecycle::Error { .. } => AgentState::Error,
            AgentLifecycle::HostOffline => AgentState::HostOffline,
            AgentLifecycle::Undeploying => AgentState::Undeploying,
            AgentLifecycle::Undeployed => AgentState::Undeployed,
        }
    }

    /// The deploy stage, while deploying.
    pub const fn deploy_stage(&self) -> Option<DeployStage> {
        match self {
            AgentLifecycle::Deploying { stage } => Some(*stage),
            _ => None,
        }
    }

    /// The error reason, in the error state.
    pub fn error_reason(&self) -> Option<&str> {
        match self {
            AgentLifecycle::Error { reason } => Some(reason),
            _ => None,
        }
    }

    /// Deploy progress in percent: the stage's while deploying, 100 when running.
    pub const fn progress_percent(&self) -> Option<u8> {
        match self {
            AgentLifecycle::Deploying { stage } => Some(stage.progress_percent()),
            AgentLifecycle::Running => Some(100),
            _ => None,
        }
    }

    /// Rebuilds the lifecycle from stored columns (state, deploy stage, error). A
    /// deploying agent without a stage is at `fetching_config`; an error without a reason
    /// gets [`UNKNOWN_REASON`]; a stage or error stored with other states is ignored.
    ///
    /// # Errors
    ///
    /// [`InvalidAgentRecord`] for a deploying agent at stage `ready`.
    pub fn from_parts(
        state: AgentState,
        stage: Option<DeployStage>,
        error: Option<&str>,
    ) -> Result<Self, InvalidAgentRecord> {
        Ok(match state {
            AgentState::PendingDeploy => AgentLifecycle::PendingDeploy,
            AgentState::Deploying => match stage.unwrap_or(DeployStage::FetchingConfig) {
                DeployStage::Ready => return Err(InvalidAgentRecord),
                stage => AgentLifecycle::Deploying { stage },
            },
            AgentState::Running => AgentLifecycle::Running,
            AgentState::Stopped => AgentLifecycle::Stopped,
            AgentState::Error => AgentLifecycle::error(error.unwrap_or("")),
            AgentState::HostOffline => AgentLifecycle::HostOffline,
            AgentState::Undeploying => AgentLifecycle::Undeploying,
            AgentState::Undeployed => AgentLifecycle::Undeployed,
        })
    }

    /// Applies `event`; see [`transition`].
    ///
    /// # Errors
    ///
    /// [`IllegalAgentTransition`] when the event cannot happen in this state.
    pub fn apply(&self, event: &AgentEvent) -> Result<Self, IllegalAgentTransition> {
        transition(self, event)
    }
}

impl fmt::Display for AgentLifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentLifecycle::Deploying { stage } => write!(f, "deploying ({stage})"),
            AgentLifecycle::Error { reason } => write!(f, "error: {reason}"),
            other => f.write_str(other.state().as_str()),
        }
    }
}

/// The state after `event` happens to an agent in `current`; see the table in the
/// [module docs](self).
///
/// # Errors
///
/// [`IllegalAgentTransition`] when the event cannot happen in `current` (for example a
/// start ack before anything was deployed, or a running report for an undeployed agent).
pub fn transition(
    current: &AgentLifecycle,
    event: &AgentEvent,
) -> Result<AgentLifecycle, IllegalAgentTransition> {
    use AgentLifecycle as S;

    let illegal = || IllegalAgentTransition {
        from: current.state(),
        event: event.to_string(),
    };
    match current {
        S::Undeployed => undeployed(event).ok_or_else(illegal),
        S::Undeploying => Ok(undeploying(event)),
        _ => active(current, event).ok_or_else(illegal),
    }
}

/// Events for an agent that is gone: only harmless repeats are accepted.
fn undeployed(event: &AgentEvent) -> Option<AgentLifecycle> {
    let harmless = matches!(
        event,
        AgentEvent::CommandAcked {
            kind: CommandKind::Undeploy
        } | AgentEvent::CommandExpired { .. }
            | AgentEvent::Reported(HostReport::Missing)
            | AgentEvent::HostLost
    );
    harmless.then_some(AgentLifecycle::Undeployed)
}

/// Events while an undeploy is under way: only the undeploy's own result matters.
fn undeploying(event: &AgentEvent) -> AgentLifecycle {
    match event {
        AgentEvent::CommandAcked {
            kind: CommandKind::Undeploy,
        } => AgentLifecycle::Undeployed,
        AgentEvent::CommandFailed {
            kind: CommandKind::Undeploy,
            reason,
        } => AgentLifecycle::error(&format!("undeploy failed: {reason}")),
        _ => AgentLifecycle::Undeploying,
    }
}

/// Events for an agent that is neither undeploying nor undeployed.
fn active(current: &AgentLifecycle, event: &AgentEvent) -> Option<AgentLifecycle> {
    match event {
        AgentEvent::CommandSent { kind } => Some(sent(current, *kind)),
        AgentEvent::CommandAcked { kind } => acked(current, *kind),
        AgentEvent::CommandFailed { kind, .. } if failure_leaves_agent(*kind) => {
            Some(current.clone())
        }
        AgentEvent::CommandFailed { kind, reason } => {
            Some(AgentLifecycle::error(&format!("{kind} failed: {reason}")))
        }
        AgentEvent::CommandExpired { kind } => Some(expired(current, *kind)),
        AgentEvent::Reported(report) => Some(report.shown_state()),
        AgentEvent::HostLost => Some(AgentLifecycle::HostOffline),
        AgentEvent::UndeployRequested => Some(AgentLifecycle::Undeploying),
        AgentEvent::RetryRequested => {
            matches!(current, AgentLifecycle::Error { .. }).then_some(AgentLifecycle::PendingDeploy)
        }
    }
}

fn sent(current: &AgentLifecycle, kind: CommandKind) -> AgentLifecycle {
    match kind {
        CommandKind::Deploy => AgentLifecycle::Deploying {
            stage: DeployStage::FetchingConfig,
        },
        CommandKind::Undeploy => AgentLifecycle::Undeploying,
        _ => current.clone(),
    }
}

fn acked(current: &AgentLifecycle, kind: CommandKind) -> Option<AgentLifecycle> {
    let nothing_deployed = matches!(current, AgentLifecycle::PendingDeploy);
    match kind {
        CommandKind::Deploy => Some(AgentLifecycle::Running),
        CommandKind::Undeploy => Some(AgentLifecycle::Undeployed),
        _ if nothing_deployed => None,
        CommandKind::Start | CommandKind::Restart => Some(AgentLifecycle::Running),
        CommandKind::Stop => Some(AgentLifecycle::Stopped),
        CommandKind::UpdateConfig | CommandKind::Upgrade | CommandKind::Restore => match current {
            AgentLifecycle::Stopped => Some(AgentLifecycle::Stopped),
            _ => Some(AgentLifecycle::Running),
        },
        CommandKind::Logs | CommandKind::Backup => Some(current.clone()),
    }
}

/// Whether a failure of `kind` leaves the agent as it was: reading logs and taking a backup
/// change nothing, and a failed upgrade has rolled the agent back to its previous image.
pub const fn failure_leaves_agent(kind: CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Logs | CommandKind::Backup | CommandKind::Upgrade
    )
}

fn expired(current: &AgentLifecycle, kind: CommandKind) -> AgentLifecycle {
    let deploy_open = matches!(
        current,
        AgentLifecycle::PendingDeploy | AgentLifecycle::Deploying { .. }
    );
    if kind == CommandKind::Deploy && deploy_open {
        AgentLifecycle::error("deploy expired before the host acknowledged it")
    } else {
        current.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_parts_round_trip() {
        let states = [
            AgentLifecycle::PendingDeploy,
            AgentLifecycle::Deploying {
                stage: DeployStage::Pulling,
            },
            AgentLifecycle::Running,
            AgentLifecycle::error("boom"),
            AgentLifecycle::Undeployed,
        ];
        for s in states {
            let back =
                AgentLifecycle::from_parts(s.state(), s.deploy_stage(), s.error_reason()).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(
            AgentLifecycle::from_parts(AgentState::Deploying, Some(DeployStage::Ready), None),
            Err(InvalidAgentRecord)
        );
    }

    #[test]
    fn error_reasons_are_never_blank_and_bounded() {
        assert_eq!(
            AgentLifecycle::error("  ").error_reason(),
            Some(UNKNOWN_REASON)
        );
        let long = "x".repeat(5000);
        assert_eq!(
            AgentLifecycle::error(&long).error_reason().unwrap().len(),
            MAX_REASON_CHARS
        );
    }

    #[test]
    fn lifecycle_serialises_with_a_state_tag() {
        let json = serde_json::to_string(&AgentLifecycle::Deploying {
            stage: DeployStage::HealthCheck,
        })
        .unwrap();
        assert_eq!(json, r#"{"state":"deploying","stage":"health_check"}"#);
    }
}
