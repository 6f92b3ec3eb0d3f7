//! Moving an agent, with its state, from a host that is going away to another one.
//!
//! A move starts when a host's owner drains the host ([`Platform::drain_host`]) or when an
//! agent's host has been offline for [`crate::PlatformConfig::move_grace`] and its deployer
//! asks ([`Platform::request_move`]). It is a small state machine stored per agent
//! ([`MoveRecord`]) and driven by the acks of its commands and by the periodic sweep, so a
//! server restarted in the middle of a move carries on from the stored phase:
//!
//! | phase | waits for | then |
//! |---|---|---|
//! | `backing_up` (old host online) | a `backup` on the old host | any outcome: the newest stored backup, if any, is the one restored |
//! | `deploying` | a host with a free slot of the agent's tier, then the `deploy` there | acked: `restoring` (or done without a backup); failed: the move fails |
//! | `restoring` | the `restore` of that backup on the new host | done, or the move fails |
//!
//! Choosing the new host uses the store's slot check ([`Store::reassign_agent`], the same
//! placement rules as creating an agent): the agent, its deploy and its subscription move
//! to the new host in one transaction. From then on the old host's desired-agents list no
//! longer names the agent, so the old daemon removes its copy (container and files) after
//! its orphan grace period, also when it comes back online much later. Until then both
//! copies may run for a short while. The deployer sees `move_started`, then `moved` or
//! `move_failed` in the agent's events. A deployer's stopped agent comes back running: the
//! move deploys it afresh.

use sparebox_protocol::CommandParams;
use sparebox_store::{MovePhase, MoveRecord};

use super::*;

impl Platform {
    /// Drains a host its owner controls: nothing new is placed on it (its agent cap
    /// becomes 0) and every agent on it starts moving to another host.
    ///
    /// # Errors
    ///
    /// Not found for someone else's host.
    pub async fn drain_host(
        &self,
        owner: &AccountRecord,
        id: HostId,
    ) -> Result<Vec<MoveRecord>, PlatformError> {
        let host = self.owned_host(owner, id).await?;
        let mut settings = host.settings.clone();
        settings.max_agents = Some(0);
        self.store.set_host_settings(id, settings).await?;
        let reason = format!("host {} is being drained by its owner", host.name);
        let mut moves = Vec::new();
        for agent in self.store.agents_for_host(id).await? {
            if matches!(
                agent.state,
                AgentState::Undeployed | AgentState::Undeploying
            ) {
                continue;
            }
            moves.push(self.start_move(&agent, &reason).await?);
        }
        tracing::info!(host = %id, agents = moves.len(), "host drained");
        Ok(moves)
    }

