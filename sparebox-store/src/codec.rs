//! Conversions shared by the backends: enum names, JSON columns, slot checks, acks and
//! database errors.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sparebox_core::command::{ack_outcome, superseded_by, AckEffect, AckResult};
use sparebox_core::slots::Hardware;
use sparebox_core::{
    AgentId, CommandId, CommandKind, CommandStatus, HostId, HostPolicy, Refusal, Reserve, SlotPlan,
    Tier,
};
use sparebox_protocol::{AckStatus, CommandAck, HostHardware};

use crate::{
    AgentRecord, AgentUpdate, CommandRecord, HostSettings, NewAccount, NewAgent, NewApiToken,
    NewCommand, Role, StoreError, StoreResult,
};

/// Parses a stored enum name, reporting the column when the name is unknown.
pub(crate) fn parse_name<T>(column: &'static str, value: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|err: T::Err| StoreError::Corrupt {
        column,
        message: err.to_string(),
    })
}

/// Decodes a stored JSON value into `T`.
pub(crate) fn from_json<T: DeserializeOwned>(
    column: &'static str,
    value: serde_json::Value,
) -> StoreResult<T> {
    serde_json::from_value(value).map_err(|err| StoreError::Corrupt {
        column,
        message: err.to_string(),
    })
}

/// Encodes `value` as a JSON value for a JSON column.
pub(crate) fn to_json<T: Serialize>(
    column: &'static str,
    value: &T,
) -> StoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|err| StoreError::Invalid(format!("{column}: {err}")))
}

/// The isolation mode's storage name.
pub(crate) fn parse_isolation(value: &str) -> StoreResult<sparebox_protocol::IsolationMode> {
    from_json(
        "hosts.isolation",
        serde_json::Value::String(value.to_owned()),
    )
}

/// Checks that a host with `hardware` (from its last heartbeat, if any) and `settings` can
/// take one more agent of `tier` next to agents of the tiers in `holding`, using
/// [`SlotPlan`]. The refusal becomes [`StoreError::NotOffered`], [`StoreError::HostAtCap`]
/// or [`StoreError::NoSlot`].
pub(crate) fn check_placement(
    host: HostId,
    hardware: Option<&HostHardware>,
    settings: &HostSettings,
    reserve: &Reserve,
    holding: Vec<Tier>,
    tier: Tier,
) -> StoreResult<()> {
    let no_slot = StoreError::NoSlot { host, tier };
    let policy = HostPolicy::new(
        settings.offered.iter().copied(),
        settings.max_agents,
        *reserve,
    )
    .map_err(|err| StoreError::Invalid(format!("host {host} settings: {err}")))?;
    if !policy.offers(tier) {
        return Err(StoreError::NotOffered { host, tier });
    }
    let Some(hardware) = hardware else {
        return Err(no_slot);
    };
    let hardware = Hardware::new(
        hardware.ram_mb,
        u64::from(hardware.cpu_cores) * 1000,
        hardware.disk_gb,
    );
    // Hardware beyond the limits the slot maths accepts cannot be planned: no slot.
    let Ok(plan) = SlotPlan::new(hardware, policy, holding) else {
        return Err(no_slot);
    };
    match plan.refusal(tier) {
        None => Ok(()),
        Some(Refusal::NotOffered(tier)) => Err(StoreError::NotOffered { host, tier }),
        Some(Refusal::AtCap { max }) => Err(StoreError::HostAtCap { host, max }),
        Some(Refusal::Insufficient { .. }) => Err(no_slot),
    }
}

/// Roles as stored: their names, comma-separated, in order.
pub(crate) fn roles_text(roles: &BTreeSet<Role>) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses stored roles.
pub(crate) fn parse_roles(text: &str) -> StoreResult<BTreeSet<Role>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            Role::parse(s).ok_or_else(|| StoreError::Corrupt {
                column: "accounts.roles",
                message: format!("unknown role {s:?}"),
            })
        })
        .collect()
}

/// Offered tiers as stored: their names, comma-separated, smallest first.
pub(crate) fn tiers_text(tiers: &BTreeSet<Tier>) -> String {
    tiers
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses stored offered tiers.
pub(crate) fn parse_tiers(text: &str) -> StoreResult<BTreeSet<Tier>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse_name("hosts.offered_tiers", s))
        .collect()
}

