//! Commands the platform queues for a host daemon, and their status transitions.
//!
//! ```text
//! pending ──deliver──▶ sent ──ack──▶ acked
//!    │  │                │ └──nack──▶ failed
//!    │  └──┬─────────────┘
//!    │     └──(older than the expiry window)──▶ expired
//!    └──(a newer command for the same agent)──▶ superseded
//! ```
//!
//! `acked`, `failed`, `expired` and `superseded` are terminal: nothing moves a command out
//! of them. Everything here is pure: the caller passes the server's clock as `now`.
//!
//! | question | function |
//! |---|---|
//! | has this command expired? | [`expire`], [`ExpiryWindow::is_expired`] |
//! | may it still be handed to the daemon? | [`deliverable`] |
//! | what does this ack do? | [`ack_outcome`] → [`AckEffect`] |
//! | does a new command cancel a queued one? | [`supersedes`], [`superseded_by`] |
//!
//! # Supersession
//!
//! Per agent, a newer command supersedes an older one that is still `pending` (never
//! sent). A command already sent is never superseded: the daemon may be carrying it out.
//!
//! | newer ↓ \ older → | deploy | start | stop | restart | undeploy | update_config | upgrade | logs | backup | restore |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | deploy | – | – | – | – | – | – | – | – | – | – |
//! | start | – | yes | yes | yes | – | – | – | – | – | – |
//! | stop | – | yes | yes | yes | – | – | – | – | – | – |
//! | restart | – | yes | yes | yes | – | – | – | – | – | – |
//! | undeploy | yes | yes | yes | yes | yes | yes | yes | yes | yes | yes |
//! | update_config | – | – | – | – | – | yes | – | – | – | – |
//! | upgrade | – | – | – | – | – | – | yes | – | – | – |
//! | logs, backup, restore | – | – | – | – | – | – | – | – | – | – |
//!
//! Why: start, stop and restart each set whether the agent runs, so only the latest one
//! matters. Undeploy removes the agent, so nothing queued before it is worth doing. A
//! deploy is never dropped by anything but an undeploy: everything else needs the agent
//! to exist. An update_config is never dropped by a lifecycle command (the new
//! configuration must reach the agent); a newer update_config replaces an older queued one
//! because the daemon fetches the bundle when it carries the command out, so both would
//! deliver the same, latest configuration. A newer upgrade replaces an older queued one: only
//! the latest image the platform chose matters. Logs, backups and restores each have a
//! caller waiting for their own result, so only an undeploy drops them. Nothing supersedes a newer undeploy: a command
//! queued after it (a redeploy) is kept, and an older pending one is never resurrected.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::CommandId;

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
    /// Fetch a bundle naming a new image and move the agent onto it, keeping it only if it
    /// becomes healthy (otherwise the agent goes back to its previous image).
    Upgrade,
    /// Read the agent's recent logs, redact its secrets and upload them.
    Logs,
    /// Archive the agent's state and upload it.
    Backup,
    /// Replace the agent's state with a backup.
    Restore,
}

impl CommandKind {
    /// Every kind, in declaration order.
    pub const ALL: [CommandKind; 10] = [
        CommandKind::Deploy,
        CommandKind::Start,
        CommandKind::Stop,
        CommandKind::Restart,
        CommandKind::Undeploy,
        CommandKind::UpdateConfig,
        CommandKind::Upgrade,
        CommandKind::Logs,
        CommandKind::Backup,
        CommandKind::Restore,
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
            CommandKind::Upgrade => "upgrade",
            CommandKind::Logs => "logs",
            CommandKind::Backup => "backup",
            CommandKind::Restore => "restore",
        }
    }

    /// Whether the daemon must download a deploy bundle to carry out this command. An
    /// upgrade's signed bundle carries the new image, which only the platform chooses.
    pub const fn needs_bundle(self) -> bool {
        matches!(
            self,
            CommandKind::Deploy | CommandKind::UpdateConfig | CommandKind::Upgrade
        )
    }

    /// Whether the command travels with a one-time session key: every command that needs a
    /// bundle, plus a backup (which seals its upload under the key) and a restore (which
    /// opens its download with it).
    pub const fn needs_session_key(self) -> bool {
        self.needs_bundle() || matches!(self, CommandKind::Backup | CommandKind::Restore)
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
    "unknown command type {0:?}: expected one of deploy, start, stop, restart, undeploy, update_config, upgrade, logs, backup, restore"
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
    /// Replaced by a newer command for the same agent before it was sent; see
    /// [`supersedes`].
    Superseded,
}

impl CommandStatus {
    /// Every status, in declaration order.
    pub const ALL: [CommandStatus; 6] = [
        CommandStatus::Pending,
        CommandStatus::Sent,
        CommandStatus::Acked,
        CommandStatus::Failed,
        CommandStatus::Expired,
        CommandStatus::Superseded,
    ];