    /// Moves an agent whose host has been offline for at least
    /// [`crate::PlatformConfig::move_grace`], at its deployer's request.
    ///
    /// # Errors
    ///
    /// Not found for someone else's agent; conflict when its host is online or has not
    /// been offline long enough, or the agent is being undeployed.
    pub async fn request_move(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
    ) -> Result<MoveRecord, PlatformError> {
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
        let host = self
            .store
            .host(record.host)
            .await?
            .ok_or_else(|| PlatformError::not_found(format!("host {}", record.host)))?;
        let now = self.clock.now();
        let grace = chrono_duration(self.config.move_grace);
        let silent_since = host.last_heartbeat_at;
        let long_enough = silent_since.is_none_or(|at| now.signed_duration_since(at) >= grace);
        if self.is_online(&host, now) || !long_enough {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!(
                    "host {} has not been offline for {} s: an agent moves only off a host that \
                     is gone (or one its owner drains)",
                    host.id,
                    self.config.move_grace.as_secs()
                ),
            ));
        }
        self.start_move(&record, &format!("host {} has been offline", host.name))
            .await
    }

    /// Starts moving `agent` (or returns its move already under way).
    async fn start_move(
        &self,
        agent: &AgentRecord,
        reason: &str,
    ) -> Result<MoveRecord, PlatformError> {
        if let Some(existing) = self.store.agent_move(agent.id).await? {
            return Ok(existing);
        }
        let now = self.clock.now();
        let host = self.store.host(agent.host).await?;
        let online = host.as_ref().is_some_and(|h| self.is_online(h, now));
        let mut record = MoveRecord {
            agent: agent.id,
            from_host: agent.host,
            to_host: None,
            phase: MovePhase::Deploying,
            command: None,
            backup: None,
            reason: reason.to_owned(),
            started_at: now,
            updated_at: now,
            keep_stopped: self.stopped_by_deployer(agent.id).await?,
        };
        if online && matches!(agent.state, AgentState::Running | AgentState::Stopped) {
            let backup = self.enqueue(agent, CommandKind::Backup, None).await?;
            record.phase = MovePhase::BackingUp;
            record.command = Some(backup.id);
        }
        self.store.save_move(record.clone()).await?;
        self.move_event(agent.id, AgentEventKind::MoveStarted, reason)
            .await?;
        tracing::info!(agent = %agent.id, from = %agent.host, phase = %record.phase, "move started");
        self.drive_move(record.clone()).await?;
        Ok(self.store.agent_move(agent.id).await?.unwrap_or(record))
    }

    /// Whether `agent`'s deployer last asked for it to be stopped (also known when its host
    /// is offline and the agent shows as host offline).
    async fn stopped_by_deployer(&self, agent: AgentId) -> Result<bool, PlatformError> {
        let recent = self
            .store
            .commands_for_agent(agent, super::daemon::DESIRED_HISTORY)
            .await?;
        Ok(super::daemon::stopped_by_deployer(&recent))
    }

    async fn move_event(
        &self,
        agent: AgentId,
        kind: AgentEventKind,
        message: &str,
    ) -> Result<(), PlatformError> {
        self.store
            .add_event(NewAgentEvent {
                agent,
                kind,
                message: message.to_owned(),
                at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Moves every move in progress forward as far as its commands allow; run by the
    /// sweep, so moves survive a server restart.
    pub(super) async fn drive_moves(&self) -> Result<(), PlatformError> {
        for record in self.store.moves().await? {
            let agent = record.agent;
            if let Err(err) = self.drive_move(record).await {
                tracing::warn!(agent = %agent, error = %err, "moving an agent failed for now");
            }
        }
        Ok(())
    }

    /// Moves `agent`'s move forward, if it has one; called after each applied ack.
    pub(super) async fn drive_move_of(&self, agent: AgentId) -> Result<(), PlatformError> {
        match self.store.agent_move(agent).await? {
            Some(record) => self.drive_move(record).await,
            None => Ok(()),
        }
    }

    /// One step of the table in the [module docs](self), repeated while a step completes
    /// without waiting for a host.
    async fn drive_move(&self, mut record: MoveRecord) -> Result<(), PlatformError> {
        loop {
            let status = match record.command {
                Some(id) => self.store.command(id).await?.map(|c| (c.status, c.error)),
                None => None,
            };
            if matches!(
                status,
                Some((CommandStatus::Pending | CommandStatus::Sent, _))
            ) {
                return Ok(());
            }
            let acked = matches!(status, Some((CommandStatus::Acked, _)));
            let error = status.and_then(|(_, error)| error);
            let next = match record.phase {
                MovePhase::BackingUp => self.after_backup(&mut record, acked).await?,
                MovePhase::Deploying if record.command.is_none() => self.place(&mut record).await?,
                MovePhase::Deploying => self.after_deploy(&mut record, acked, error).await?,
                MovePhase::Restoring => {
                    self.finish_move(&record, acked, error.as_deref()).await?;
                    return Ok(());
                }
            };
            if !next {
                return Ok(());
            }
        }
    }

    /// The backup on the old host is over (whatever its outcome): the newest stored
    /// backup is the one to restore.
    async fn after_backup(
        &self,
        record: &mut MoveRecord,
        acked: bool,
    ) -> Result<bool, PlatformError> {
        if !acked {
            tracing::warn!(agent = %record.agent, "fresh backup failed; moving with the newest stored one");
        }
        record.backup = self.latest_backup(record.agent).await?;
        record.phase = MovePhase::Deploying;
        record.command = None;
        self.save(record).await?;
        Ok(true)
    }

    /// Picks a host with room and reassigns the agent there with its deploy. Without any
    /// room anywhere, the move waits for the next sweep.
    async fn place(&self, record: &mut MoveRecord) -> Result<bool, PlatformError> {
        if record.backup.is_none() {
            record.backup = self.latest_backup(record.agent).await?;
        }
        let now = self.clock.now();
        for host in self.store.list_hosts().await? {
            if host.id == record.from_host || !self.is_online(&host, now) {
                continue;
            }
            let deploy = NewCommand {
                id: CommandId::new_random(),
                agent: record.agent,
                host: host.id,
                kind: CommandKind::Deploy,
                created_at: now,
                params: None,
                image: None,
            };
            match self
                .store
                .reassign_agent(record.agent, host.id, deploy, self.config.reserve)
                .await
            {
                Ok((_, command)) => {
                    record.to_host = Some(host.id);
                    record.command = Some(command.id);
                    self.save(record).await?;
                    tracing::info!(agent = %record.agent, to = %host.id, "agent assigned to its new host");
                    return Ok(false);
                }
                Err(
                    StoreError::NoSlot { .. }
                    | StoreError::NotOffered { .. }
                    | StoreError::HostAtCap { .. },
                ) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        tracing::warn!(agent = %record.agent, "no host has room for a moving agent; trying again later");
        Ok(false)
    }

    async fn after_deploy(
        &self,
        record: &mut MoveRecord,
        acked: bool,
        error: Option<String>,
    ) -> Result<bool, PlatformError> {
        if !acked {
            let message = error.unwrap_or_else(|| "deploy expired".to_owned());
            self.finish_move(record, false, Some(&format!("deploy: {message}")))
                .await?;
            return Ok(false);
        }
        let Some(backup) = record.backup else {
            self.finish_move(record, true, None).await?;
            return Ok(false);
        };
        let agent = self
            .store
            .agent(record.agent)
            .await?
            .ok_or_else(|| PlatformError::not_found(format!("agent {}", record.agent)))?;
        let params = CommandParams::Restore {
            backup_id: backup.to_string(),
        };
        let restore = self
            .enqueue(&agent, CommandKind::Restore, Some(params))
            .await?;
        record.phase = MovePhase::Restoring;
        record.command = Some(restore.id);
        self.save(record).await?;
        Ok(false)
    }

    async fn finish_move(
        &self,
        record: &MoveRecord,
        ok: bool,
        error: Option<&str>,
    ) -> Result<(), PlatformError> {
        let to = record
            .to_host
            .map_or_else(|| "another host".to_owned(), |h| format!("host {h}"));
        let (kind, message) = match (ok, record.backup) {
            (true, Some(backup)) => (
                AgentEventKind::Moved,
                format!("moved to {to} with backup {backup}"),
            ),
            (true, None) => (
                AgentEventKind::Moved,
                format!("moved to {to} without a backup: its state starts empty"),
            ),
            (false, _) => (
                AgentEventKind::MoveFailed,
                format!(
                    "moving to {to} failed: {}",
                    error.unwrap_or(sparebox_core::lifecycle::UNKNOWN_REASON)
                ),
            ),
        };
        self.move_event(record.agent, kind, &message).await?;
        if ok && record.keep_stopped {
            // Its deployer stopped it before the move; the deploy on the new host started it.
            if let Some(agent) = self.store.agent(record.agent).await? {
                self.enqueue(&agent, CommandKind::Stop, None).await?;
            }
        }
        self.store.delete_move(record.agent).await?;
        tracing::info!(agent = %record.agent, ok, "{message}");
        Ok(())
    }

    async fn latest_backup(&self, agent: AgentId) -> Result<Option<CommandId>, PlatformError> {
        let backups = self.store.backups_for_agent(agent).await?;
        Ok(backups.first().map(|b| b.id))
    }

    async fn save(&self, record: &mut MoveRecord) -> Result<(), PlatformError> {
        record.updated_at = self.clock.now();
        self.store.save_move(record.clone()).await?;
        Ok(())
    }
}
