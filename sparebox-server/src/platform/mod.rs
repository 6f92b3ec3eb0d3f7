//! The platform logic, independent of HTTP.

mod accounts;
mod agents;
mod backups;
mod billing;
mod daemon;
mod hosts;
mod logs;
mod moves;
mod rollouts;
mod rotation;
mod sweep;

pub use accounts::{SessionStart, SignIn, SignUp};
pub(crate) use backups::too_large;
pub use backups::{BackupList, MAX_BACKUP_INTERVAL_HOURS};
pub use billing::WebhookResult;
pub use daemon::BUSY_RETRY_AFTER_SECS;
pub use hosts::{HostFilter, HostSettingsRequest};
pub use logs::{LogsRequest, LogsView, DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_TAIL_LINES};
pub use rollouts::{check_image_reference, ImageReferenceError, RolloutReport, RolloutRequest};
pub use rotation::RotationReport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sparebox_core::command::AckResult;
use sparebox_core::lifecycle::{transition, AgentEvent, AgentLifecycle};
use sparebox_core::{
    AgentId, AgentState, CommandId, CommandKind, CommandStatus, HostId, Secret, Tier,
};
use sparebox_protocol::{
    AckStatus, Command, DeployBundle, HeartbeatRequest, HeartbeatResponse, RuntimeStatus,
    WorkspaceFile, MAX_REPORTS_PER_HEARTBEAT, PROTOCOL_VERSION,
};
use sparebox_store::{
    AccountRecord, AckOutcome, AgentEventKind, AgentRecord, AgentUpdate, CommandRecord,
    HostHeartbeat, HostRecord, NewAgent, NewAgentEvent, NewCommand, NewHost, Store, StoreError,
};

use crate::clock::{Clock, SystemClock};
use crate::config::PlatformConfig;
use crate::error::{ErrorCode, PlatformError};
use crate::secrets::{self as sealing, GATEWAY_TOKEN_ENV};
use crate::tokens;
use crate::validate;
use crate::views::{AgentView, HostView};
use sparebox_core::crypto::Keyring;

/// The most commands handed to a daemon in one heartbeat response.
const MAX_COMMANDS_PER_RESPONSE: u32 = 32;

/// What a deployer sends to create an agent.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRequest {
    /// The host to run on.
    pub host_id: HostId,
    /// The tier (`lite`, `standard`, `pro`, `compute`).
    pub tier: String,
    /// Display name, 1 to 64 characters.
    pub name: String,
    /// The deployer's `openclaw.json` (a JSON object; platform-owned keys are refused).
    #[serde(default)]
    pub openclaw_config: Option<serde_json::Value>,
    /// Workspace files.
    #[serde(default)]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Secrets by environment variable name; only [`crate::ALLOWED_SECRET_NAMES`] are accepted.
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
}

/// What handling a heartbeat produced.
#[derive(Debug)]
pub struct HeartbeatOutcome {
    /// The answer for the daemon.
    pub response: HeartbeatResponse,
    /// The command acks this heartbeat applied, by command type and resulting status.
    pub acks: Vec<(CommandKind, CommandStatus)>,
}

/// What one periodic sweep did.
#[derive(Debug, Default)]
pub struct SweepSummary {
    /// Types of the commands that expired.
    pub expired: Vec<CommandKind>,
    /// Hosts heard from within the liveness window.
    pub hosts_online: usize,
    /// Agents newly marked host offline.
    pub agents_marked_offline: usize,
    /// Expired sessions deleted.
    pub sessions_deleted: u64,
    /// Scheduled backups queued.
    pub backups_queued: usize,
}

/// A deployer's change to an agent's configuration. Absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigUpdate {
    /// A new `openclaw.json`.
    #[serde(default)]
    pub openclaw_config: Option<serde_json::Value>,
    /// The complete new set of workspace files.
    #[serde(default)]
    pub workspace_files: Option<Vec<WorkspaceFile>>,
    /// The complete new set of secrets (the platform's gateway token is kept).
    #[serde(default)]
    pub secrets: Option<BTreeMap<String, Secret>>,
}

