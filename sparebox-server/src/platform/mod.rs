//! The platform logic, independent of HTTP.

mod agents;
mod daemon;
mod sweep;

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
    HostHeartbeat, HostRecord, NewAccount, NewAgent, NewAgentEvent, NewCommand, NewHost, Store,
};

use crate::clock::{Clock, SystemClock};
use crate::config::PlatformConfig;
use crate::error::{ErrorCode, PlatformError};
use crate::secrets::{MasterKey, GATEWAY_TOKEN_ENV};
use crate::tokens;
use crate::validate;
use crate::views::{AgentView, HostView};

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
    master_key: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    shutdown: tokio::sync::watch::Sender<bool>,
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
    /// A platform over `store` with `config`, sealing secrets under `master_key`.
    pub fn new(store: Arc<dyn Store>, config: PlatformConfig, master_key: MasterKey) -> Self {
        Self {
            store,
            config,
            master_key: Arc::new(master_key),
            clock: Arc::new(SystemClock),
            shutdown: tokio::sync::watch::channel(false).0,
        }
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

    /// Creates an account; returns it with its API token, which is shown only this once.
    ///
    /// # Errors
    ///
    /// Bad request for an empty or overlong name; conflict when it is taken.
    pub async fn create_account(
        &self,
        name: &str,
    ) -> Result<(AccountRecord, String), PlatformError> {
        let name = validate::display_name("account name", name)?;
        let token = tokens::generate(tokens::ACCOUNT_TOKEN_PREFIX);
        let account = self
            .store
            .create_account(NewAccount {
                name,
                token_hash: tokens::hash(&token),
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(account = %account.id, "account created");
        Ok((account, token))
    }

    /// The account that owns `token`.
    ///
    /// # Errors
    ///
    /// Unauthorized when no account has that token.
    pub async fn authenticate_account(&self, token: &str) -> Result<AccountRecord, PlatformError> {
        self.store
            .account_by_token_hash(&tokens::hash(token))
            .await?
            .ok_or_else(|| PlatformError::unauthorized("invalid account token"))
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

    /// Registers a host for `owner`; returns it with its key, shown only this once.
    ///
    /// # Errors
    ///
    /// Bad request for an empty or overlong name.
    pub async fn register_host(
        &self,
        owner: &AccountRecord,
        name: &str,
    ) -> Result<(HostView, String), PlatformError> {
        let name = validate::display_name("host name", name)?;
        let key = tokens::generate(tokens::HOST_KEY_PREFIX);
        let host = self
            .store
            .create_host(NewHost {
                owner: owner.id,
                name,
                key_hash: tokens::hash(&key),
                key_prefix: tokens::display_prefix(&key),
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(host = %host.id, owner = %owner.id, "host registered");
        Ok((self.host_view(&host, self.clock.now()).await?, key))
    }

    /// Every host with its free slots, for browsing.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn list_hosts(&self, now: DateTime<Utc>) -> Result<Vec<HostView>, PlatformError> {
        let mut views = Vec::new();
        for host in self.store.list_hosts().await? {
            views.push(self.host_view(&host, now).await?);
        }
        Ok(views)
    }

    async fn host_view(
        &self,
        host: &HostRecord,
        now: DateTime<Utc>,
    ) -> Result<HostView, PlatformError> {
        let occupied: Vec<Tier> = self
            .store
            .agents_for_host(host.id)
            .await?
            .iter()
            .filter(|a| a.state.holds_slot())
            .map(|a| a.tier)
            .collect();
        Ok(HostView::new(
            host,
            &occupied,
            &self.config.reserve,
            self.is_online(host, now),
        ))
    }

    /// A host is online when its last heartbeat is younger than three intervals.
    fn is_online(&self, host: &HostRecord, now: DateTime<Utc>) -> bool {
        let silence = chrono_duration(self.config.heartbeat_interval * 3);
        host.last_heartbeat_at
            .is_some_and(|at| now.signed_duration_since(at) <= silence)
    }
}