    /// The snake_case name used on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Sent => "sent",
            CommandStatus::Acked => "acked",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
            CommandStatus::Superseded => "superseded",
        }
    }

    /// Whether no further transition is possible.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandStatus::Acked
                | CommandStatus::Failed
                | CommandStatus::Expired
                | CommandStatus::Superseded
        )
    }

    /// Whether moving from `self` to `next` is allowed.
    pub const fn can_become(self, next: CommandStatus) -> bool {
        use CommandStatus::*;
        matches!(
            (self, next),
            (Pending, Sent)
                | (Sent, Acked)
                | (Sent, Failed)
                | (Pending, Expired)
                | (Sent, Expired)
                | (Pending, Superseded)
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

/// The shortest expiry window [`ExpiryWindow::new`] accepts: 10 seconds.
pub const MIN_EXPIRY: Duration = Duration::from_secs(10);
/// The longest expiry window [`ExpiryWindow::new`] accepts: 24 hours.
pub const MAX_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a command may stay unacknowledged before it expires, counted from when it was
/// queued. Five minutes by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpiryWindow(Duration);

impl ExpiryWindow {
    /// Five minutes, as in the brief.
    pub const DEFAULT: ExpiryWindow = ExpiryWindow(Duration::from_secs(5 * 60));

    /// A window of `duration`, between [`MIN_EXPIRY`] and [`MAX_EXPIRY`] inclusive.
    ///
    /// # Errors
    ///
    /// [`InvalidExpiryWindow`] when `duration` is outside those bounds.
    pub fn new(duration: Duration) -> Result<Self, InvalidExpiryWindow> {
        if (MIN_EXPIRY..=MAX_EXPIRY).contains(&duration) {
            Ok(Self(duration))
        } else {
            Err(InvalidExpiryWindow(duration))
        }
    }

    /// The window's length.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Whether a command queued at `created_at` is older than this window at `now` (both by
    /// the server's clock). Exactly the window's age is not yet expired; a `created_at`
    /// in the future (clock stepped back) is not expired.
    pub fn is_expired(self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match (now - created_at).to_std() {
            Ok(age) => age > self.0,
            Err(_) => false,
        }
    }
}

impl Default for ExpiryWindow {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An expiry window outside [`MIN_EXPIRY`]..=[`MAX_EXPIRY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("command expiry window: {0:?} is outside 10s..=24h")]
pub struct InvalidExpiryWindow(pub Duration);

/// The status a command should have at `now`: `expired` when it is `pending` or `sent`
/// and older than `window`, otherwise `status` unchanged. Terminal statuses never change.
pub fn expire(
    status: CommandStatus,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    window: ExpiryWindow,
) -> CommandStatus {
    let open = matches!(status, CommandStatus::Pending | CommandStatus::Sent);
    if open && window.is_expired(created_at, now) {
        CommandStatus::Expired
    } else {
        status
    }
}

/// Whether a command may be handed to the daemon at `now`: it is `pending` and has not
/// expired. Sending an expired command would let it take effect after the platform gave
/// up on it.
pub fn deliverable(
    status: CommandStatus,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    window: ExpiryWindow,
) -> bool {
    status == CommandStatus::Pending && !window.is_expired(created_at, now)
}

/// What the daemon said about a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckResult {
    /// Its effect is in place and durable.
    Acked,
    /// It could not be carried out.
    Failed,
}

impl AckResult {
    /// The command status this result leads to.
    pub const fn status(self) -> CommandStatus {
        match self {
            AckResult::Acked => CommandStatus::Acked,
            AckResult::Failed => CommandStatus::Failed,
        }
    }
}

/// What the server should do with an ack, given the command's stored status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckEffect {
    /// Store the new status (`acked` or `failed`) and apply the result to the agent.
    Applied(CommandStatus),
    /// The command already has a result (a re-sent ack): change nothing, but confirm the
    /// ack to the daemon so it stops sending it.
    Duplicate,
    /// The command expired or was superseded first: keep its status, record that an ack
    /// arrived late, and change no agent state (the next status report tells the truth).
    /// Confirm the ack to the daemon.
    Late,
}

impl AckEffect {
    /// Whether the agent's state should follow the ack.
    pub const fn changes_agent(self) -> bool {
        matches!(self, AckEffect::Applied(_))
    }
}

/// What an ack does to a command whose stored status is `current`.
///
/// An ack for a command still recorded as `pending` is applied as if it had been marked
/// `sent` first: the daemon only learns of a command from a heartbeat response, so an
/// ack proves delivery even when recording `sent` was lost.
///
/// Apply [`expire`] before this if the expiry sweep may not have run: an ack is judged
/// against the status as stored.
pub const fn ack_outcome(current: CommandStatus, ack: AckResult) -> AckEffect {
    match current {
        CommandStatus::Pending | CommandStatus::Sent => AckEffect::Applied(ack.status()),
        CommandStatus::Acked | CommandStatus::Failed => AckEffect::Duplicate,
        CommandStatus::Expired | CommandStatus::Superseded => AckEffect::Late,
    }
}

/// Whether a `newer` command for an agent supersedes an `older` one for the same agent
/// that has not been sent yet; see the table in the [module docs](self).
pub const fn supersedes(newer: CommandKind, older: CommandKind) -> bool {
    use CommandKind::*;
    match newer {
        Deploy => false,
        Start | Stop | Restart => matches!(older, Start | Stop | Restart),
        Undeploy => true,
        UpdateConfig => matches!(older, UpdateConfig),
        Upgrade => matches!(older, Upgrade),
        Logs | Backup | Restore => false,
    }
}

/// The ids of the commands among `queued` (one agent's commands, any statuses) that a
/// newly queued `newer` command supersedes: those still `pending` whose kind
/// [`supersedes`] says it replaces. Mark each `superseded`.
pub fn superseded_by(
    newer: CommandKind,
    queued: impl IntoIterator<Item = (CommandId, CommandKind, CommandStatus)>,
) -> Vec<CommandId> {
    queued
        .into_iter()
        .filter(|(_, kind, status)| *status == CommandStatus::Pending && supersedes(newer, *kind))
        .map(|(id, _, _)| id)
        .collect()
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
