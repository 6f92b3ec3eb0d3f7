//! Decoding SQLite rows into records. Ids are UUID text, timestamps INTEGER microseconds
//! since the Unix epoch, JSON columns TEXT.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::codec::{from_json, parse_cap, parse_isolation, parse_name, parse_roles, parse_tiers};
use crate::{
    AccountRecord, AgentEventKind, AgentEventRecord, AgentRecord, ApiTokenRecord, CommandRecord,
    HostRecord, HostSettings, SessionRecord, StoreError, StoreResult,
};

/// Columns selected for an account.
pub(super) const ACCOUNT_COLUMNS: &str = "id, email, name, roles, created_at";

/// Columns selected for an API token.
pub(super) const API_TOKEN_COLUMNS: &str = "id, account, name, prefix, created_at";

/// Columns selected for a host.
pub(super) const HOST_COLUMNS: &str = "id, owner, name, key_prefix, hardware, isolation, \
     daemon_version, last_heartbeat_at, offered_tiers, prices, max_agents, region, created_at";

/// Columns selected for an agent.
pub(super) const AGENT_COLUMNS: &str = "id, host, owner, name, tier, image, openclaw_config, \
     workspace_files, sealed_secrets, state, deploy_stage, error, last_report, last_report_at, \
     created_at";

/// Columns selected for a command.
pub(super) const COMMAND_COLUMNS: &str =
    "id, agent, host, kind, status, created_at, sent_at, acked_at, error, late_ack, params, image";

/// A timestamp as stored: microseconds since the Unix epoch.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time(row: &SqliteRow, column: &'static str) -> StoreResult<DateTime<Utc>> {
    let micros: i64 = row.try_get(column)?;
    from_micros(column, micros)
}

fn opt_time(row: &SqliteRow, column: &'static str) -> StoreResult<Option<DateTime<Utc>>> {
    let micros: Option<i64> = row.try_get(column)?;
    micros.map(|m| from_micros(column, m)).transpose()
}

fn from_micros(column: &'static str, micros: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        column,
        message: format!("timestamp {micros} is out of range"),
    })
}

pub(super) fn uuid(row: &SqliteRow, column: &'static str) -> StoreResult<Uuid> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|err| StoreError::Corrupt {
        column,
        message: format!("{text:?}: {err}"),
    })
}

fn json<T: DeserializeOwned>(row: &SqliteRow, column: &'static str) -> StoreResult<T> {
    let text: String = row.try_get(column)?;
    parse_json(column, &text)
}

fn opt_json<T: DeserializeOwned>(row: &SqliteRow, column: &'static str) -> StoreResult<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| parse_json(column, &t)).transpose()
}

fn parse_json<T: DeserializeOwned>(column: &'static str, text: &str) -> StoreResult<T> {
    let value = serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        column,
        message: err.to_string(),
    })?;
    from_json(column, value)
}

fn name<T>(row: &SqliteRow, column: &'static str) -> StoreResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    parse_name(column, &text)
}

/// Decodes an account row.
pub(super) fn account(row: &SqliteRow) -> StoreResult<AccountRecord> {
    let roles: String = row.try_get("roles")?;
    Ok(AccountRecord {
        id: uuid(row, "id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        roles: parse_roles(&roles)?,
        created_at: time(row, "created_at")?,
    })
}

/// Decodes a session joined with its account.
pub(super) fn session(row: &SqliteRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        account: account(row)?,
        csrf_hash: row.try_get("csrf_hash")?,
        created_at: time(row, "session_created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

/// Decodes an API token row.
pub(super) fn api_token(row: &SqliteRow) -> StoreResult<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: uuid(row, "id")?,
        account: uuid(row, "account")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: time(row, "created_at")?,
    })
}

/// Decodes a host row.
pub(super) fn host(row: &SqliteRow) -> StoreResult<HostRecord> {
    let isolation: Option<String> = row.try_get("isolation")?;
    Ok(HostRecord {
        id: uuid(row, "id")?.into(),
        owner: uuid(row, "owner")?,
        name: row.try_get("name")?,
        key_prefix: row.try_get("key_prefix")?,
        hardware: opt_json(row, "hardware")?,
        isolation: isolation.as_deref().map(parse_isolation).transpose()?,
        daemon_version: row.try_get("daemon_version")?,
        last_heartbeat_at: opt_time(row, "last_heartbeat_at")?,
        settings: host_settings(row)?,
        created_at: time(row, "created_at")?,
    })
}

