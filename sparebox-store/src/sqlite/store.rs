//! The [`Store`] implementation for [`SqliteStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sparebox_core::command::AckEffect;
use sparebox_core::{AgentId, AgentState, CommandId, CommandStatus, HostId, Reserve};
use sparebox_protocol::CommandAck;
use sqlx::Row;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::rows::{micros, ACCOUNT_COLUMNS, AGENT_COLUMNS, COMMAND_COLUMNS, HOST_COLUMNS};
use super::{
    host_hardware, insert_command, not_found, rows, select_command, slot_holders,
    supersede_pending, SqliteStore,
};
use crate::codec::{
    ack_effect, ack_error, apply_update, check_first_command, db_error, has_slot, sql_limit,
    to_json,
};
use crate::{
    wakeup, AccountId, AccountRecord, AckOutcome, AgentEventRecord, AgentRecord, AgentUpdate,
    CommandRecord, HostHeartbeat, HostRecord, NewAccount, NewAgent, NewAgentEvent, NewCommand,
    NewHost, Store, StoreError, StoreResult,
};

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> StoreResult<AccountRecord> {
        let sql = format!(
            "INSERT INTO accounts (id, name, token_hash, created_at) VALUES (?, ?, ?, ?) \
             RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(Uuid::new_v4().to_string())
            .bind(&new.name)
            .bind(&new.token_hash)
            .bind(micros(new.created_at))
            .fetch_one(&self.pool)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("account {:?}", new.name),
                    || not_found("account", &new.name),
                )
            })?;
        rows::account(&row)
    }

    async fn account_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE token_hash = ?");
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn create_host(&self, new: NewHost) -> StoreResult<HostRecord> {
        let sql = format!(
            "INSERT INTO hosts (id, owner, name, key_hash, key_prefix, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {HOST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(Uuid::new_v4().to_string())
            .bind(new.owner.to_string())
            .bind(&new.name)
            .bind(&new.key_hash)
            .bind(&new.key_prefix)
            .bind(micros(new.created_at))
            .fetch_one(&self.pool)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("host key {}", new.key_prefix),
                    || not_found("account", new.owner),
                )
            })?;
        rows::host(&row)
    }

    async fn host(&self, id: HostId) -> StoreResult<Option<HostRecord>> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::host).transpose()
    }

    async fn host_by_key_hash(&self, key_hash: &[u8]) -> StoreResult<Option<HostRecord>> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE key_hash = ?");
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::host).transpose()
    }

    async fn list_hosts(&self) -> StoreResult<Vec<HostRecord>> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY created_at, rowid");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(rows::host).collect()
    }

    async fn record_heartbeat(
        &self,
        host: HostId,
        heartbeat: HostHeartbeat,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let hardware = to_json("hosts.hardware", &heartbeat.hardware)?;
        let done = sqlx::query(
            "UPDATE hosts SET hardware = ?, isolation = ?, daemon_version = ?, \
             last_heartbeat_at = ? WHERE id = ?",
        )
        .bind(hardware.to_string())
        .bind(heartbeat.isolation.as_str())
        .bind(&heartbeat.daemon_version)
        .bind(micros(now))
        .bind(host.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("host", host));
        }
        Ok(())
    }

    async fn create_agent(
        &self,
        new: NewAgent,
        first_command: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)> {
        check_first_command(&new, &first_command)?;
        let config = to_json("agents.openclaw_config", &new.openclaw_config)?;
        let files = to_json("agents.workspace_files", &new.workspace_files)?;
        let mut tx = self.write().await?;

        let hardware = host_hardware(&mut tx, new.host).await?;
        let holders = slot_holders(&mut tx, new.host).await?;
        let fits = hardware.is_some_and(|hw| has_slot(&hw, &reserve, holders, new.tier));
        if !fits {
            return Err(StoreError::NoSlot {
                host: new.host,
                tier: new.tier,
            });
        }

        let sql = format!(
            "INSERT INTO agents (id, host, owner, name, tier, image, openclaw_config, \
             workspace_files, sealed_secrets, state, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {AGENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.id.to_string())
            .bind(new.host.to_string())
            .bind(new.owner.to_string())
            .bind(&new.name)
            .bind(new.tier.as_str())
            .bind(&new.image)
            .bind(config.to_string())
            .bind(files.to_string())
            .bind(&new.sealed_secrets)
            .bind(AgentState::PendingDeploy.as_str())
            .bind(micros(new.created_at))
            .fetch_one(&mut *tx)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("agent {}", new.id),
                    || not_found("account", new.owner),
                )
            })?;
        let agent = rows::agent(&row)?;
        let command = insert_command(&mut tx, &first_command).await?;
        tx.commit().await?;

        wakeup::wake(&self.wakeups, new.host);
        Ok((agent, command))
    }

    async fn agent(&self, id: AgentId) -> StoreResult<Option<AgentRecord>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::agent).transpose()
    }

    async fn agents_for_owner(&self, owner: AccountId) -> StoreResult<Vec<AgentRecord>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE owner = ? ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::agent).collect()
    }

    async fn agents_for_host(&self, host: HostId) -> StoreResult<Vec<AgentRecord>> {
        let sql =
            format!("SELECT {AGENT_COLUMNS} FROM agents WHERE host = ? ORDER BY created_at, rowid");
        let rows = sqlx::query(&sql)
            .bind(host.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::agent).collect()
    }

    async fn update_agent(&self, id: AgentId, update: AgentUpdate) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("agent", id))?;
        let mut agent = rows::agent(&row)?;
        apply_update(&mut agent, update);

        let report = agent
            .last_report
            .as_ref()
            .map(|r| to_json("agents.last_report", r))
            .transpose()?;
        sqlx::query(
            "UPDATE agents SET state = ?, deploy_stage = ?, error = ?, last_report = ?, \
             last_report_at = ?, openclaw_config = ?, workspace_files = ?, sealed_secrets = ? \
             WHERE id = ?",
        )
        .bind(agent.state.as_str())
        .bind(agent.deploy_stage.map(|s| s.as_str()))
        .bind(&agent.error)
        .bind(report.map(|r| r.to_string()))
        .bind(agent.last_report_at.map(micros))
        .bind(to_json("agents.openclaw_config", &agent.openclaw_config)?.to_string())
        .bind(to_json("agents.workspace_files", &agent.workspace_files)?.to_string())
        .bind(&agent.sealed_secrets)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_command(&self, new: NewCommand) -> StoreResult<CommandRecord> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT host FROM agents WHERE id = ?")
            .bind(new.agent.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("agent", new.agent))?;
        let host: String = row.try_get("host")?;
        if host != new.host.to_string() {
            return Err(StoreError::Invalid(format!(
                "command {} is addressed to host {} but agent {} runs on host {host}",
                new.id, new.host, new.agent
            )));
        }
        supersede_pending(&mut tx, &new).await?;
        let command = insert_command(&mut tx, &new).await?;
        tx.commit().await?;

        wakeup::wake(&self.wakeups, new.host);
        Ok(command)
    }

    async fn deliver_commands(
        &self,
        host: HostId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<CommandRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let ids = sqlx::query(
            "SELECT id FROM agent_commands WHERE host = ? AND status = 'pending' \
             ORDER BY created_at, rowid LIMIT ?",
        )
        .bind(host.to_string())
        .bind(sql_limit(limit))
        .fetch_all(&mut *tx)
        .await?;

        let sql = format!(
            "UPDATE agent_commands SET status = 'sent', sent_at = ? WHERE id = ? \
             RETURNING {COMMAND_COLUMNS}"
        );
        let mut delivered = Vec::with_capacity(ids.len());
        for id in ids {
            let id: String = id.try_get("id")?;
            let row = sqlx::query(&sql)
                .bind(micros(now))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            delivered.push(rows::command(&row)?);
        }
        tx.commit().await?;
        Ok(delivered)
    }

    async fn record_ack(
        &self,
        host: HostId,
        ack: &CommandAck,
        now: DateTime<Utc>,
    ) -> StoreResult<AckOutcome> {
        let mut tx = self.write().await?;
        let Some(current) = select_command(&mut tx, ack.id, host).await? else {
            return Ok(AckOutcome::Unknown);
        };
        let outcome = match ack_effect(current.status, ack) {
            AckEffect::Applied(status) => {
                let sql = format!(
                    "UPDATE agent_commands SET status = ?, sent_at = COALESCE(sent_at, ?), \
                     acked_at = ?, error = ? WHERE id = ? RETURNING {COMMAND_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(status.as_str())
                    .bind(micros(now))
                    .bind(micros(now))
                    .bind(ack_error(ack))
                    .bind(ack.id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                AckOutcome::Applied(rows::command(&row)?)
            }
            AckEffect::Late => {
                let sql = format!(
                    "UPDATE agent_commands SET late_ack = 1, acked_at = COALESCE(acked_at, ?), \
                     error = COALESCE(error, ?) WHERE id = ? RETURNING {COMMAND_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(micros(now))
                    .bind(ack_error(ack))
                    .bind(ack.id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                AckOutcome::Late(rows::command(&row)?)
            }
            AckEffect::Duplicate => AckOutcome::Duplicate(current),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn expire_commands(&self, cutoff: DateTime<Utc>) -> StoreResult<Vec<CommandRecord>> {
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands \
             WHERE status IN ('pending', 'sent') AND created_at < ? ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(micros(cutoff))
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = rows
            .iter()
            .map(rows::command)
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(
            "UPDATE agent_commands SET status = 'expired' \
             WHERE status IN ('pending', 'sent') AND created_at < ?",
        )
        .bind(micros(cutoff))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        for command in &mut expired {
            command.status = CommandStatus::Expired;
        }
        Ok(expired)
    }

    async fn command(&self, id: CommandId) -> StoreResult<Option<CommandRecord>> {
        let sql = format!("SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::command).transpose()
    }

    async fn commands_for_agent(
        &self,
        agent: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<CommandRecord>> {
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE agent = ? \
             ORDER BY created_at DESC, rowid DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.to_string())
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::command).collect()
    }

    async fn add_event(&self, event: NewAgentEvent) -> StoreResult<()> {
        sqlx::query("INSERT INTO agent_events (agent, kind, message, at) VALUES (?, ?, ?, ?)")
            .bind(event.agent.to_string())
            .bind(event.kind.as_str())
            .bind(&event.message)
            .bind(micros(event.at))
            .execute(&self.pool)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("event for agent {}", event.agent),
                    || not_found("agent", event.agent),
                )
            })?;
        Ok(())
    }

    async fn events_for_agent(
        &self,
        agent: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<AgentEventRecord>> {
        let rows = sqlx::query(
            "SELECT agent, kind, message, at FROM agent_events WHERE agent = ? \
             ORDER BY at DESC, seq DESC LIMIT ?",
        )
        .bind(agent.to_string())
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::event).collect()
    }

    fn host_wakeups(&self) -> broadcast::Receiver<HostId> {
        self.wakeups.subscribe()
    }
}
