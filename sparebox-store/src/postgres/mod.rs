//! The PostgreSQL backend: several server replicas sharing one database.
//!
//! Migrations (`migrations/postgres/`) are applied at connect; concurrent replicas starting
//! together are safe (sqlx serialises migrations with an advisory lock). Atomic operations
//! lock rows, so replicas never hand out the same command or the same slot twice:
//!
//! | operation | how |
//! |---|---|
//! | [`crate::Store::create_agent`] | locks the host row (`SELECT ... FOR NO KEY UPDATE`), so creates on one host run one at a time |
//! | [`crate::Store::deliver_commands`] | `SELECT ... FOR UPDATE SKIP LOCKED` then `UPDATE`, one transaction |
//! | [`crate::Store::record_ack`], [`crate::Store::enqueue_command`], [`crate::Store::expire_commands`] | lock the rows they change, in `created_at` order |
//!
//! Wakeups use `LISTEN`/`NOTIFY`: queueing a command notifies inside its transaction, and
//! every `PgStore` (in any replica) forwards notifications to its
//! [`crate::Store::host_wakeups`] receivers.

mod backups;
mod billing;
mod listener;
mod logs;
mod moves;
mod reports;
mod rows;
mod samples;
mod store;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use sparebox_core::{AgentState, HostId, Tier};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::broadcast;
use uuid::Uuid;

use self::listener::Forwarder;
use self::rows::{API_TOKEN_COLUMNS, COMMAND_COLUMNS, HOST_COLUMNS};
use crate::codec::{db_error, parse_name, superseded, to_json};
use crate::{
    wakeup, ApiTokenRecord, CommandRecord, HostRecord, NewApiToken, NewCommand, StoreError,
    StoreResult,
};

/// The PostgreSQL schema migrations, applied by [`PgStore::connect`].
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections per store, including the one that listens for wakeups.
const MAX_CONNECTIONS: u32 = 10;

/// A [`crate::Store`] in a PostgreSQL database, shareable by several server replicas.
///
/// Cloning is cheap and shares the pool, the wakeup channel and its listening task; the
/// task stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    wakeups: broadcast::Sender<HostId>,
    _forwarder: Arc<Forwarder>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database`), applies
    /// migrations and starts listening for host wakeups.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the URL is malformed, the server cannot be reached or
    /// a migration fails. The message never includes the URL, which may hold a password.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StoreError::Database(format!("postgres url: {err}")))?;
        Self::connect_with(options).await
    }

    /// Like [`PgStore::connect`], with options built by the caller.
    ///
    /// # Errors
    ///
    /// As for [`PgStore::connect`].
    pub async fn connect_with(options: PgConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|err| StoreError::Database(format!("connect to postgres: {err}")))?;
        MIGRATOR.run(&pool).await?;
        let wakeups = wakeup::channel();
        let forwarder = Forwarder::start(&pool, wakeups.clone()).await?;
        Ok(Self {
            pool,
            wakeups,
            _forwarder: Arc::new(forwarder),
        })
    }
}

type Tx = Transaction<'static, Postgres>;

/// Locks the host row and returns the host.
async fn lock_host(tx: &mut Tx, host: HostId) -> StoreResult<HostRecord> {
    // NO KEY UPDATE serialises creates (and heartbeats and settings changes) on the host
    // without blocking the foreign-key checks of commands and events inserted for its
    // agents meanwhile.
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1 FOR NO KEY UPDATE");
    let row = sqlx::query(&sql)
        .bind(host.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found("host", host))?;
    rows::host(&row)
}

async fn insert_api_token(tx: &mut Tx, new: &NewApiToken) -> StoreResult<ApiTokenRecord> {
    let sql = format!(
        "INSERT INTO api_tokens (id, account, name, token_hash, prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {API_TOKEN_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new.id)
        .bind(new.account)
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(&new.prefix)
        .bind(new.created_at)
        .fetch_one(&mut **tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("api token {}", new.id),
                || not_found("account", new.account),
            )
        })?;
    rows::api_token(&row)
}

/// The tiers of a host's agents that hold a slot.
async fn slot_holders(tx: &mut Tx, host: HostId) -> StoreResult<Vec<Tier>> {
    let rows = sqlx::query("SELECT tier, state FROM agents WHERE host = $1")
        .bind(host.0)
        .fetch_all(&mut **tx)
        .await?;
    let mut tiers = Vec::with_capacity(rows.len());
    for row in rows {
        let state: String = row.try_get("state")?;
        if parse_name::<AgentState>("agents.state", &state)?.holds_slot() {
            let tier: String = row.try_get("tier")?;
            tiers.push(parse_name("agents.tier", &tier)?);
        }
    }
    Ok(tiers)
}

async fn insert_command(tx: &mut Tx, new: &NewCommand) -> StoreResult<CommandRecord> {
    let sql = format!(
        "INSERT INTO agent_commands (id, agent, host, kind, status, created_at, params, image) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) RETURNING {COMMAND_COLUMNS}"
    );
    let params = new
        .params
        .as_ref()
        .map(|p| to_json("agent_commands.params", p))
        .transpose()?;
    let row = sqlx::query(&sql)
        .bind(new.id.0)
        .bind(new.agent.0)
        .bind(new.host.0)
        .bind(new.kind.as_str())
        .bind(new.created_at)
        .bind(params.map(sqlx::types::Json))
        .bind(&new.image)
        .fetch_one(&mut **tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("command {}", new.id),
                || not_found("agent", new.agent),
            )
        })?;
    rows::command(&row)
}

/// Marks `superseded` the agent's pending commands that `new` replaces.
async fn supersede_pending(tx: &mut Tx, new: &NewCommand) -> StoreResult<()> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE agent = $1 AND status = 'pending' \
         ORDER BY created_at, seq FOR UPDATE"
    );
    let rows = sqlx::query(&sql)
        .bind(new.agent.0)
        .fetch_all(&mut **tx)
        .await?;
    let queued = rows
        .iter()
        .map(rows::command)
        .collect::<StoreResult<Vec<_>>>()?;
    let ids: Vec<Uuid> = superseded(new.kind, &queued)
        .into_iter()
        .map(|id| id.0)
        .collect();
    if !ids.is_empty() {
        sqlx::query("UPDATE agent_commands SET status = 'superseded' WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Runs `sql` (an `UPDATE ... WHERE id = ANY($1) RETURNING`) and returns the rows in the
/// order of `ids`.
async fn update_in_order(
    tx: &mut Tx,
    query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ids: &[Uuid],
) -> StoreResult<Vec<CommandRecord>> {
    let rows = query.fetch_all(&mut **tx).await?;
    let mut by_id = rows
        .iter()
        .map(rows::command)
        .map(|c| c.map(|c| (c.id.0, c)))
        .collect::<StoreResult<HashMap<_, _>>>()?;
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}
