//! The platform logic, independent of HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
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

    /// Creates an agent on a host for `owner` and queues its deploy, if the host has a free
    /// slot of the tier.
    ///
    /// # Errors
    ///
    /// Bad request for invalid input; not found for an unknown host; conflict when the
    /// host has no free slot.
    pub async fn create_agent(
        &self,
        owner: &AccountRecord,
        request: AgentRequest,
    ) -> Result<(AgentView, CommandRecord), PlatformError> {
        let tier: Tier = request
            .tier
            .parse()
            .map_err(|e: sparebox_core::tier::UnknownTier| {
                PlatformError::bad_request(e.to_string())
            })?;
        let name = validate::display_name("agent name", &request.name)?;
        let config = validate::openclaw_config(request.openclaw_config)?;
        validate::workspace_files(&request.workspace_files)?;
        let mut secrets = validate::secrets(request.secrets)?;
        self.store
            .host(request.host_id)
            .await?
            .ok_or_else(|| PlatformError::not_found(format!("host {}", request.host_id)))?;

        let id = AgentId::new_random();
        secrets.insert(
            GATEWAY_TOKEN_ENV.to_owned(),
            Secret::new(tokens::generate("")),
        );
        let now = self.clock.now();
        let (agent, command) = self
            .store
            .create_agent(
                NewAgent {
                    id,
                    host: request.host_id,
                    owner: owner.id,
                    name,
                    tier,
                    image: self.config.agent_image.clone(),
                    openclaw_config: config,
                    workspace_files: request.workspace_files,
                    sealed_secrets: self.master_key.seal(id, &secrets),
                    created_at: now,
                },
                NewCommand {
                    id: CommandId::new_random(),
                    agent: id,
                    host: request.host_id,
                    kind: CommandKind::Deploy,
                    created_at: now,
                },
                self.config.reserve,
            )
            .await?;
        tracing::info!(agent = %agent.id, host = %agent.host, tier = %tier, "agent created, deploy queued");
        Ok((AgentView::from(&agent), command))
    }

    /// The agent `id` if `owner` owns it.
    ///
    /// # Errors
    ///
    /// Not found when it does not exist or belongs to someone else (the two are not
    /// distinguished, so ids cannot be probed).
    pub async fn owned_agent(
        &self,
        owner: &AccountRecord,
        id: AgentId,
    ) -> Result<AgentRecord, PlatformError> {
        match self.store.agent(id).await? {
            Some(agent) if agent.owner == owner.id => Ok(agent),
            _ => Err(PlatformError::not_found(format!("agent {id}"))),
        }
    }

    /// The agents `owner` owns.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn list_agents(
        &self,
        owner: &AccountRecord,
    ) -> Result<Vec<AgentView>, PlatformError> {
        Ok(self
            .store
            .agents_for_owner(owner.id)
            .await?
            .iter()
            .map(AgentView::from)
            .collect())
    }

    /// Queues a start, stop, restart or undeploy for an agent its owner controls.
    ///
    /// # Errors
    ///
    /// Bad request for another command type or an undeployed agent; not found for
    /// someone else's agent.
    pub async fn queue_command(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
        kind: &str,
    ) -> Result<CommandRecord, PlatformError> {
        let kind: CommandKind =
            kind.parse()
                .map_err(|e: sparebox_core::command::UnknownCommandKind| {
                    PlatformError::bad_request(e.to_string())
                })?;
        if !matches!(
            kind,
            CommandKind::Start | CommandKind::Stop | CommandKind::Restart | CommandKind::Undeploy
        ) {
            return Err(PlatformError::bad_request(format!(
                "command type {kind} cannot be sent directly: expected one of start, stop, restart, undeploy"
            )));
        }
        let record = self.owned_agent(owner, agent).await?;
        if matches!(
            record.state,
            AgentState::Undeployed | AgentState::Undeploying
        ) {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("agent {agent} is {}", record.state),
            ));
        }
        let command = self
            .store
            .enqueue_command(NewCommand {
                id: CommandId::new_random(),
                agent,
                host: record.host,
                kind,
                created_at: self.clock.now(),
            })
            .await?;
        if kind == CommandKind::Undeploy {
            self.store
                .update_agent(
                    agent,
                    AgentUpdate {
                        state: Some(AgentState::Undeploying),
                        ..AgentUpdate::default()
                    },
                )
                .await?;
        }
        tracing::info!(agent = %agent, command = %command.id, kind = %kind, "command queued");
        Ok(command)
    }

    /// Replaces an agent's configuration, workspace files and (when given) secrets, then
    /// queues an `update_config` so the host applies them. Before the deploy has reached
    /// the host, the stored values are simply replaced: the deploy fetches the latest.
    ///
    /// # Errors
    ///
    /// Bad request for invalid input; not found for someone else's agent; conflict for an
    /// agent that is being undeployed.
    pub async fn update_config(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
        update: ConfigUpdate,
    ) -> Result<Option<CommandRecord>, PlatformError> {
        let record = self.owned_agent(owner, agent).await?;
        if matches!(
            record.state,
            AgentState::Undeployed | AgentState::Undeploying
        ) {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("agent {agent} is {}", record.state),
            ));
        }
        let mut change = AgentUpdate::default();
        if let Some(config) = update.openclaw_config {
            change.openclaw_config = Some(validate::openclaw_config(Some(config))?);
        }
        if let Some(files) = update.workspace_files {
            validate::workspace_files(&files)?;
            change.workspace_files = Some(files);
        }
        if let Some(secrets) = update.secrets {
            let mut secrets = validate::secrets(secrets)?;
            let current = self.master_key.open(agent, &record.sealed_secrets)?;
            if let Some(token) = current.get(GATEWAY_TOKEN_ENV) {
                secrets.insert(GATEWAY_TOKEN_ENV.to_owned(), token.clone());
            }
            change.sealed_secrets = Some(self.master_key.seal(agent, &secrets));
        }
        self.store.update_agent(agent, change).await?;
        if record.state == AgentState::PendingDeploy {
            tracing::info!(agent = %agent, "configuration replaced before deploy");
            return Ok(None);
        }
        let command = self
            .store
            .enqueue_command(NewCommand {
                id: CommandId::new_random(),
                agent,
                host: record.host,
                kind: CommandKind::UpdateConfig,
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(agent = %agent, command = %command.id, "configuration update queued");
        Ok(Some(command))
    }

    /// Queues a new deploy for an agent whose deploy failed or expired.
    ///
    /// # Errors
    ///
    /// Conflict when the agent is not in the error state; not found for someone else's
    /// agent.
    pub async fn retry_deploy(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
    ) -> Result<CommandRecord, PlatformError> {
        let record = self.owned_agent(owner, agent).await?;
        if record.state != AgentState::Error {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!(
                    "agent {agent} is {}: only a failed deploy can be retried",
                    record.state
                ),
            ));
        }
        let command = self
            .store
            .enqueue_command(NewCommand {
                id: CommandId::new_random(),
                agent,
                host: record.host,
                kind: CommandKind::Deploy,
                created_at: self.clock.now(),
            })
            .await?;
        self.store
            .update_agent(
                agent,
                AgentUpdate {
                    state: Some(AgentState::PendingDeploy),
                    error: Some(None),
                    deploy_stage: Some(None),
                    ..AgentUpdate::default()
                },
            )
            .await?;
        tracing::info!(agent = %agent, command = %command.id, "deploy retried");
        Ok(command)
    }

    /// An agent's recent commands, newest first.
    ///
    /// # Errors
    ///
    /// Not found for someone else's agent.
    pub async fn agent_commands(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
    ) -> Result<Vec<CommandRecord>, PlatformError> {
        self.owned_agent(owner, agent).await?;
        Ok(self.store.commands_for_agent(agent, 100).await?)
    }

    /// Handles one heartbeat from `host`: records the host, applies acks and status
    /// reports, and hands over pending commands. When the daemon asked to wait and nothing
    /// is pending, holds on until a command is queued or the wait runs out.
    ///
    /// # Errors
    ///
    /// Bad request for an unsupported protocol version or too many reports.
    pub async fn heartbeat(
        &self,
        host: &HostRecord,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatOutcome, PlatformError> {
        if request.protocol_version != PROTOCOL_VERSION {
            return Err(PlatformError::bad_request(format!(
                "protocol version {} is not supported: this server speaks {PROTOCOL_VERSION}",
                request.protocol_version
            )));
        }
        if request.agent_statuses.len() > MAX_REPORTS_PER_HEARTBEAT
            || request.command_acks.len() > MAX_REPORTS_PER_HEARTBEAT
        {
            return Err(PlatformError::bad_request(format!(
                "a heartbeat may carry at most {MAX_REPORTS_PER_HEARTBEAT} agent statuses and {MAX_REPORTS_PER_HEARTBEAT} acks"
            )));
        }
        let wakeups = self.store.host_wakeups();
        let now = self.clock.now();
        self.store
            .record_heartbeat(
                host.id,
                HostHeartbeat {
                    hardware: request.hardware.clone(),
                    isolation: request.isolation,
                    daemon_version: request.daemon_version.clone(),
                },
                now,
            )
            .await?;

        let mut confirmed = Vec::with_capacity(request.command_acks.len());
        let mut acks = Vec::new();
        for ack in &request.command_acks {
            if let Some(applied) = self.apply_ack(host, ack, now).await? {
                acks.push(applied);
            }
            confirmed.push(ack.id);
        }
        for report in request.agent_statuses {
            self.apply_report(host, report, now).await?;
        }

        let mut commands = self.deliver(host, now).await?;
        if commands.is_empty() {
            if let Some(wait) = request.wait_seconds.filter(|s| *s > 0) {
                let wait = Duration::from_secs(u64::from(wait)).min(self.config.max_heartbeat_wait);
                commands = self.wait_for_commands(host, wakeups, wait).await?;
            }
        }
        let response = HeartbeatResponse {
            commands,
            confirmed_acks: confirmed,
            next_heartbeat_seconds: u32::try_from(self.config.heartbeat_interval.as_secs())
                .unwrap_or(u32::MAX),
            server_time: self.clock.now(),
        };
        Ok(HeartbeatOutcome { response, acks })
    }

    async fn wait_for_commands(
        &self,
        host: &HostRecord,
        mut wakeups: tokio::sync::broadcast::Receiver<HostId>,
        wait: Duration,
    ) -> Result<Vec<Command>, PlatformError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return Ok(Vec::new());
            }
            let woken = tokio::select! {
                woken = tokio::time::timeout_at(deadline, wakeups.recv()) => woken,
                _ = shutdown.changed() => return Ok(Vec::new()),
            };
            match woken {
                Err(_) => return Ok(Vec::new()),
                Ok(Ok(id)) if id != host.id => continue,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return Ok(Vec::new()),
                // Our host, or we lagged and may have missed it: look.
                Ok(_) => {
                    let commands = self.deliver(host, self.clock.now()).await?;
                    if !commands.is_empty() {
                        return Ok(commands);
                    }
                }
            }
        }
    }

    async fn deliver(
        &self,
        host: &HostRecord,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>, PlatformError> {
        let records = self
            .store
            .deliver_commands(host.id, now, MAX_COMMANDS_PER_RESPONSE)
            .await?;
        let mut commands = Vec::with_capacity(records.len());
        for record in records {
            let Some(agent) = self.store.agent(record.agent).await? else {
                continue;
            };
            commands.push(Command {
                id: record.id,
                agent_id: record.agent,
                kind: record.kind,
                tier: agent.tier,
                created_at: record.created_at,
            });
        }
        Ok(commands)
    }

    async fn apply_ack(
        &self,
        host: &HostRecord,
        ack: &sparebox_protocol::CommandAck,
        now: DateTime<Utc>,
    ) -> Result<Option<(CommandKind, CommandStatus)>, PlatformError> {
        let command = match self.store.record_ack(host.id, ack, now).await? {
            AckOutcome::Applied(command) => command,
            AckOutcome::Late(command) => {
                tracing::warn!(command = %command.id, "late ack for an expired command ignored");
                return Ok(None);
            }
            AckOutcome::Duplicate(_) | AckOutcome::Unknown => return Ok(None),
        };
        let Some(agent) = self.store.agent(command.agent).await? else {
            return Ok(None);
        };
        let (update, event) =
            agent_change_for_ack(&agent, &command, ack.status, ack.error.as_deref());
        self.store.update_agent(agent.id, update).await?;
        self.store
            .add_event(NewAgentEvent {
                agent: agent.id,
                kind: event.0,
                message: event.1,
                at: now,
            })
            .await?;
        tracing::info!(agent = %agent.id, command = %command.id, kind = %command.kind, status = ?ack.status, "command acknowledged");
        Ok(Some((command.kind, command.status)))
    }

    async fn apply_report(
        &self,
        host: &HostRecord,
        report: sparebox_protocol::AgentStatusReport,
        now: DateTime<Utc>,
    ) -> Result<(), PlatformError> {
        let Some(agent) = self.store.agent(report.agent_id).await? else {
            return Ok(());
        };
        if agent.host != host.id {
            tracing::warn!(host = %host.id, agent = %agent.id, "host reported an agent it does not hold");
            return Ok(());
        }
        let event = report_event(&agent, &report);
        let mut update = AgentUpdate {
            report: Some((report.clone(), now)),
            ..AgentUpdate::default()
        };
        if let Some(state) = state_from_report(agent.state, &report) {
            if state != agent.state {
                update.state = Some(state);
            }
        }
        if report.status == RuntimeStatus::Deploying {
            update.deploy_stage = Some(report.deploy_stage);
        }
        self.store.update_agent(agent.id, update).await?;
        if let Some((kind, message)) = event {
            self.store
                .add_event(NewAgentEvent {
                    agent: agent.id,
                    kind,
                    message,
                    at: now,
                })
                .await?;
        }
        Ok(())
    }

    /// The deploy bundle for `agent`, served only to the host it is assigned to and only
    /// for a deploy or configuration command of that agent that is still live.
    ///
    /// # Errors
    ///
    /// Not found when the agent is not this host's or the command does not match.
    pub async fn deploy_bundle(
        &self,
        host: &HostRecord,
        agent_id: AgentId,
        command_id: CommandId,
    ) -> Result<DeployBundle, PlatformError> {
        let agent = match self.store.agent(agent_id).await? {
            Some(agent) if agent.host == host.id => agent,
            _ => return Err(PlatformError::not_found(format!("agent {agent_id}"))),
        };
        let command = match self.store.command(command_id).await? {
            Some(c) if c.agent == agent_id && c.host == host.id && c.kind.needs_bundle() => c,
            _ => {
                return Err(PlatformError::not_found(format!(
                    "deploy command {command_id} for agent {agent_id}"
                )))
            }
        };
        if command.status != CommandStatus::Sent {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("command {command_id} is {}, not sent", command.status),
            ));
        }
        let secrets = self.master_key.open(agent.id, &agent.sealed_secrets)?;
        let now = self.clock.now();
        Ok(DeployBundle {
            agent_id: agent.id,
            command_id,
            tier: agent.tier,
            image: agent.image.clone(),
            openclaw_config: validate::with_platform_keys(agent.openclaw_config.clone()),
            workspace_files: agent.workspace_files.clone(),
            secrets,
            issued_at: now,
            expires_at: now + chrono_duration(self.config.bundle_ttl),
        })
    }

    /// One round of housekeeping by the platform's clock: expires commands older than the
    /// expiry window, and marks the agents of hosts that have gone silent as host offline.
    /// Run it every few seconds; the reference server does.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn sweep(&self) -> Result<SweepSummary, PlatformError> {
        let now = self.clock.now();
        let mut summary = SweepSummary::default();
        for command in self.expire_commands(now).await? {
            summary.expired.push(command.kind);
        }
        for host in self.store.list_hosts().await? {
            if self.is_online(&host, now) {
                summary.hosts_online += 1;
            } else if host.last_heartbeat_at.is_some() {
                summary.agents_marked_offline += self.mark_host_offline(&host).await?;
            }
        }
        Ok(summary)
    }

    async fn mark_host_offline(&self, host: &HostRecord) -> Result<usize, PlatformError> {
        let mut marked = 0;
        for agent in self.store.agents_for_host(host.id).await? {
            if matches!(
                agent.state,
                AgentState::Running
                    | AgentState::Stopped
                    | AgentState::Deploying
                    | AgentState::Error
            ) {
                self.store
                    .update_agent(
                        agent.id,
                        AgentUpdate {
                            state: Some(AgentState::HostOffline),
                            ..AgentUpdate::default()
                        },
                    )
                    .await?;
                marked += 1;
            }
        }
        if marked > 0 {
            tracing::warn!(host = %host.id, agents = marked, "host went silent, its agents are marked host offline");
        }
        Ok(marked)
    }

    async fn expire_commands(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CommandRecord>, PlatformError> {
        let expired = self
            .store
            .expire_commands(now - chrono_duration(self.config.command_expiry))
            .await?;
        for command in &expired {
            tracing::info!(command = %command.id, agent = %command.agent, kind = %command.kind, "command expired");
            let Some(agent) = self.store.agent(command.agent).await? else {
                continue;
            };
            let deploy_lost = command.kind == CommandKind::Deploy
                && matches!(
                    agent.state,
                    AgentState::PendingDeploy | AgentState::Deploying
                );
            if deploy_lost {
                self.store
                    .update_agent(
                        agent.id,
                        AgentUpdate {
                            state: Some(AgentState::Error),
                            error: Some(Some(format!(
                                "deploy command expired: the host did not confirm it within {} seconds",
                                self.config.command_expiry.as_secs()
                            ))),
                            deploy_stage: Some(None),
                            ..AgentUpdate::default()
                        },
                    )
                    .await?;
            }
        }
        Ok(expired)
    }
}

