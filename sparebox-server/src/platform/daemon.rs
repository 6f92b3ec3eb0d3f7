//! What host daemons call: heartbeats and deploy bundles.

use sparebox_core::crypto::BundleDraft;
use std::collections::BTreeSet;

use sparebox_protocol::{
    AgentEventKind as EngineEventKind, AgentEventReport, AgentStatusReport, DesiredAgent,
    DesiredState,
};
use sparebox_store::{AgentSample, ReportWrite, SampleRetention, SeenAgent};

/// What a heartbeat refused for want of a turn tells its daemon to wait, in seconds.
pub const BUSY_RETRY_AFTER_SECS: u64 = 10;

/// How many of an agent's latest commands decide what the platform wants of it.
pub(super) const DESIRED_HISTORY: u32 = 20;

use super::*;

impl Platform {
    /// Handles one heartbeat from `host`: records the host, applies acks and status
    /// reports, and hands over pending commands. When the daemon asked to wait and nothing
    /// is pending, holds on until a command is queued or the wait runs out.
    ///
    /// At most [`PlatformConfig::heartbeat_concurrency`] heartbeats are processed at once;
    /// a held heartbeat gives up its turn while it waits for a command.
    ///
    /// # Errors
    ///
    /// Bad request for an unsupported protocol version or too many reports; unavailable
    /// (retry after [`BUSY_RETRY_AFTER_SECS`]) when no turn came within
    /// [`PlatformConfig::heartbeat_queue_timeout`].
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
        let turn = self.heartbeat_turn().await?;
        let wakeups = self.store.host_wakeups();
        let now = self.clock.now();
        let mut confirmed = Vec::with_capacity(request.command_acks.len());
        let mut acks = Vec::new();
        for ack in &request.command_acks {
            if let Some(applied) = self.apply_ack(host, ack, now).await? {
                acks.push(applied);
            }
            confirmed.push(ack.id);
        }
        for event in &request.agent_events {
            self.record_engine_event(host, event, now).await?;
        }
        let engine_events: BTreeSet<AgentId> =
            request.agent_events.iter().map(|e| e.agent_id).collect();

        // Most reports only refresh what the platform knows: those are written with the
        // host's own record in one transaction. Reports that change an agent's state,
        // imply an event or name an agent the host does not hold go through the
        // lifecycle one by one, as do reports whose agent changed in between.
        let agents = self.store.agents_for_host(host.id).await?;
        let (routine, mut special) = split_reports(&agents, request.agent_statuses, &engine_events);
        let writes = routine
            .iter()
            .map(|(agent, report)| ReportWrite {
                agent: agent.id,
                seen: SeenAgent::from(*agent),
                report: report.clone(),
                sample: sample_of(report, now),
            })
            .collect();
        let heartbeat = HostHeartbeat {
            hardware: request.hardware,
            isolation: request.isolation,
            daemon_version: request.daemon_version,
        };
        let changed = self
            .store
            .record_heartbeat_reports(
                host.id,
                heartbeat,
                now,
                writes,
                SampleRetention::default().min_interval,
            )
            .await?;
        special.extend(
            routine
                .into_iter()
                .filter(|(agent, _)| changed.contains(&agent.id))
                .map(|(_, report)| report),
        );
        let unchanged = special.is_empty();
        for report in special {
            // Daemons that stream engine events report crashes through them; for older
            // daemons the server infers them from the reports.
            let infer = !engine_events.contains(&report.agent_id);
            self.apply_report(host, report, now, infer).await?;
        }

