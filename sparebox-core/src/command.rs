//! Commands the platform queues for a host daemon, and their status transitions.
//!
//! ```text
//! pending ──deliver──▶ sent ──ack──▶ acked
//!    │                   └──nack──▶ failed
//!    └──────┬────────────┘
//!           └──(older than the expiry window)──▶ expired
//! ```
//!
//! `acked`, `failed` and `expired` are terminal: nothing moves a command out of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a command asks the daemon to do with one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Fetch the agent's bundle and create and start its container.
    Deploy,
    /// Start a stopped agent.
    Start,
    /// Stop a running agent, keeping its state.
    Stop,
    /// Stop then start the agent.
    Restart,
    /// Remove the agent's container and every file it had on the host.
    Undeploy,
    /// Fetch a new bundle and apply it to the existing agent.
    UpdateConfig,
}

impl CommandKind {
    /// Every kind, in declaration order.
    pub const ALL: [CommandKind; 6] = [
        CommandKind::Deploy,
        CommandKind::Start,
        CommandKind::Stop,
        CommandKind::Restart,
        CommandKind::Undeploy,
        CommandKind::UpdateConfig,
    ];

    /// The snake_case name used on the wire (`"update_config"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandKind::Deploy => "deploy",
            CommandKind::Start => "start",
            CommandKind::Stop => "stop",
            CommandKind::Restart => "restart",
            CommandKind::Undeploy => "undeploy",
            CommandKind::UpdateConfig => "update_config",
        }
    }

    /// Whether the daemon must download a deploy bundle to carry out this command.
    pub const fn needs_bundle(self) -> bool {
        matches!(self, CommandKind::Deploy | CommandKind::UpdateConfig)
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command kind name that Sparebox does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown command type {0:?}: expected one of deploy, start, stop, restart, undeploy, update_config"
)]
pub struct UnknownCommandKind(pub String);

impl FromStr for CommandKind {
    type Err = UnknownCommandKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownCommandKind(s.to_owned()))
    }
}

/// Where a command is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Queued, not yet handed to the daemon.
    Pending,
    /// Handed to the daemon in a heartbeat response, not yet acknowledged.
    Sent,
    /// The daemon reported success.
    Acked,
    /// The daemon reported failure.
    Failed,
    /// Not acknowledged within the expiry window.
    Expired,
}

impl CommandStatus {
    /// Every status, in declaration order.
    pub const ALL: [CommandStatus; 5] = [
        CommandStatus::Pending,
        CommandStatus::Sent,
        CommandStatus::Acked,
        CommandStatus::Failed,
        CommandStatus::Expired,
    ];

    /// The snake_case name used on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Sent => "sent",
            CommandStatus::Acked => "acked",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
        }
    }

    /// Whether no further transition is possible.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandStatus::Acked | CommandStatus::Failed | CommandStatus::Expired
        )
    }

    /// Whether moving from `self` to `next` is allowed.
    pub const fn can_become(self, next: CommandStatus) -> bool {
        use CommandStatus::*;
        matches!(
            (self, next),
            (Pending, Sent) | (Sent, Acked) | (Sent, Failed) | (Pending, Expired) | (Sent, Expired)
        )
    }

    /// Moves to `next`, or explains why that transition is not allowed.
    ///
    /// # Errors
    ///
    /// [`IllegalTransition`] when `next` cannot follow `self`.
    pub fn transition(self, next: CommandStatus) -> Result<CommandStatus, IllegalTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(IllegalTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that Sparebox does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command status {0:?}")]
pub struct UnknownCommandStatus(pub String);

impl FromStr for CommandStatus {
    type Err = UnknownCommandStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownCommandStatus(s.to_owned()))
    }
}

/// A command status transition that the state machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("command cannot go from {from} to {to}")]
pub struct IllegalTransition {
    /// The current status.
    pub from: CommandStatus,
    /// The status that was asked for.
    pub to: CommandStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_never_change() {
        for from in CommandStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in CommandStatus::ALL {
                assert!(from.transition(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn pending_cannot_be_acked_without_being_sent() {
        assert_eq!(
            CommandStatus::Pending
                .transition(CommandStatus::Acked)
                .unwrap_err()
                .to_string(),
            "command cannot go from pending to acked"
        );
    }

    #[test]
    fn command_kinds_round_trip_through_their_wire_names() {
        for kind in CommandKind::ALL {
            assert_eq!(kind.as_str().parse::<CommandKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert!("reboot".parse::<CommandKind>().is_err());
    }
}