/// How an acknowledged command changes its agent, and the event to record.
fn agent_change_for_ack(
    agent: &AgentRecord,
    command: &CommandRecord,
    status: AckStatus,
    error: Option<&str>,
) -> (AgentUpdate, (AgentEventKind, String)) {
    let mut update = AgentUpdate::default();
    if status == AckStatus::Failed {
        let message = error.unwrap_or("no reason given").to_owned();
        if matches!(
            command.kind,
            CommandKind::Deploy | CommandKind::UpdateConfig
        ) {
            update.state = Some(AgentState::Error);
            update.deploy_stage = Some(None);
        }
        update.error = Some(Some(message.clone()));
        return (
            update,
            (
                AgentEventKind::CommandFailed,
                format!("{} failed: {message}", command.kind),
            ),
        );
    }
    update.error = Some(None);
    let (state, event) = match command.kind {
        CommandKind::Deploy => (AgentState::Running, AgentEventKind::Deployed),
        CommandKind::Start => (AgentState::Running, AgentEventKind::Started),
        CommandKind::Restart => (AgentState::Running, AgentEventKind::Restarted),
        CommandKind::Stop => (AgentState::Stopped, AgentEventKind::Stopped),
        CommandKind::UpdateConfig => (AgentState::Running, AgentEventKind::ConfigUpdated),
        CommandKind::Undeploy => (AgentState::Undeployed, AgentEventKind::Undeployed),
    };
    // A later undeploy wins over an earlier command's late success.
    if agent.state != AgentState::Undeploying || command.kind == CommandKind::Undeploy {
        update.state = Some(state);
    }
    update.deploy_stage = Some(None);
    (update, (event, format!("{} done", command.kind)))
}

