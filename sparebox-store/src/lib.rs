//! Persistence for the Sparebox server.
//!
//! The [`Store`] trait is everything the server keeps: accounts with their API tokens and
//! sessions, hosts with their settings, agents, commands and agent events, and for billing
//! pending checkouts, subscriptions and the payment events already applied. Backends:
//!
//! | backend | cargo feature | for |
//! |---|---|---|
//! | [`sqlite::SqliteStore`] | `sqlite` (default) | one server node, zero setup: a single database file |
//! | `postgres::PgStore` | `postgres` | several server replicas sharing one PostgreSQL |
//!
//! Migrations are applied when a store is opened. Operations that must be atomic across
//! replicas (delivering commands, reserving a slot, applying an ack or a payment event)
//! are single transactions in the backend. [`Store::host_wakeups`] tells a long-polling
//! heartbeat that a command was queued for its host; with PostgreSQL that reaches every
//! replica.
//!
//! Both backends pass one conformance suite (`tests/conformance.rs`); the crate README
//! says how to run it against PostgreSQL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sparebox_store::StoreError> {
//! use sparebox_store::{sqlite::SqliteStore, Store};
//!
//! let store = SqliteStore::open("sparebox.db").await?;
//! let wakeups = store.host_wakeups();
//! let hosts = store.list_hosts().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backups;
mod billing;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
mod logs;
mod moves;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
mod reports;
mod samples;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod wakeup;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, CommandId, HostId, Reserve};
use sparebox_protocol::CommandAck;

pub use backups::{BackupRecord, BackupRetention};
pub use billing::*;
pub use logs::CommandLogs;
pub use moves::{MovePhase, MoveRecord};
pub use records::*;
pub use reports::{ReportWrite, SeenAgent};
pub use samples::{AgentSample, SampleRetention};

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The host has no free slot for an agent of the requested tier.
    #[error("host {host} has no free slot for a {tier} agent")]
    NoSlot {
        /// The host.
        host: HostId,
        /// The tier asked for.
        tier: sparebox_core::Tier,
    },
    /// The host does not offer the requested tier ([`HostSettings::offered`]).
    #[error("host {host} does not offer the {tier} tier")]
    NotOffered {
        /// The host.
        host: HostId,
        /// The tier asked for.
        tier: sparebox_core::Tier,
    },
    /// The host already runs as many agents as its owner's cap allows
    /// ([`HostSettings::max_agents`]).
    #[error("host {host} is at its cap of {max} agents")]
    HostAtCap {
        /// The host.
        host: HostId,
        /// The cap.
        max: u32,
    },
    /// A referenced row does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of row (`host`, `agent`, `command`).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A unique value (an account email, for example) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored value could not be decoded; the database holds something this version
    /// does not understand.
    #[error("corrupt {column} in store: {message}")]
    Corrupt {
        /// The column or field.
        column: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The caller passed something the store refuses, such as a command whose host is not
    /// its agent's host.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database itself failed.
    #[error("database: {0}")]
    Database(String),
}