        let mut commands = self.deliver(host, now).await?;
        let mut waited = false;
        if commands.is_empty() {
            if let Some(wait) = request.wait_seconds.filter(|s| *s > 0) {
                let wait = Duration::from_secs(u64::from(wait)).min(self.config.max_heartbeat_wait);
                drop(turn);
                commands = self.wait_for_commands(host, wakeups, wait).await?;
                waited = true;
            }
        }
        // The agents read above are still current unless something since may have changed
        // them: a report applied on its own, a delivered command, or time spent waiting.
        let agents = if unchanged && commands.is_empty() && !waited {
            agents
        } else {
            self.store.agents_for_host(host.id).await?
        };
        let response = HeartbeatResponse {
            commands,
            confirmed_acks: confirmed,
            next_heartbeat_seconds: u32::try_from(self.config.heartbeat_interval.as_secs())
                .unwrap_or(u32::MAX),
            server_time: self.clock.now(),
            desired_agents: Some(self.desired_agents(host, agents).await?),
        };
        Ok(HeartbeatOutcome { response, acks })
    }

    /// What the platform wants on `host`: every agent not being removed, running unless
    /// its deployer's latest effective start/stop/restart/deploy was a stop, and whether a
    /// command for it is still on its way (the daemon leaves those alone).
    async fn desired_agents(
        &self,
        host: &HostRecord,
        agents: Vec<AgentRecord>,
    ) -> Result<Vec<DesiredAgent>, PlatformError> {
        let mut desired = Vec::new();
        let mut history = self
            .store
            .recent_commands_for_host(host.id, DESIRED_HISTORY)
            .await?;
        for agent in agents {
            if matches!(
                agent.state,
                AgentState::Undeployed | AgentState::Undeploying
            ) {
                continue;
            }
            let recent = history.remove(&agent.id).unwrap_or_default();
            let command_pending = any_in_flight(&recent);
            let state = if stopped_by_deployer(&recent) {
                DesiredState::Stopped
            } else {
                DesiredState::Running
            };
            desired.push(DesiredAgent {
                agent_id: agent.id,
                tier: agent.tier,
                state,
                command_pending,
            });
        }
        Ok(desired)
    }

    /// Queues a fresh deploy for an agent whose container vanished from its host while it
    /// was running (the daemon cannot recreate it alone: the bundle comes with a deploy).
    /// A stopped agent is not brought back to life this way, and a deploy that fails
    /// leaves the agent in error, so this never loops.
    async fn redeploy_missing(&self, agent: &AgentRecord) -> Result<(), PlatformError> {
        let recent = self
            .store
            .commands_for_agent(agent.id, DESIRED_HISTORY)
            .await?;
        if any_in_flight(&recent) {
            return Ok(());
        }
        let command = self.enqueue(agent, CommandKind::Deploy, None).await?;
        tracing::warn!(agent = %agent.id, command = %command.id, "agent's container is missing on its host; deploy queued again");
        Ok(())
    }

    /// Records an engine event (a crash, an out-of-memory kill, a restart by the engine's
    /// policy) in the agent's history. Starts are already recorded from command acks, and
    /// a death the platform expected (a stop, an undeploy) is not a crash. An event that
    /// arrives twice (the daemon re-sends after a lost answer) is recorded once.
    async fn record_engine_event(
        &self,
        host: &HostRecord,
        event: &AgentEventReport,
        now: DateTime<Utc>,
    ) -> Result<(), PlatformError> {
        let Some(agent) = self.store.agent(event.agent_id).await? else {
            return Ok(());
        };
        if agent.host != host.id {
            return Ok(());
        }
        let at = event.at.format("%Y-%m-%d %H:%M:%S UTC");
        let (kind, message) = match event.kind {
            EngineEventKind::Started => return Ok(()),
            EngineEventKind::Died if agent.state != AgentState::Running => return Ok(()),
            EngineEventKind::Died => (
                AgentEventKind::Crashed,
                match event.exit_code {
                    Some(code) => format!("exited with code {code} at {at}"),
                    None => format!("exited at {at}"),
                },
            ),
            EngineEventKind::OomKilled => (
                AgentEventKind::OomKilled,
                format!("killed for exceeding its memory limit at {at}"),
            ),
            EngineEventKind::Restarted => (
                AgentEventKind::Restarted,
                format!("restarted by the engine at {at}"),
            ),
        };
        let recent = self.store.events_for_agent(agent.id, 20).await?;
        if recent
            .iter()
            .any(|e| e.kind == kind && e.message == message)
        {
            return Ok(());
        }
        self.store
            .add_event(NewAgentEvent {
                agent: agent.id,
                kind,
                message,
                at: now,
            })
            .await?;
        Ok(())
    }

    /// Waits for a turn to process a heartbeat, at most
    /// [`PlatformConfig::heartbeat_queue_timeout`].
    async fn heartbeat_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PlatformError> {
        let wait = self.config.heartbeat_queue_timeout;
        match tokio::time::timeout(wait, self.heartbeat_turns.acquire()).await {
            Ok(Ok(turn)) => Ok(turn),
            // The semaphore is never closed; treat it like a full queue all the same.
            Ok(Err(_)) | Err(_) => Err(PlatformError::new(
                ErrorCode::Unavailable,
                format!(
                    "the server is busy: this heartbeat waited {} ms for one of {} turns; \
                     retry in {BUSY_RETRY_AFTER_SECS} s",
                    wait.as_millis(),
                    self.config.heartbeat_concurrency.max(1)
                ),
            )
            .with_retry_after(BUSY_RETRY_AFTER_SECS)),
        }
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
            let sent = AgentEvent::CommandSent { kind: record.kind };
            self.advance(&agent, &sent, AgentUpdate::default()).await?;
            if let (CommandKind::Upgrade, Some(image)) = (record.kind, &record.image) {
                self.store
                    .add_event(NewAgentEvent {
                        agent: agent.id,
                        kind: AgentEventKind::UpgradeStarted,
                        message: format!("upgrade from {} to {image} started", agent.image),
                        at: now,
                    })
                    .await?;
            }
            commands.push(self.wire_command(&record, agent.tier));
        }
        Ok(commands)
    }

    /// `record` as the daemon receives it, with the session key of a command that needs a
    /// deploy bundle.
    fn wire_command(&self, record: &CommandRecord, tier: sparebox_core::Tier) -> Command {
        Command {
            id: record.id,
            agent_id: record.agent,
            kind: record.kind,
            tier,
            created_at: record.created_at,
            session_key: record
                .kind
                .needs_session_key()
                .then(|| self.keyring.session_key(record.id)),
            params: record.params.clone(),
        }
    }

    /// A command already delivered to `host` and not answered yet, delivered again: a
    /// daemon that was killed before it could keep what it needed of the command (the
    /// deploy bundle's session key is never written to the host's disk) asks for it to
    /// finish the command instead of failing it.
    ///
    /// # Errors
    ///
    /// Not found when the command is not this host's; conflict when it is no longer
    /// waiting for the daemon (acked, failed, expired or superseded).
    pub async fn redeliver_command(
        &self,
        host: &HostRecord,
        command_id: CommandId,
    ) -> Result<Command, PlatformError> {
        let command = match self.store.command(command_id).await? {
            Some(command) if command.host == host.id => command,
            _ => return Err(PlatformError::not_found(format!("command {command_id}"))),
        };
        if command.status != CommandStatus::Sent {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("command {command_id} is {}, not sent", command.status),
            ));
        }
        let agent = match self.store.agent(command.agent).await? {
            Some(agent) if agent.host == host.id => agent,
            _ => return Err(PlatformError::not_found(format!("command {command_id}"))),
        };
        Ok(self.wire_command(&command, agent.tier))
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
        let result = match ack.status {
            AckStatus::Acked => AckResult::Acked,
            AckStatus::Failed => AckResult::Failed,
        };
        let event = AgentEvent::from_ack(command.kind, result, ack.error.as_deref());
        let upgraded = command.kind == CommandKind::Upgrade && result == AckResult::Acked;
        let update = AgentUpdate {
            image: command.image.clone().filter(|_| upgraded),
            ..AgentUpdate::default()
        };
        self.advance(&agent, &event, update).await?;
        if let Some((kind, message)) = ack_event(&command, &agent, ack.status, ack.error.as_deref())
        {
            self.store
                .add_event(NewAgentEvent {
                    agent: agent.id,
                    kind,
                    message,
                    at: now,
                })
                .await?;
        }
        tracing::info!(agent = %agent.id, command = %command.id, kind = %command.kind, status = ?ack.status, "command acknowledged");
        self.drive_move_of(agent.id).await?;
        Ok(Some((command.kind, command.status)))
    }

    async fn apply_report(
        &self,
        host: &HostRecord,
        report: sparebox_protocol::AgentStatusReport,
        now: DateTime<Utc>,
        infer_events: bool,
    ) -> Result<(), PlatformError> {
        let Some(agent) = self.store.agent(report.agent_id).await? else {
            return Ok(());
        };
        if agent.host != host.id {
            tracing::warn!(host = %host.id, agent = %agent.id, "host reported an agent it does not hold");
            return Ok(());
        }
        let event = infer_events
            .then(|| report_event(&agent, &report))
            .flatten();
        let vanished = report.status == RuntimeStatus::Missing
            && matches!(agent.state, AgentState::Running | AgentState::HostOffline);
        let lifecycle_event = AgentEvent::Reported(report.host_report());
        let sample = sample_of(&report, now);
        let update = AgentUpdate {
            report: Some((report, now)),
            ..AgentUpdate::default()
        };
        self.advance(&agent, &lifecycle_event, update).await?;
        if let Some(sample) = sample {
            self.store
                .record_agent_sample(sample, sparebox_store::SampleRetention::default())
                .await?;
        }
        if vanished {
            self.redeploy_missing(&agent).await?;
        }
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
        let secrets = sealing::open(&self.keyring, agent.id, &agent.sealed_secrets)?;
        let now = self.clock.now();
        let draft = BundleDraft {
            agent_id: agent.id,
            command_id,
            tier: agent.tier,
            image: command.image.clone().unwrap_or_else(|| agent.image.clone()),
            openclaw_config: validate::with_platform_keys(agent.openclaw_config.clone()),
            workspace_files: agent.workspace_files.clone(),
            secrets,
            issued_at: now,
            expires_at: now + chrono_duration(self.config.bundle_ttl),
        };
        draft
            .seal(&self.keyring.session_key(command_id))
            .map_err(|err| {
                tracing::error!(agent = %agent_id, command = %command_id, error = %err, "sealing a deploy bundle failed");
                PlatformError::new(ErrorCode::Internal, "the deploy bundle could not be sealed")
            })
    }
}