/// What a status report says the agent's platform state now is, if it should change.
/// Reports never mark an agent running during a deploy: only the deploy's ack does.
fn state_from_report(
    current: AgentState,
    report: &sparebox_protocol::AgentStatusReport,
) -> Option<AgentState> {
    use AgentState::*;
    match (current, report.status) {
        (Undeployed | Undeploying, _) => None,
        (_, RuntimeStatus::Deploying) => Some(Deploying),
        (PendingDeploy, _) => None,
        (Deploying, _) => None,
        (_, RuntimeStatus::Running) => Some(Running),
        (_, RuntimeStatus::Stopped) => Some(Stopped),
        (_, RuntimeStatus::Exited | RuntimeStatus::Missing | RuntimeStatus::Error) => Some(Error),
    }
}

/// The event a report implies compared with the agent's previous report.
fn report_event(
    agent: &AgentRecord,
    report: &sparebox_protocol::AgentStatusReport,
) -> Option<(AgentEventKind, String)> {
    let previous = agent.last_report.as_ref()?;
    if report.restart_count > previous.restart_count {
        let kind = if report.oom_killed {
            AgentEventKind::OomKilled
        } else {
            AgentEventKind::Crashed
        };
        return Some((
            kind,
            format!(
                "restarted by the engine ({} restarts)",
                report.restart_count
            ),
        ));
    }
    if previous.status == RuntimeStatus::Running && report.status == RuntimeStatus::Exited {
        let kind = if report.oom_killed {
            AgentEventKind::OomKilled
        } else {
            AgentEventKind::Crashed
        };
        return Some((
            kind,
            report.error.clone().unwrap_or_else(|| "exited".to_owned()),
        ));
    }
    None
}