/// Shorthand for results from a [`Store`].
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the Sparebox server persists.
///
/// Implementations must be safe to share between tasks and, for backends that support it,
/// between server replicas: [`Store::deliver_commands`] and [`Store::create_agent`] are
/// atomic.
///
/// Timestamps are stored to the microsecond; finer parts of a `DateTime` are dropped.
/// "Oldest first" orders by `created_at` and then by insertion order.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account together with its first personal API token, in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the email, the account id or the token hash is taken;
    /// [`StoreError::Invalid`] when `first_token` is for another account.
    async fn create_account(
        &self,
        new: NewAccount,
        first_token: NewApiToken,
    ) -> StoreResult<(AccountRecord, ApiTokenRecord)>;

    /// One account.
    async fn account(&self, id: AccountId) -> StoreResult<Option<AccountRecord>>;

    /// The account signing in with `email` (compared exactly), with its password hash.
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<AccountCredentials>>;

    /// Replaces an account's roles.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the account does not exist.
    async fn set_account_roles(
        &self,
        id: AccountId,
        roles: BTreeSet<Role>,
    ) -> StoreResult<AccountRecord>;

    /// Adds a personal API token to an account.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the account does not exist; [`StoreError::Conflict`]
    /// when the id or the hash is taken.
    async fn create_api_token(&self, new: NewApiToken) -> StoreResult<ApiTokenRecord>;

    /// The account whose personal API token hashes to `token_hash`.
    async fn account_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<AccountRecord>>;

    /// An account's API tokens, oldest first.
    async fn api_tokens_for_account(&self, account: AccountId) -> StoreResult<Vec<ApiTokenRecord>>;

    /// Revokes (deletes) the token `id` if `account` owns it; returns whether it did.
    async fn delete_api_token(&self, account: AccountId, id: ApiTokenId) -> StoreResult<bool>;

    /// Stores a new session.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the account does not exist; [`StoreError::Conflict`]
    /// when the id hash is taken.
    async fn create_session(&self, new: NewSession) -> StoreResult<()>;

    /// The session whose id hashes to `id_hash`, with its account, if it has not expired
    /// by `now`.
    async fn session_by_hash(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>>;

    /// Deletes a session (signing out); returns whether it existed.
    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<bool>;

    /// Deletes every session that expired by `now`; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Registers a host with the hash of its host key.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the owner account does not exist;
    /// [`StoreError::Conflict`] when the key hash is already registered.
    async fn create_host(&self, new: NewHost) -> StoreResult<HostRecord>;

    /// One host.
    async fn host(&self, id: HostId) -> StoreResult<Option<HostRecord>>;

    /// The host whose key hashes to `key_hash`.
    async fn host_by_key_hash(&self, key_hash: &[u8]) -> StoreResult<Option<HostRecord>>;

    /// Every host, oldest first.
    async fn list_hosts(&self) -> StoreResult<Vec<HostRecord>>;

    /// How many hosts have heartbeated at or after `since`.
    async fn count_hosts_heard_since(&self, since: DateTime<Utc>) -> StoreResult<u64>;

    /// The agents of hosts that have heartbeated, but not at or after `silent_since`, that
    /// the platform still counts as on their host (neither host offline nor undeploying
    /// or undeployed), oldest first. Agents already marked host offline are left out, so
    /// hosts that stay silent cost nothing once their agents are marked.
    async fn agents_of_silent_hosts(
        &self,
        silent_since: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentRecord>>;

    /// The hosts an account owns, oldest first.
    async fn hosts_for_owner(&self, owner: AccountId) -> StoreResult<Vec<HostRecord>>;

    /// Replaces a host's key: the old key stops working when this returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the host does not exist; [`StoreError::Conflict`]
    /// when the new hash is already some host's.
    async fn rotate_host_key(
        &self,
        id: HostId,
        key_hash: Vec<u8>,
        key_prefix: String,
    ) -> StoreResult<HostRecord>;

    /// Replaces a host's settings. Agents already placed stay, even where the new settings
    /// would refuse them; the settings apply to the next [`Store::create_agent`].
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the host does not exist.
    async fn set_host_settings(
        &self,
        id: HostId,
        settings: HostSettings,
    ) -> StoreResult<HostRecord>;

    /// Records what a heartbeat said about the host itself, at `now` (server clock).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the host does not exist.
    async fn record_heartbeat(
        &self,
        host: HostId,
        heartbeat: HostHeartbeat,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Records a heartbeat's routine writes in one transaction: what it said about the host
    /// (as [`Store::record_heartbeat`]) and status reports that leave their agents' states
    /// as they are. Each report becomes its agent's latest (with `now` as its arrival time)
    /// only while the agent is still on `host` and still as [`ReportWrite::seen`] says;
    /// nothing else of the agent is written. A written report's sample is recorded unless
    /// the agent has one taken less than `min_sample_interval` before it; old samples are
    /// left to [`Store::prune_agent_samples`].
    ///
    /// Returns the agents whose reports were not written because they changed or moved
    /// since they were seen; the caller applies those another way. At most one report per
    /// agent: for a second one the result is unspecified.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the host does not exist (nothing is written);
    /// [`StoreError::Invalid`] for a memory figure beyond what the database holds.
    async fn record_heartbeat_reports(
        &self,
        host: HostId,
        heartbeat: HostHeartbeat,
        now: DateTime<Utc>,
        reports: Vec<ReportWrite>,
        min_sample_interval: chrono::Duration,
    ) -> StoreResult<Vec<AgentId>>;

    /// Creates an agent and queues its first command in one transaction, but only if the
    /// host can take one more agent of the new agent's tier given the agents that already
    /// hold slots there, `reserve` and the host's settings (offered tiers and cap, checked
    /// with [`sparebox_core::SlotPlan`]). Two callers racing for the last slot, or for the
    /// last agent under the cap, cannot both win.
    /// The agent starts in [`sparebox_core::AgentState::PendingDeploy`]; the command is
    /// pending and wakes the host (see [`Store::host_wakeups`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotOffered`] when the host does not offer the tier;
    /// [`StoreError::HostAtCap`] when it runs as many agents as its cap allows;
    /// [`StoreError::NoSlot`] when the host is full for that tier (or has not reported its
    /// hardware yet); [`StoreError::NotFound`] when the host or the owner does not exist;
    /// [`StoreError::Invalid`] when `first_command` names another agent or host;
    /// [`StoreError::Conflict`] when the agent or command id is taken.
    async fn create_agent(
        &self,
        new: NewAgent,
        first_command: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)>;

    /// One agent.
    async fn agent(&self, id: AgentId) -> StoreResult<Option<AgentRecord>>;

    /// The agents an account owns, oldest first.
    async fn agents_for_owner(&self, owner: AccountId) -> StoreResult<Vec<AgentRecord>>;

    /// The agents assigned to a host (including undeployed ones), oldest first.
    async fn agents_for_host(&self, host: HostId) -> StoreResult<Vec<AgentRecord>>;

    /// Changes an agent's state and the fields that go with it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent does not exist.
    async fn update_agent(&self, id: AgentId, update: AgentUpdate) -> StoreResult<()>;

    /// Queues a pending command and wakes its host (see [`Store::host_wakeups`]).
    ///
    /// In the same transaction, the agent's pending commands that the new one replaces
    /// ([`sparebox_core::command::supersedes`]) become `superseded`, so they are never
    /// delivered.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent does not exist; [`StoreError::Invalid`] when
    /// the command's host is not the agent's host; [`StoreError::Conflict`] when the id is
    /// taken.
    async fn enqueue_command(&self, new: NewCommand) -> StoreResult<CommandRecord>;

    /// Atomically marks up to `limit` of the host's pending commands as sent at `now` and
    /// returns them, oldest first. A command is returned by at most one call.
    async fn deliver_commands(
        &self,
        host: HostId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<CommandRecord>>;

    /// Applies an acknowledgement from `host`. Only commands addressed to that host are
    /// touched; a duplicate ack is a no-op, and an ack for an expired command is recorded as
    /// late without changing its status.
    ///
    /// | command status | result |
    /// |---|---|
    /// | `sent` | becomes `acked` or `failed` (with the ack's error) at `now`: [`AckOutcome::Applied`] |
    /// | `pending` | the same, with `sent_at` also set to `now`: the ack proves delivery ([`sparebox_core::command::ack_outcome`]) |
    /// | `acked`, `failed` | unchanged: [`AckOutcome::Duplicate`] |
    /// | `expired`, `superseded` | status kept, `late_ack` set (and `acked_at` on the first late ack): [`AckOutcome::Late`] |
    /// | another host's, or no such command | unchanged: [`AckOutcome::Unknown`] |
    async fn record_ack(
        &self,
        host: HostId,
        ack: &CommandAck,
        now: DateTime<Utc>,
    ) -> StoreResult<AckOutcome>;

    /// Expires every pending command created before `cutoff`, and every sent one created
    /// before `cutoff` whose host has heartbeated since it was sent (so it had the chance
    /// to answer and did not) or that was created before `delivered_cutoff` (an earlier
    /// time) whatever its host did; returns them, oldest first. A command delivered just
    /// before the server became unreachable thus waits for its host's ack when the server
    /// is back, instead of expiring unanswered while the host could not reach it.
    ///
    /// Both cutoffs are compared with the `created_at` the caller stored, so both come from the
    /// server's clock (never a host's). The PostgreSQL backend does not substitute the
    /// database's clock: `created_at` values come from the replicas, so replicas should keep
    /// their clocks synchronised (NTP), and any replica may run expiry.
    async fn expire_commands(
        &self,
        cutoff: DateTime<Utc>,
        delivered_cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<CommandRecord>>;

    /// One command.
    async fn command(&self, id: CommandId) -> StoreResult<Option<CommandRecord>>;

    /// An agent's most recent commands, newest first.
    async fn commands_for_agent(
        &self,
        agent: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<CommandRecord>>;

    /// The most recent commands of every agent assigned to `host`: at most `per_agent` of
    /// each agent's, newest first, as [`Store::commands_for_agent`] would give them one agent
    /// at a time. Agents without commands are absent. One query, so a heartbeat that needs
    /// every agent's recent commands costs the same round trip however many agents the host
    /// runs.
    async fn recent_commands_for_host(
        &self,
        host: HostId,
        per_agent: u32,
    ) -> StoreResult<BTreeMap<AgentId, Vec<CommandRecord>>>;

    /// Appends an event to an agent's history.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent does not exist.
    async fn add_event(&self, event: NewAgentEvent) -> StoreResult<()>;

    /// An agent's most recent events, newest first.
    async fn events_for_agent(
        &self,
        agent: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<AgentEventRecord>>;

    /// Records a resource sample unless the agent already has one taken less than
    /// `retention.min_interval` before it, and deletes every sample older than
    /// `retention.keep_for` before it. Returns whether the sample was recorded. Two
    /// replicas recording for one agent at the same moment may both record.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent does not exist; [`StoreError::Invalid`] for a
    /// memory figure beyond what the database holds.
    async fn record_agent_sample(
        &self,
        sample: AgentSample,
        retention: SampleRetention,
    ) -> StoreResult<bool>;

    /// Deletes every agent's samples taken before `before`; returns how many.
    async fn prune_agent_samples(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// An agent's samples taken at or after `since`, oldest first.
    async fn agent_samples(
        &self,
        agent: AgentId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentSample>>;

    /// Records a backup's metadata, then deletes the agent's oldest backups beyond
    /// `retention`, in one transaction. Returns the deleted records, so the caller can
    /// remove their files.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent or host does not exist;
    /// [`StoreError::Conflict`] when a backup with that id exists.
    async fn insert_backup(
        &self,
        backup: BackupRecord,
        retention: BackupRetention,
    ) -> StoreResult<Vec<BackupRecord>>;

    /// An agent's backups, newest first.
    async fn backups_for_agent(&self, agent: AgentId) -> StoreResult<Vec<BackupRecord>>;

    /// One backup by id.
    async fn backup(&self, id: CommandId) -> StoreResult<Option<BackupRecord>>;

    /// Sets (`Some(hours)`, at least one) or clears (`None`) an agent's backup schedule.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent does not exist.
    async fn set_backup_schedule(
        &self,
        agent: AgentId,
        interval_hours: Option<u32>,
    ) -> StoreResult<()>;

    /// An agent's backup interval in hours, if it has a schedule.
    async fn backup_schedule(&self, agent: AgentId) -> StoreResult<Option<u32>>;

    /// The agents whose scheduled backup is due at `now` (never queued, or queued at least
    /// their interval ago), marked as queued at `now` in the same statement, so two
    /// replicas sweeping at once never both claim one.
    async fn claim_due_backups(&self, now: DateTime<Utc>) -> StoreResult<Vec<AgentId>>;

    /// Stores the logs uploaded for a `logs` command, replacing an earlier upload of the
    /// same command (a daemon retrying after a lost answer).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the command does not exist.
    async fn put_command_logs(&self, logs: CommandLogs) -> StoreResult<()>;

    /// The logs uploaded for a command, if any (expired ones too, until deleted).
    async fn command_logs(&self, command: CommandId) -> StoreResult<Option<CommandLogs>>;

    /// Deletes command logs whose `expires_at` is at or before `now`; returns how many.
    async fn delete_expired_command_logs(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Moves `agent` to host `to` and queues `deploy` (a deploy command for it there) in
    /// one transaction, checking `to`'s room exactly as [`Store::create_agent`] does. The
    /// agent becomes `pending_deploy` on `to`, its subscription (if any) follows it, and
    /// its old host no longer lists it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown agent or host; [`StoreError::Invalid`]
    /// when `deploy` is not a deploy of that agent on `to`; the placement errors of
    /// [`Store::create_agent`] when `to` has no room.
    async fn reassign_agent(
        &self,
        agent: AgentId,
        to: HostId,
        deploy: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)>;

    /// Stores (inserts or replaces) an agent's move.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the agent or a host does not exist.
    async fn save_move(&self, record: MoveRecord) -> StoreResult<()>;

    /// Every move in progress, oldest first.
    async fn moves(&self) -> StoreResult<Vec<MoveRecord>>;

    /// The move of `agent`, if one is in progress.
    async fn agent_move(&self, agent: AgentId) -> StoreResult<Option<MoveRecord>>;

    /// Forgets the move of `agent` (finished or given up). Returns whether there was one.
    async fn delete_move(&self, agent: AgentId) -> StoreResult<bool>;

    /// A receiver that yields a host's id whenever a command is queued for it
    /// ([`Store::enqueue_command`], [`Store::create_agent`]), so a long-polling heartbeat can
    /// answer at once.
    ///
    /// A wakeup is a hint, not a delivery: the receiver may lag (and then reports
    /// [`tokio::sync::broadcast::error::RecvError::Lagged`]) and a wakeup may be missed while
    /// the backend reconnects, so callers still poll [`Store::deliver_commands`] on a timer.
    /// The SQLite backend signals within one `SqliteStore` and its clones; the PostgreSQL
    /// backend uses `LISTEN`/`NOTIFY`, so every replica hears commands queued through any
    /// other replica.
    fn host_wakeups(&self) -> tokio::sync::broadcast::Receiver<HostId>;

    /// Stores a pending checkout. Nothing is reserved: the host's slot is checked again
    /// when the checkout completes.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the host or the owner does not exist;
    /// [`StoreError::Conflict`] when the checkout or agent id is taken.
    async fn create_checkout(&self, new: NewCheckout) -> StoreResult<CheckoutRecord>;

    /// One checkout.
    async fn checkout(&self, id: CheckoutId) -> StoreResult<Option<CheckoutRecord>>;

    /// The subscriptions an account pays for, oldest first.
    async fn subscriptions_for_owner(
        &self,
        owner: AccountId,
    ) -> StoreResult<Vec<SubscriptionRecord>>;

    /// One subscription by the payment provider's id.
    async fn subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>>;

    /// Applies a payment provider event in one transaction, at most once per event id:
    /// the id is recorded first, and an id seen before (also when two replicas race with
    /// it) gives [`BillingOutcome::Replayed`] and changes nothing.
    ///
    /// [`BillingEffect::CompleteCheckout`] creates the subscription and, checking the
    /// host's room exactly as [`Store::create_agent`] does, the agent and its deploy; when
    /// the host has no room any more the subscription is stored as
    /// [`SubscriptionStatus::NeedsRefund`] and no agent is created. A checkout completes
    /// once. [`BillingEffect::SetStatus`] is described on the variant.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the database fails; nothing is applied then.
    async fn apply_billing_event(
        &self,
        event: NewBillingEvent,
        effect: BillingEffect,
    ) -> StoreResult<BillingOutcome>;
}