/// Splits a heartbeat's reports into routine ones, each with the agent it leaves as it is
/// but for the report, and the rest, in the order they came. An agent reported more than
/// once in one heartbeat has all its reports applied one by one.
fn split_reports<'a>(
    agents: &'a [AgentRecord],
    reports: Vec<AgentStatusReport>,
    engine_events: &BTreeSet<AgentId>,
) -> (
    Vec<(&'a AgentRecord, AgentStatusReport)>,
    Vec<AgentStatusReport>,
) {
    let mut times_reported: BTreeMap<AgentId, usize> = BTreeMap::new();
    for report in &reports {
        *times_reported.entry(report.agent_id).or_default() += 1;
    }
    let by_id: BTreeMap<AgentId, &AgentRecord> = agents.iter().map(|a| (a.id, a)).collect();
    let mut routine = Vec::new();
    let mut special = Vec::new();
    for report in reports {
        match by_id.get(&report.agent_id).copied() {
            Some(agent)
                if times_reported[&report.agent_id] == 1
                    && is_routine(agent, &report, !engine_events.contains(&agent.id)) =>
            {
                routine.push((agent, report));
            }
            _ => special.push(report),
        }
    }
    (routine, special)
}

/// Whether `report` changes nothing about `agent` but its latest report: the lifecycle
/// stays where it is, no event is implied (`infer_events` as for
/// [`Platform::heartbeat`]'s reports) and no redeploy is due.
fn is_routine(agent: &AgentRecord, report: &AgentStatusReport, infer_events: bool) -> bool {
    let Ok(current) =
        AgentLifecycle::from_parts(agent.state, agent.deploy_stage, agent.error.as_deref())
    else {
        return false;
    };
    let vanished = report.status == RuntimeStatus::Missing
        && matches!(agent.state, AgentState::Running | AgentState::HostOffline);
    let unchanged = transition(&current, &AgentEvent::Reported(report.host_report()))
        .is_ok_and(|next| next == current);
    unchanged && !vanished && !(infer_events && report_event(agent, report).is_some())
}

/// The resource sample a report carries, if it measured anything.
fn sample_of(report: &AgentStatusReport, now: DateTime<Utc>) -> Option<AgentSample> {
    let measured = report.cpu_percent.is_some() || report.ram_usage_mb.is_some();
    measured.then_some(AgentSample {
        agent: report.agent_id,
        at: now,
        cpu_percent: report.cpu_percent,
        ram_usage_mb: report.ram_usage_mb,
        ram_limit_mb: report.ram_limit_mb,
    })
}

/// The history event recorded for an applied ack (`agent` as it was before the ack), if
/// any: reading logs leaves no event behind.
fn ack_event(
    command: &CommandRecord,
    agent: &AgentRecord,
    status: AckStatus,
    error: Option<&str>,
) -> Option<(AgentEventKind, String)> {
    let target = command.image.as_deref().unwrap_or("an unknown image");
    if status == AckStatus::Failed {
        let message = error.unwrap_or(sparebox_core::lifecycle::UNKNOWN_REASON);
        if command.kind == CommandKind::Upgrade {
            return Some((
                AgentEventKind::UpgradeRolledBack,
                format!("upgrade from {} to {target} failed: {message}", agent.image),
            ));
        }
        return Some((
            AgentEventKind::CommandFailed,
            format!("{} failed: {message}", command.kind),
        ));
    }
    let kind = match command.kind {
        CommandKind::Deploy => AgentEventKind::Deployed,
        CommandKind::Start => AgentEventKind::Started,
        CommandKind::Restart => AgentEventKind::Restarted,
        CommandKind::Stop => AgentEventKind::Stopped,
        CommandKind::UpdateConfig => AgentEventKind::ConfigUpdated,
        CommandKind::Undeploy => AgentEventKind::Undeployed,
        CommandKind::Upgrade => {
            return Some((
                AgentEventKind::Upgraded,
                format!("upgraded from {} to {target}", agent.image),
            ))
        }
        CommandKind::Backup => AgentEventKind::BackedUp,
        CommandKind::Restore => AgentEventKind::Restored,
        CommandKind::Logs => return None,
    };
    Some((kind, format!("{} done", command.kind)))
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

/// Whether any of `commands` is still on its way to the host (pending or sent).
fn any_in_flight(commands: &[CommandRecord]) -> bool {
    commands
        .iter()
        .any(|c| matches!(c.status, CommandStatus::Pending | CommandStatus::Sent))
}

/// Whether an agent's deployer wants it stopped: its latest start, stop, restart or deploy
/// that did not fail, expire or get superseded was a stop. `recent` is newest first.
pub(super) fn stopped_by_deployer(recent: &[CommandRecord]) -> bool {
    let intent = recent.iter().find(|c| {
        matches!(
            c.kind,
            CommandKind::Start | CommandKind::Stop | CommandKind::Restart | CommandKind::Deploy
        ) && !matches!(
            c.status,
            CommandStatus::Failed | CommandStatus::Expired | CommandStatus::Superseded
        )
    });
    intent.is_some_and(|c| c.kind == CommandKind::Stop)
}
