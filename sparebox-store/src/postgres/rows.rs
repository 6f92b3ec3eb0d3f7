//! Decoding PostgreSQL rows into records. Ids are UUIDs, timestamps TIMESTAMPTZ, JSON
//! columns JSONB.

use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

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

fn json<T: DeserializeOwned>(row: &PgRow, column: &'static str) -> StoreResult<T> {
    let Json(value): Json<serde_json::Value> = row.try_get(column)?;
    from_json(column, value)
}

fn opt_json<T: DeserializeOwned>(row: &PgRow, column: &'static str) -> StoreResult<Option<T>> {
    let value: Option<Json<serde_json::Value>> = row.try_get(column)?;
    value.map(|Json(v)| from_json(column, v)).transpose()
}

fn name<T>(row: &PgRow, column: &'static str) -> StoreResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    parse_name(column, &text)
}

/// Decodes an account row.
pub(super) fn account(row: &PgRow) -> StoreResult<AccountRecord> {
    let roles: String = row.try_get("roles")?;
    Ok(AccountRecord {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        roles: parse_roles(&roles)?,
        created_at: row.try_get("created_at")?,
    })
}

/// Decodes a session joined with its account.
pub(super) fn session(row: &PgRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        account: account(row)?,
        csrf_hash: row.try_get("csrf_hash")?,
        created_at: row.try_get("session_created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Decodes an API token row.
pub(super) fn api_token(row: &PgRow) -> StoreResult<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Decodes a host row.
pub(super) fn host(row: &PgRow) -> StoreResult<HostRecord> {
    let isolation: Option<String> = row.try_get("isolation")?;
    Ok(HostRecord {
        id: row.try_get::<uuid::Uuid, _>("id")?.into(),
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        key_prefix: row.try_get("key_prefix")?,
        hardware: opt_json(row, "hardware")?,
        isolation: isolation.as_deref().map(parse_isolation).transpose()?,
        daemon_version: row.try_get("daemon_version")?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        settings: host_settings(row)?,
        created_at: row.try_get("created_at")?,
    })
}

fn host_settings(row: &PgRow) -> StoreResult<HostSettings> {
    let offered: String = row.try_get("offered_tiers")?;
    let cap: Option<i32> = row.try_get("max_agents")?;
    Ok(HostSettings {
        offered: parse_tiers(&offered)?,
        prices: json(row, "prices")?,
        max_agents: parse_cap(cap.map(i64::from))?,
        region: row.try_get("region")?,
    })
}

/// Decodes an agent row.
pub(super) fn agent(row: &PgRow) -> StoreResult<AgentRecord> {
    let stage: Option<String> = row.try_get("deploy_stage")?;
    Ok(AgentRecord {
        id: row.try_get::<uuid::Uuid, _>("id")?.into(),
        host: row.try_get::<uuid::Uuid, _>("host")?.into(),
        owner: row.try_get("owner")?,
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
        last_report_at: row.try_get("last_report_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Decodes a command row.
pub(super) fn command(row: &PgRow) -> StoreResult<CommandRecord> {
    Ok(CommandRecord {
        id: row.try_get::<uuid::Uuid, _>("id")?.into(),
        agent: row.try_get::<uuid::Uuid, _>("agent")?.into(),
        host: row.try_get::<uuid::Uuid, _>("host")?.into(),
        kind: name(row, "kind")?,
        status: name(row, "status")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        acked_at: row.try_get("acked_at")?,
        error: row.try_get("error")?,
        late_ack: row.try_get("late_ack")?,
        params: opt_json(row, "params")?,
        image: row.try_get("image")?,
    })
}

/// Decodes an event row.
pub(super) fn event(row: &PgRow) -> StoreResult<AgentEventRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(AgentEventRecord {
        agent: row.try_get::<uuid::Uuid, _>("agent")?.into(),
        kind: AgentEventKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            column: "agent_events.kind",
            message: format!("unknown event kind {kind:?}"),
        })?,
        message: row.try_get("message")?,
        at: row.try_get("at")?,
    })
}

/// Columns selected for a checkout.
pub(super) const CHECKOUT_COLUMNS: &str = "id, agent, owner, host, name, tier, image, \
     openclaw_config, workspace_files, sealed_secrets, price_cents, created_at, completed_at";

/// Columns selected for a subscription.
pub(super) const SUBSCRIPTION_COLUMNS: &str = "id, customer, checkout, owner, agent, host, tier, \
     price_cents, status, created_at, updated_at";

fn price(row: &PgRow, column: &'static str) -> StoreResult<u32> {
    let cents: i64 = row.try_get(column)?;
    u32::try_from(cents).map_err(|_| StoreError::Corrupt {
        column,
        message: format!("price {cents} is out of range"),
    })
}

/// Decodes a checkout row.
pub(super) fn checkout(row: &PgRow) -> StoreResult<crate::CheckoutRecord> {
    Ok(crate::CheckoutRecord {
        id: row.try_get("id")?,
        agent: crate::NewAgent {
            id: row.try_get::<uuid::Uuid, _>("agent")?.into(),
            host: row.try_get::<uuid::Uuid, _>("host")?.into(),
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            tier: name(row, "tier")?,
            image: row.try_get("image")?,
            openclaw_config: json(row, "openclaw_config")?,
            workspace_files: json(row, "workspace_files")?,
            sealed_secrets: row.try_get("sealed_secrets")?,
            created_at: row.try_get("created_at")?,
        },
        price_cents: price(row, "price_cents")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// Decodes a subscription row.
pub(super) fn subscription(row: &PgRow) -> StoreResult<crate::SubscriptionRecord> {
    Ok(crate::SubscriptionRecord {
        id: row.try_get("id")?,
        customer: row.try_get("customer")?,
        checkout: row.try_get("checkout")?,
        owner: row.try_get("owner")?,
        agent: row.try_get::<uuid::Uuid, _>("agent")?.into(),
        host: row.try_get::<uuid::Uuid, _>("host")?.into(),
        tier: name(row, "tier")?,
        price_cents: price(row, "price_cents")?,
        status: name(row, "status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
