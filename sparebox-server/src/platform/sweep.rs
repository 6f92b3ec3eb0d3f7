//! Periodic housekeeping: command expiry, host liveness, scheduled backups and moves.

use super::*;

impl Platform {
    /// One round of housekeeping by the platform's clock: expires commands older than the
    /// expiry window, deletes expired sessions, and marks the agents of hosts that have gone silent as host offline.
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
        summary.sessions_deleted = self.store.delete_expired_sessions(now).await?;
        self.store.delete_expired_command_logs(now).await?;
        summary.backups_queued = self.queue_scheduled_backups(now).await?;
        self.drive_moves().await?;
        self.store
            .prune_agent_samples(now - sparebox_store::SampleRetention::default().keep_for)
            .await?;
        let silent_since = now - chrono_duration(self.config.heartbeat_interval * 3);
        let online = self.store.count_hosts_heard_since(silent_since).await?;
        summary.hosts_online = usize::try_from(online).unwrap_or(usize::MAX);
        summary.agents_marked_offline = self.mark_silent_hosts_offline(silent_since).await?;
        Ok(summary)
    }

    /// Marks host offline the agents of every host not heard from since `silent_since`.
    /// Agents already marked are not read again, so the work follows what changed, not
    /// how many hosts are silent.
    async fn mark_silent_hosts_offline(
        &self,
        silent_since: DateTime<Utc>,
    ) -> Result<usize, PlatformError> {
        let mut marked_per_host: BTreeMap<HostId, usize> = BTreeMap::new();
        for agent in self.store.agents_of_silent_hosts(silent_since).await? {
            let next = self
                .advance(&agent, &AgentEvent::HostLost, AgentUpdate::default())
                .await?;
            if next.is_some_and(|next| next.state() == AgentState::HostOffline) {
                *marked_per_host.entry(agent.host).or_default() += 1;
            }
        }
        for (host, agents) in &marked_per_host {
            tracing::warn!(host = %host, agents, "host went silent, its agents are marked host offline");
        }
        Ok(marked_per_host.values().sum())
    }

    async fn expire_commands(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CommandRecord>, PlatformError> {
        let expired = self
            .store
            .expire_commands(
                now - chrono_duration(self.config.command_expiry),
                now - chrono_duration(self.config.delivered_command_expiry),
            )
            .await?;
        for command in &expired {
            tracing::info!(command = %command.id, agent = %command.agent, kind = %command.kind, "command expired");
            if let Some(agent) = self.store.agent(command.agent).await? {
                let event = AgentEvent::CommandExpired { kind: command.kind };
                self.advance(&agent, &event, AgentUpdate::default()).await?;
            }
        }
        Ok(expired)
    }
}