/// The Sparebox platform over a store.
#[derive(Clone)]
pub struct Platform {
    store: Arc<dyn Store>,
    config: PlatformConfig,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    shutdown: tokio::sync::watch::Sender<bool>,
    stripe: crate::billing::StripeClient,
    /// Turns for processing heartbeats ([`PlatformConfig::heartbeat_concurrency`]).
    heartbeat_turns: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Platform {
    /// A platform over `store` with `config`, sealing secrets with `keyring`.
    pub fn new(store: Arc<dyn Store>, config: PlatformConfig, keyring: Keyring) -> Self {
        Self {
            heartbeat_turns: Arc::new(tokio::sync::Semaphore::new(
                config.heartbeat_concurrency.max(1),
            )),
            store,
            config,
            keyring: Arc::new(keyring),
            clock: Arc::new(SystemClock),
            shutdown: tokio::sync::watch::channel(false).0,
            stripe: crate::billing::StripeClient::new(),
        }
    }

    /// Queues a `kind` command for `record` on its current host; the one place commands
    /// are created for an existing agent.
    pub(super) async fn enqueue(
        &self,
        record: &AgentRecord,
        kind: CommandKind,
        params: Option<sparebox_protocol::CommandParams>,
    ) -> Result<CommandRecord, PlatformError> {
        Ok(self
            .store
            .enqueue_command(NewCommand {
                id: CommandId::new_random(),
                agent: record.id,
                host: record.host,
                kind,
                created_at: self.clock.now(),
                params,
                image: None,
            })
            .await?)
    }

    /// The same platform reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The current time by the platform's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Answers every held heartbeat at once and stops holding new ones; called when the
    /// server shuts down so daemons are not left waiting on a closing connection.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Applies `event` to `agent` through the core lifecycle
    /// ([`sparebox_core::lifecycle::transition`]) and stores the result together with
    /// `update`. An event the lifecycle forbids changes no state (it is logged; `update`,
    /// such as a status report's metrics, is still stored) and gives `None`.
    async fn advance(
        &self,
        agent: &AgentRecord,
        event: &AgentEvent,
        mut update: AgentUpdate,
    ) -> Result<Option<AgentLifecycle>, PlatformError> {
        let current =
            AgentLifecycle::from_parts(agent.state, agent.deploy_stage, agent.error.as_deref())
                .unwrap_or_else(|err| {
                    tracing::warn!(agent = %agent.id, error = %err, "stored agent state repaired");
                    AgentLifecycle::Running
                });
        let next = match transition(&current, event) {
            Ok(next) => Some(next),
            Err(err) => {
                tracing::warn!(agent = %agent.id, error = %err, "agent event ignored");
                None
            }
        };
        if let Some(next) = next.as_ref().filter(|next| **next != current) {
            update.state = Some(next.state());
            update.deploy_stage = Some(next.deploy_stage());
            update.error = Some(next.error_reason().map(str::to_owned));
            tracing::info!(agent = %agent.id, from = %current, to = %next, "agent state changed");
        }
        self.store.update_agent(agent.id, update).await?;
        Ok(next)
    }

    /// The platform's settings.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The host that owns `key`.
    ///
    /// # Errors
    ///
    /// Unauthorized when no host has that key.
    pub async fn authenticate_host(&self, key: &str) -> Result<HostRecord, PlatformError> {
        self.store
            .host_by_key_hash(&tokens::hash(key))
            .await?
            .ok_or_else(|| PlatformError::unauthorized("invalid host key"))
    }

    /// A host is online when its last heartbeat is younger than three intervals.
    fn is_online(&self, host: &HostRecord, now: DateTime<Utc>) -> bool {
        let silence = chrono_duration(self.config.heartbeat_interval * 3);
        host.last_heartbeat_at
            .is_some_and(|at| now.signed_duration_since(at) <= silence)
    }
}