fn host_settings(row: &SqliteRow) -> StoreResult<HostSettings> {
    let offered: String = row.try_get("offered_tiers")?;
    Ok(HostSettings {
        offered: parse_tiers(&offered)?,
        prices: json(row, "prices")?,
        max_agents: parse_cap(row.try_get("max_agents")?)?,
        region: row.try_get("region")?,
    })
}

/// Decodes an agent row.
pub(super) fn agent(row: &SqliteRow) -> StoreResult<AgentRecord> {
    let stage: Option<String> = row.try_get("deploy_stage")?;
    Ok(AgentRecord {
        id: uuid(row, "id")?.into(),
        host: uuid(row, "host")?.into(),
        owner: uuid(row, "owner")?,
        name: row.try_get("name")?,
        tier: name(row, "tier")?,
        image: row.try_get("image")?,
        openclaw_config: json(row, "openclaw_config")?,
        workspace_files: json(row, "workspace_files")?,
        sealed_secrets: row.try_get("sealed_secrets")?,
        state: name(row, "state")?,
        deploy_stage: stage.map(|s| parse_name("deploy_stage", &s)).transpose()?,
        error: row.try_get("error")?,
        last_report: opt_json(row, "last_report")?,
        last_report_at: opt_time(row, "last_report_at")?,
        created_at: time(row, "created_at")?,
    })
}

/// Decodes a command row.
pub(super) fn command(row: &SqliteRow) -> StoreResult<CommandRecord> {
    Ok(CommandRecord {
        id: uuid(row, "id")?.into(),
        agent: uuid(row, "agent")?.into(),
        host: uuid(row, "host")?.into(),
        kind: name(row, "kind")?,
        status: name(row, "status")?,
        created_at: time(row, "created_at")?,
        sent_at: opt_time(row, "sent_at")?,
        acked_at: opt_time(row, "acked_at")?,
        error: row.try_get("error")?,
        late_ack: row.try_get("late_ack")?,
        params: opt_json(row, "params")?,
        image: row.try_get("image")?,
    })
}

/// Decodes an event row.
pub(super) fn event(row: &SqliteRow) -> StoreResult<AgentEventRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(AgentEventRecord {
        agent: uuid(row, "agent")?.into(),
        kind: AgentEventKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            column: "agent_events.kind",
            message: format!("unknown event kind {kind:?}"),
        })?,
        message: row.try_get("message")?,
        at: time(row, "at")?,
    })
}

/// Columns selected for a checkout.
pub(super) const CHECKOUT_COLUMNS: &str = "id, agent, owner, host, name, tier, image, \
     openclaw_config, workspace_files, sealed_secrets, price_cents, created_at, completed_at";

/// Columns selected for a subscription.
pub(super) const SUBSCRIPTION_COLUMNS: &str = "id, customer, checkout, owner, agent, host, tier, \
     price_cents, status, created_at, updated_at";

fn price(row: &SqliteRow, column: &'static str) -> StoreResult<u32> {
    let cents: i64 = row.try_get(column)?;
    u32::try_from(cents).map_err(|_| StoreError::Corrupt {
        column,
        message: format!("price {cents} is out of range"),
    })
}

/// Decodes a checkout row.
pub(super) fn checkout(row: &SqliteRow) -> StoreResult<crate::CheckoutRecord> {
    Ok(crate::CheckoutRecord {
        id: uuid(row, "id")?,
        agent: crate::NewAgent {
            id: uuid(row, "agent")?.into(),
            host: uuid(row, "host")?.into(),
            owner: uuid(row, "owner")?,
            name: row.try_get("name")?,
            tier: name(row, "tier")?,
            image: row.try_get("image")?,
            openclaw_config: json(row, "openclaw_config")?,
            workspace_files: json(row, "workspace_files")?,
            sealed_secrets: row.try_get("sealed_secrets")?,
            created_at: time(row, "created_at")?,
        },
        price_cents: price(row, "price_cents")?,
        completed_at: opt_time(row, "completed_at")?,
    })
}

/// Decodes a subscription row.
pub(super) fn subscription(row: &SqliteRow) -> StoreResult<crate::SubscriptionRecord> {
    Ok(crate::SubscriptionRecord {
        id: row.try_get("id")?,
        customer: row.try_get("customer")?,
        checkout: uuid(row, "checkout")?,
        owner: uuid(row, "owner")?,
        agent: uuid(row, "agent")?.into(),
        host: uuid(row, "host")?.into(),
        tier: name(row, "tier")?,
        price_cents: price(row, "price_cents")?,
        status: name(row, "status")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}
