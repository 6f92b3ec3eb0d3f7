//! Carrying out one command against the runtime, and turning the outcome into an ack.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use sparebox_core::crypto::{ReplayGuard, VerifiedBundle};
use sparebox_core::lifecycle::failure_leaves_agent;
use sparebox_core::{AgentId, CommandKind, DeployStage};
use sparebox_protocol::{AckStatus, Command, CommandAck};
use sparebox_runtime::{AgentSpec, Runtime};
use tracing::{debug, error, info, warn};

use crate::client::ServerApi;
use crate::config::DaemonConfig;
use crate::files::{self, AgentFiles, Owner};
use crate::health::{wait_healthy, HealthProbe};
use crate::journal::{AgentRecord, InFlightCommand};
use crate::ports;
use crate::reconcile::Converge;
use crate::state::{Phase, SharedState};

/// Plain environment every agent gets: no self-update inside an immutable container, and
/// no mDNS announcements on the host's network. The bundle's secrets come on top.
pub const AGENT_ENV: [(&str, &str); 2] = [
    ("OPENCLAW_NO_AUTO_UPDATE", "1"),
    ("OPENCLAW_DISABLE_BONJOUR", "1"),
];

/// [`AGENT_ENV`] as the plain environment of an [`AgentSpec`].
pub(crate) fn agent_env() -> std::collections::BTreeMap<String, String> {
    AGENT_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Why a command failed: the command, the agent, the deploy stage when there is one, and
/// the cause. Displays as `deploy agent <id>: health_check: <cause>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The command's kind.
    pub kind: CommandKind,
    /// The agent.
    pub agent: AgentId,
    /// The deploy stage that failed, for deploys and configuration updates.
    pub stage: Option<DeployStage>,
    /// The cause.
    pub message: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} agent {}: ", self.kind, self.agent)?;
        if let Some(stage) = self.stage {
            write!(f, "{stage}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// The parts a command needs: the runtime, the server, the health probe and the state.
pub(crate) struct Executor {
    pub config: Arc<DaemonConfig>,
    pub runtime: Arc<dyn Runtime>,
    pub server: Arc<dyn ServerApi>,
    pub health: Arc<dyn HealthProbe>,
    pub state: SharedState,
    pub owner: Owner,
    /// Commands whose bundles were already accepted, so a replayed bundle is refused.
    pub replay: Arc<std::sync::Mutex<ReplayGuard>>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// A failure inside one command, before the command and agent are attached.
pub(crate) struct Failure {
    stage: Option<DeployStage>,
    message: String,
}

pub(crate) fn at<E: fmt::Display>(stage: DeployStage) -> impl FnOnce(E) -> Failure {
    move |err| Failure {
        stage: Some(stage),
        message: err.to_string(),
    }
}

pub(crate) fn plain<E: fmt::Display>(err: E) -> Failure {
    Failure {
        stage: None,
        message: err.to_string(),
    }
}

impl Executor {
    /// Runs `command`, records its ack as executed and pending, and persists the journal.
    pub async fn run_command(&self, command: Command) {
        let ack = self.execute(&command).await;
        self.state.finish(ack);
        if let Err(err) = self.state.persist().await {
            error!(error = %err, "could not write the journal; the ack is kept in memory");
        }
    }

    /// Carries out `command` and says how it went. Never panics on bad input: every
    /// problem becomes a failed ack.
    pub async fn execute(&self, command: &Command) -> CommandAck {
        let agent = command.agent_id;
        debug!(command.id = %command.id, agent.id = %agent, command.kind = %command.kind, "executing command");
        let outcome = match command.kind {
            CommandKind::Deploy => self.apply_bundle(command, false).await,
            CommandKind::UpdateConfig => self.apply_bundle(command, true).await,
            CommandKind::Start => self.start(agent).await,
            CommandKind::Stop => self.stop(agent).await,
            CommandKind::Restart => self.restart(agent).await,
            CommandKind::Undeploy => self.undeploy(agent).await,
            CommandKind::Upgrade => self.upgrade(command).await,
            CommandKind::Logs => self.logs(command).await,
            CommandKind::Backup => self.backup(command).await,
            CommandKind::Restore => self.restore(command).await,
        };
        self.conclude(command, outcome)
    }

    /// Finishes a command an earlier daemon started and did not ack; see
    /// [`InFlightCommand`]. Commands without a bundle run again (they are idempotent). A
    /// deploy or update whose container was created is finished from that container. One
    /// interrupted earlier runs again from the start with the command fetched again from
    /// the server, since its session key was never written down; when the server no longer
    /// offers it (expired, superseded) it fails.
    pub async fn resume(&self, interrupted: InFlightCommand) {
        let command = interrupted.command();
        info!(command.id = %command.id, agent.id = %command.agent_id, command.kind = %command.kind,
              deploy.stage = ?interrupted.stage, "resuming a command interrupted by a restart");
        if !command.kind.needs_session_key() {
            return self.run_command(command).await;
        }
        let finished = if command.kind.needs_bundle() {
            self.finish_from_container(&interrupted).await
        } else {
            None
        };
        let ack = match finished {
            Some(outcome) => self.conclude(&command, outcome),
            None => match self.fetch_again(&interrupted).await {
                Ok(fresh) => self.execute(&fresh).await,
                Err(failure) => self.conclude(&command, Err(failure)),
            },
        };
        self.state.finish(ack);
        if let Err(err) = self.state.persist().await {
            error!(error = %err, "could not write the journal; the ack is kept in memory");
        }
    }

    /// Starts the container an interrupted deploy or update created and waits for its
    /// health; `None` when the command did not get that far.
    async fn finish_from_container(
        &self,
        interrupted: &InFlightCommand,
    ) -> Option<Result<(), Failure>> {
        let agent = interrupted.agent_id;
        // The stage is recorded before the container is created, so a container is only
        // trusted when it exists too.
        let created = interrupted
            .stage
            .is_some_and(|stage| stage >= DeployStage::Starting);
        if !created {
            return None;
        }
        let container = match self.runtime.inspect(agent).await {
            Ok(container) => container,
            Err(err) => return Some(Err(at(DeployStage::Starting)(err))),
        };
        let (container, record) = (container?, self.state.agent(agent)?);
        self.stage(agent, DeployStage::Starting);
        if container.state != sparebox_runtime::ContainerState::Running {
            if let Err(err) = self.runtime.start(agent).await {
                return Some(Err(at(DeployStage::Starting)(err)));
            }
        }
        Some(self.wait_for_health(agent, record.gateway_port).await)
    }

    /// The interrupted command as the server sends it again, with its session key.
    async fn fetch_again(&self, interrupted: &InFlightCommand) -> Result<Command, Failure> {
        let stage = interrupted.stage.unwrap_or(DeployStage::FetchingConfig);
        let fresh = self.server.command(interrupted.id).await.map_err(|err| {
            at(stage)(format!(
                "interrupted by a daemon restart before the container existed, and the server \
                 did not send the command again ({err}); the deploy must be sent again"
            ))
        })?;
        if fresh.id != interrupted.id
            || fresh.agent_id != interrupted.agent_id
            || fresh.kind != interrupted.kind
        {
            return Err(at(stage)(
                "the server sent a different command when asked for an interrupted one",
            ));
        }
        info!(command.id = %fresh.id, agent.id = %fresh.agent_id, "running the interrupted command again from the start");
        Ok(fresh)
    }

    async fn wait_for_health(&self, agent: AgentId, port: u16) -> Result<(), Failure> {
        self.stage(agent, DeployStage::HealthCheck);
        let timeout = self.config.health_timeout;
        let poll = self.config.health_poll_interval;
        wait_healthy(self.health.as_ref(), port, timeout, poll)
            .await
            .map_err(at(DeployStage::HealthCheck))?;
        self.stage(agent, DeployStage::Ready);
        info!(agent.id = %agent, gateway.port = port, "agent ready");
        Ok(())
    }

    /// Carries out a step the reconciler decided on, then releases the agent.
    pub async fn converge(&self, agent: AgentId, step: Converge) {
        let result = match step {
            Converge::Start => self.start(agent).await,
            Converge::Stop => self.stop(agent).await,
            Converge::Remove => self.undeploy(agent).await,
        };
        match result {
            Ok(()) => info!(agent.id = %agent, step = ?step, "reconciled agent"),
            Err(failure) => {
                warn!(agent.id = %agent, step = ?step, error = %failure.message, "reconciling agent failed")
            }
        }
        if let Err(err) = self.state.persist().await {
            error!(error = %err, "could not write the journal");
        }
        self.state.set_converging(agent, false);
    }

    /// Durably records that `command` reached `stage`, so a restarted daemon knows where
    /// it stopped; then stops here for good if the configuration's test hook says so.
    async fn checkpoint(&self, command: &Command, stage: DeployStage) -> Result<(), Failure> {
        self.state.record_stage(command.id, stage);
        self.state.persist().await.map_err(at(stage))?;
        if self.config.halt_after_stage == Some(stage) {
            warn!(command.id = %command.id, deploy.stage = %stage, "halting here (test hook)");
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn conclude(&self, command: &Command, outcome: Result<(), Failure>) -> CommandAck {
        let agent = command.agent_id;
        match outcome {
            Ok(()) => {
                if command.kind != CommandKind::Undeploy {
                    self.state.set_phase(agent, None);
                }
                debug!(command.id = %command.id, agent.id = %agent, command.kind = %command.kind, "command done");
                CommandAck {
                    id: command.id,
                    status: AckStatus::Acked,
                    error: None,
                }
            }
            Err(failure) => {
                let err = CommandError {
                    kind: command.kind,
                    agent,
                    stage: failure.stage,
                    message: failure.message,
                };
                warn!(command.id = %command.id, error = %err, "command failed");
                // A failed logs read changes nothing, and a failed upgrade has put the
                // agent back on its previous image: the next report shows its real state.
                let phase =
                    (!failure_leaves_agent(command.kind)).then(|| Phase::Failed(err.to_string()));
                self.state.set_phase(agent, phase);
                CommandAck {
                    id: command.id,
                    status: AckStatus::Failed,
                    error: Some(err.to_string()),
                }
            }
        }
    }

    pub(crate) fn stage(&self, agent: AgentId, stage: DeployStage) {
        debug!(agent.id = %agent, deploy.stage = %stage, "deploy stage");
        self.state.set_phase(agent, Some(Phase::Deploying(stage)));
    }

    /// `<data-dir>/agents/<agent-id>`.
    pub(crate) fn agent_dir(&self, agent: AgentId) -> PathBuf {
        self.config.agents_dir().join(agent.to_string())
    }

    /// Deploy and configuration update: fetch the bundle, pull, write files into a removed
    /// container's directory, create and start a fresh container, wait for health.
    ///
    /// An existing container is always removed first: a re-delivered deploy never makes a
    /// second one, environment changes reach the new container, and the agent cannot
    /// tamper with its files while they are written.
    async fn apply_bundle(&self, command: &Command, must_exist: bool) -> Result<(), Failure> {
        let agent = command.agent_id;
        let existing = self.state.agent(agent);
        if must_exist && existing.is_none() {
            return Err(at(DeployStage::FetchingConfig)(
                "agent is not deployed on this host",
            ));
        }

        self.stage(agent, DeployStage::FetchingConfig);
        self.checkpoint(command, DeployStage::FetchingConfig)
            .await?;
        let bundle = self.fetch_bundle(command).await?;

        self.stage(agent, DeployStage::Pulling);
        self.checkpoint(command, DeployStage::Pulling).await?;
        let pulling = at(DeployStage::Pulling);
        self.runtime
            .ensure_image(&bundle.image)
            .await
            .map_err(pulling)?;

        self.stage(agent, DeployStage::Creating);
        for file in &bundle.workspace_files {
            files::check_workspace_path(&file.path).map_err(at(DeployStage::Creating))?;
        }
        let port = self
            .claim_port(agent, existing.map(|r| r.gateway_port), &bundle)
            .await?;
        let state_dir = self.agent_dir(agent).join("state");
        self.checkpoint(command, DeployStage::Creating).await?;
        self.remove_container_then_write(agent, &state_dir, &bundle)
            .await
            .map_err(at(DeployStage::Creating))?;

        self.stage(agent, DeployStage::Starting);
        self.checkpoint(command, DeployStage::Starting).await?;
        let spec = AgentSpec {
            agent,
            tier: bundle.tier,
            image: bundle.image.clone(),
            gateway_port: port,
            state_dir,
            env: agent_env(),
            secret_env: bundle.secrets.clone(),
        };
        drop(bundle);
        let container = self
            .create_container(&spec)
            .await
            .map_err(at(DeployStage::Starting))?;
        drop(spec);
        debug!(agent.id = %agent, container.id = %container.container_id, "container started");
        self.checkpoint(command, DeployStage::HealthCheck).await?;
        self.wait_for_health(agent, port).await
    }

    /// Fetches the bundle and checks it before anything in it is used: signed with the
    /// command's session key, for this agent and command, within its validity window by
    /// the host's clock, and not accepted before. Only then are its secrets opened.
    pub(crate) async fn fetch_bundle(&self, command: &Command) -> Result<VerifiedBundle, Failure> {
        let Some(key) = command.session_key.as_ref() else {
            return Err(at(DeployStage::FetchingConfig)(
                "the command carries no session key",
            ));
        };
        let bundle = self
            .server
            .deploy_bundle(command.agent_id, command.id)
            .await
            .map_err(at(DeployStage::FetchingConfig))?;
        let now = Utc::now();
        let verified = bundle
            .verify(key, command.agent_id, command.id, now)
            .map_err(at(DeployStage::FetchingConfig))?;
        self.replay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(verified.command_id, verified.expires_at, now)
            .map_err(at(DeployStage::FetchingConfig))?;
        Ok(verified)
    }

    /// The agent's port (kept when it has one, else a free one), recorded durably before
    /// any container uses it.
    async fn claim_port(
        &self,
        agent: AgentId,
        current: Option<u16>,
        bundle: &VerifiedBundle,
    ) -> Result<u16, Failure> {
        let start = self.config.port_range_start;
        let len = self.config.port_range_len;
        let port = match current {
            Some(port) => port,
            None => ports::allocate(
                start,
                len,
                self.config.port_spacing,
                &self.state.assigned_ports(),
            )
            .ok_or_else(|| {
                at(DeployStage::Creating)(format!(
                    "no free gateway port from {start} to {}",
                    u32::from(start) + u32::from(len) - 1
                ))
            })?,
        };
        self.state.put_agent(AgentRecord {
            agent_id: agent,
            gateway_port: port,
            tier: bundle.tier,
            stopped: false,
        });
        self.state
            .persist()
            .await
            .map_err(at(DeployStage::Creating))?;
        Ok(port)
    }

    /// Removes the agent's container if it has one, then writes its files: nothing runs
    /// in the directory while it is written.
    /// Creates and starts the agent's container from `spec`. A daemon killed while the
    /// engine was creating this agent's container leaves that request running inside the
    /// engine, so the container can appear after the next daemon removed the old one and
    /// before it creates its own: when creating fails and a container is there, it is
    /// removed and the creation tried once more.
    pub(crate) async fn create_container(
        &self,
        spec: &AgentSpec,
    ) -> sparebox_runtime::RuntimeResult<sparebox_runtime::ContainerInfo> {
        let agent = spec.agent;
        match self.runtime.create_and_start(spec).await {
            Ok(container) => Ok(container),
            Err(err) if matches!(self.runtime.inspect(agent).await, Ok(Some(_))) => {
                warn!(agent.id = %agent, error = %err, "a container appeared while creating the agent's; replacing it");
                self.runtime.remove(agent).await?;
                self.runtime.create_and_start(spec).await
            }
            Err(err) => Err(err),
        }
    }

    async fn remove_container_then_write(
        &self,
        agent: AgentId,
        state_dir: &Path,
        bundle: &VerifiedBundle,
    ) -> Result<(), String> {
        let existing = self
            .runtime
            .inspect(agent)
            .await
            .map_err(|e| e.to_string())?;
        if existing.is_some() {
            info!(agent.id = %agent, "replacing the agent's existing container");
            self.runtime
                .remove(agent)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.write_files(state_dir.to_owned(), AgentFiles::from_bundle(bundle))
            .await
    }

    async fn write_files(&self, state_dir: PathBuf, files: AgentFiles) -> Result<(), String> {
        let owner = self.owner;
        tokio::task::spawn_blocking(move || files::write_agent_files(&state_dir, &files, owner))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())
    }

    async fn start(&self, agent: AgentId) -> Result<(), Failure> {
        self.runtime.start(agent).await.map_err(plain)?;
        self.state
            .update_agent(agent, |record| record.stopped = false);
        Ok(())
    }

    async fn stop(&self, agent: AgentId) -> Result<(), Failure> {
        let grace = self.config.stop_grace;
        self.runtime.stop(agent, grace).await.map_err(plain)?;
        self.state
            .update_agent(agent, |record| record.stopped = true);
        Ok(())
    }

    async fn restart(&self, agent: AgentId) -> Result<(), Failure> {
        let grace = self.config.stop_grace;
        self.runtime.restart(agent, grace).await.map_err(plain)?;
        self.state
            .update_agent(agent, |record| record.stopped = false);
        Ok(())
    }

    /// Removes the container, then every file of the agent, then forgets it (freeing its
    /// port). Undeploying an unknown agent succeeds.
    async fn undeploy(&self, agent: AgentId) -> Result<(), Failure> {
        self.runtime.remove(agent).await.map_err(plain)?;
        let dir = self.agent_dir(agent);
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(format!("removing {}: {err}", dir.display()))
            }
            _ => Ok(()),
        })
        .await
        .map_err(plain)?;
        removed.map_err(plain)?;
        self.state.forget_agent(agent);
        info!(agent.id = %agent, "agent undeployed");
        Ok(())
    }
}

#[path = "backup.rs"]
mod backup;

#[cfg(test)]
#[path = "backup_tests.rs"]
mod backup_tests;

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
