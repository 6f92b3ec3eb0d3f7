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
                AgentState::HostOffline | AgentState::Undeployed | AgentState::Undeploying
            ) {
                continue;
            }
            let next = self
                .advance(&agent, &AgentEvent::HostLost, AgentUpdate::default())
                .await?;
            if next.is_some_and(|next| next.state() == AgentState::HostOffline) {
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
            if let Some(agent) = self.store.agent(command.agent).await? {
                let event = AgentEvent::CommandExpired { kind: command.kind };
                self.advance(&agent, &event, AgentUpdate::default()).await?;
            }
        }
        Ok(expired)
    }
}
