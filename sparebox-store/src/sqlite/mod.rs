//! The embedded SQLite backend: one database file, one server node.
//!
//! The file is opened in WAL mode with foreign keys on and a busy timeout, and migrations
//! (`migrations/sqlite/`) are applied at open. Every read-then-write operation runs in a
//! `BEGIN IMMEDIATE` transaction, so it holds SQLite's single write lock from its first
//! read: two stores on the same file (or two tasks on one store) cannot both take a host's
//! last slot or deliver the same command. Within one store every write goes through a
//! single writing connection, queued in the pool rather than retried by SQLite's busy
//! handler; reads use a pool of their own.
//!
//! Ids are stored as UUID text, timestamps as INTEGER microseconds since the Unix epoch
//! (UTC), JSON as TEXT.

mod backups;
mod billing;
mod logs;
mod moves;
mod reports;
mod rows;
mod samples;
mod store;

use std::path::Path;
use std::time::Duration;

use sparebox_core::{AgentState, CommandId, HostId, Tier};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::broadcast;

use self::rows::{micros, API_TOKEN_COLUMNS, COMMAND_COLUMNS, HOST_COLUMNS};
use crate::codec::{db_error, parse_name, superseded, to_json};
use crate::{
    wakeup, ApiTokenRecord, CommandRecord, HostRecord, NewApiToken, NewCommand, StoreError,
    StoreResult,
};

/// The SQLite schema migrations, applied by [`SqliteStore::open`].
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reading connections per file-backed store; they read concurrently thanks to WAL.
const READ_CONNECTIONS: u32 = 8;

/// A [`crate::Store`] in a SQLite database.
///
/// Cloning is cheap and shares the connection pool and the wakeup channel. Wakeups
/// ([`crate::Store::host_wakeups`]) are in-process: they reach this store and its clones, not
/// another `SqliteStore` opened on the same file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Connections for reads.
    pool: SqlitePool,
    /// The one connection that writes. SQLite lets one connection write at a time; with
    /// several trying, the losers sleep in SQLite's busy handler (for up to 100 ms a
    /// try) while the lock is often free again within a millisecond. Queueing writers
    /// for a single connection here hands the lock over as soon as it is released.
    writer: SqlitePool,
    wakeups: broadcast::Sender<HostId>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file at `path` and applies migrations.
    ///
    /// Re-opening an existing database keeps its data and applies only new migrations.
    /// Open a fresh file from one process at a time: two processes creating the same new
    /// file at once may both try to apply the first migration.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the file cannot be opened or a migration fails.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let open_error = |err| StoreError::Database(format!("open {}: {err}", path.display()));
        // A connection to a local file does not go stale, so the pool's check before each
        // use (a ping, one more hand-off to the connection's thread) only costs time.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Ok(Self {
            pool,
            writer,
            wakeups: wakeup::channel(),
        })
    }

    /// A private in-memory database, for tests. It lives as long as the store (and its
    /// clones) and uses a single connection, so operations run one at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when SQLite cannot start or a migration fails.
    pub async fn open_in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            pool,
            wakeups: wakeup::channel(),
        })
    }

    /// A transaction that holds the write lock from its start.
    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The host as stored, or `NotFound` when it does not exist.
async fn host_in(tx: &mut Transaction<'static, Sqlite>, host: HostId) -> StoreResult<HostRecord> {
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(host.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found("host", host))?;
    rows::host(&row)
}

/// The tiers of a host's agents that hold a slot.
async fn slot_holders(
    tx: &mut Transaction<'static, Sqlite>,
    host: HostId,
) -> StoreResult<Vec<Tier>> {
    let rows = sqlx::query("SELECT tier, state FROM agents WHERE host = ?")
        .bind(host.to_string())
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

async fn insert_api_token(
    tx: &mut Transaction<'static, Sqlite>,
    new: &NewApiToken,
) -> StoreResult<ApiTokenRecord> {
    let sql = format!(
        "INSERT INTO api_tokens (id, account, name, token_hash, prefix, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING {API_TOKEN_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new.id.to_string())
        .bind(new.account.to_string())
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(&new.prefix)
        .bind(micros(new.created_at))
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

async fn insert_command(
    tx: &mut Transaction<'static, Sqlite>,
    new: &NewCommand,
) -> StoreResult<CommandRecord> {
    let sql = format!(
        "INSERT INTO agent_commands (id, agent, host, kind, status, created_at, params, image) \
         VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING {COMMAND_COLUMNS}"
    );
    let params = new
        .params
        .as_ref()
        .map(|p| to_json("agent_commands.params", p))
        .transpose()?;
    let row = sqlx::query(&sql)
        .bind(new.id.to_string())
        .bind(new.agent.to_string())
        .bind(new.host.to_string())
        .bind(new.kind.as_str())
        .bind(micros(new.created_at))
        .bind(params.map(|p| p.to_string()))
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
async fn supersede_pending(
    tx: &mut Transaction<'static, Sqlite>,
    new: &NewCommand,
) -> StoreResult<()> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE agent = ? AND status = 'pending'"
    );
    let rows = sqlx::query(&sql)
        .bind(new.agent.to_string())
        .fetch_all(&mut **tx)
        .await?;
    let queued = rows
        .iter()
        .map(rows::command)
        .collect::<StoreResult<Vec<_>>>()?;
    for id in superseded(new.kind, &queued) {
        sqlx::query("UPDATE agent_commands SET status = 'superseded' WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn select_command(
    tx: &mut Transaction<'static, Sqlite>,
    id: CommandId,
    host: HostId,
) -> StoreResult<Option<CommandRecord>> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE id = ? AND host = ?");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .bind(host.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(rows::command).transpose()
}

fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}