/// A stored agent cap.
pub(crate) fn parse_cap(value: Option<i64>) -> StoreResult<Option<u32>> {
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| StoreError::Corrupt {
                column: "hosts.max_agents",
                message: format!("{v} is out of range"),
            })
        })
        .transpose()
}

/// Checks that an account's first token is for that account.
pub(crate) fn check_first_token(new: &NewAccount, token: &NewApiToken) -> StoreResult<()> {
    if token.account != new.id {
        return Err(StoreError::Invalid(format!(
            "first token {} is for account {}, not account {}",
            token.id, token.account, new.id
        )));
    }
    Ok(())
}

/// What `ack` does to a command whose stored status is `current`, by the rules in
/// [`sparebox_core::command::ack_outcome`].
pub(crate) fn ack_effect(current: CommandStatus, ack: &CommandAck) -> AckEffect {
    let result = match ack.status {
        AckStatus::Acked => AckResult::Acked,
        AckStatus::Failed => AckResult::Failed,
    };
    ack_outcome(current, result)
}

/// The ids among one agent's `queued` commands that a new command of kind `newer`
/// supersedes, by the rules in [`sparebox_core::command::superseded_by`].
pub(crate) fn superseded(newer: CommandKind, queued: &[CommandRecord]) -> Vec<CommandId> {
    superseded_by(newer, queued.iter().map(|c| (c.id, c.kind, c.status)))
}

/// The error text to store with an ack: only failures carry one.
pub(crate) fn ack_error(ack: &CommandAck) -> Option<String> {
    match ack.status {
        AckStatus::Acked => None,
        AckStatus::Failed => Some(
            ack.error
                .clone()
                .unwrap_or_else(|| "the host reported failure without a message".to_owned()),
        ),
    }
}

/// Applies an [`AgentUpdate`] to an agent read inside the updating transaction.
pub(crate) fn apply_update(agent: &mut AgentRecord, update: AgentUpdate) {
    if let Some(state) = update.state {
        agent.state = state;
    }
    if let Some(stage) = update.deploy_stage {
        agent.deploy_stage = stage;
    }
    if let Some(error) = update.error {
        agent.error = error;
    }
    if let Some((report, at)) = update.report {
        agent.last_report = Some(report);
        agent.last_report_at = Some(at);
    }
    if let Some(config) = update.openclaw_config {
        agent.openclaw_config = config;
    }
    if let Some(files) = update.workspace_files {
        agent.workspace_files = files;
    }
    if let Some(secrets) = update.sealed_secrets {
        agent.sealed_secrets = secrets;
    }
    if let Some(image) = update.image {
        agent.image = image;
    }
}

/// Converts a `limit` argument to a SQL `LIMIT`.
pub(crate) fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

/// Groups decoded command rows by agent, keeping their order within each agent.
pub(crate) fn group_by_agent(
    commands: impl Iterator<Item = StoreResult<CommandRecord>>,
) -> StoreResult<BTreeMap<AgentId, Vec<CommandRecord>>> {
    let mut grouped: BTreeMap<AgentId, Vec<CommandRecord>> = BTreeMap::new();
    for command in commands {
        let command = command?;
        grouped.entry(command.agent).or_default().push(command);
    }
    Ok(grouped)
}

/// Maps a database error, turning unique-key violations into [`StoreError::Conflict`] and
/// foreign-key violations into [`StoreError::NotFound`] for the row the caller named.
pub(crate) fn db_error(
    err: sqlx::Error,
    conflict: impl FnOnce() -> String,
    missing: impl FnOnce() -> StoreError,
) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Conflict(conflict());
        }
        if db.is_foreign_key_violation() {
            return missing();
        }
    }
    StoreError::from(err)
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(err.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(format!("migrations: {err}"))
    }
}

/// Checks that a new agent's first command is addressed to that agent on its host.
pub(crate) fn check_first_command(new: &NewAgent, command: &NewCommand) -> StoreResult<()> {
    if command.agent != new.id || command.host != new.host {
        return Err(StoreError::Invalid(format!(
            "first command {} is for agent {} on host {}, not agent {} on host {}",
            command.id, command.agent, command.host, new.id, new.host
        )));
    }
    Ok(())
}
