//! Deployer operations on agents: create, command, reconfigure, retry.

use super::*;

impl Platform {
    /// Creates an agent on a host for `owner` and queues its deploy, if the host has a free
    /// slot of the tier.
    ///
    /// # Errors
    ///
    /// Forbidden without the `deployer` role; payment required in Stripe mode (except for
    /// admins, who may still create agents directly); bad request for invalid input; not
    /// found for an unknown host; conflict when the host does not offer the tier, is at
    /// its cap or has no free slot.
    pub async fn create_agent(
        &self,
        owner: &AccountRecord,
        request: AgentRequest,
    ) -> Result<(AgentView, CommandRecord), PlatformError> {
        self.require_role(owner, sparebox_store::Role::Deployer, "creating an agent")?;
        if self.config.stripe.is_some() && !owner.has_role(sparebox_store::Role::Admin) {
            return Err(PlatformError::new(
                ErrorCode::PaymentRequired,
                "this server bills agents through stripe: start a checkout with POST /api/v1/checkout",
            ));
        }
        let new = self.prepare_agent(owner, request).await?;
        let (id, host, tier, now) = (new.id, new.host, new.tier, new.created_at);
        let (agent, command) = self
            .store
            .create_agent(
                new,
                NewCommand {
                    id: CommandId::new_random(),
                    agent: id,
                    host,
                    kind: CommandKind::Deploy,
                    created_at: now,
                    params: None,
                    image: None,
                },
                self.config.reserve,
            )
            .await?;
        tracing::info!(agent = %agent.id, host = %agent.host, tier = %tier, "agent created, deploy queued");
        Ok((AgentView::from(&agent), command))
    }

    /// Validates an agent request and turns it into a new agent with a fresh id, its
    /// secrets (plus the platform's gateway token) sealed to that id.
    ///
    /// # Errors
    ///
    /// Bad request for invalid input; not found for an unknown host.
    pub(super) async fn prepare_agent(
        &self,
        owner: &AccountRecord,
        request: AgentRequest,
    ) -> Result<NewAgent, PlatformError> {
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
        Ok(NewAgent {
            id,
            host: request.host_id,
            owner: owner.id,
            name,
            tier,
            image: self.config.agent_image.clone(),
            openclaw_config: config,
            workspace_files: request.workspace_files,
            sealed_secrets: sealing::seal(&self.keyring, id, &secrets)?,
            created_at: self.clock.now(),
        })
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
        let command = self.enqueue(&record, kind, None).await?;
        if kind == CommandKind::Undeploy {
            self.advance(
                &record,
                &AgentEvent::UndeployRequested,
                AgentUpdate::default(),
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
            let current = sealing::open(&self.keyring, agent, &record.sealed_secrets)?;
            if let Some(token) = current.get(GATEWAY_TOKEN_ENV) {
                secrets.insert(GATEWAY_TOKEN_ENV.to_owned(), token.clone());
            }
            change.sealed_secrets = Some(sealing::seal(&self.keyring, agent, &secrets)?);
        }
        self.store.update_agent(agent, change).await?;
        if record.state == AgentState::PendingDeploy {
            tracing::info!(agent = %agent, "configuration replaced before deploy");
            return Ok(None);
        }
        let command = self
            .enqueue(&record, CommandKind::UpdateConfig, None)
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
        let failed =
            AgentLifecycle::from_parts(record.state, record.deploy_stage, record.error.as_deref())
                .ok()
                .filter(|current| transition(current, &AgentEvent::RetryRequested).is_ok());
        if failed.is_none() {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!(
                    "agent {agent} is {}: only a failed deploy can be retried",
                    record.state
                ),
            ));
        }
        let command = self.enqueue(&record, CommandKind::Deploy, None).await?;
        self.advance(&record, &AgentEvent::RetryRequested, AgentUpdate::default())
            .await?;
        tracing::info!(agent = %agent, command = %command.id, "deploy retried");
        Ok(command)
    }

    /// An agent's recent events, newest first, for its owner or an admin.
    ///
    /// # Errors
    ///
    /// Not found for someone else's agent.
    pub async fn agent_events(
        &self,
        reader: &AccountRecord,
        agent: AgentId,
    ) -> Result<Vec<sparebox_store::AgentEventRecord>, PlatformError> {
        self.readable_agent(reader, agent).await?;
        Ok(self.store.events_for_agent(agent, 100).await?)
    }

    /// An agent's CPU and memory samples of the last `window`, oldest first, for its
    /// owner or an admin. Heartbeats record at most one a minute, kept for 48 hours.
    ///
    /// # Errors
    ///
    /// Not found for someone else's agent.
    pub async fn agent_samples(
        &self,
        reader: &AccountRecord,
        agent: AgentId,
        window: Duration,
    ) -> Result<Vec<sparebox_store::AgentSample>, PlatformError> {
        self.readable_agent(reader, agent).await?;
        let since = self.clock.now() - chrono_duration(window);
        Ok(self.store.agent_samples(agent, since).await?)
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
}
