//! The [`Store`] implementation for [`SqliteStore`].

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sparebox_core::command::AckEffect;
use sparebox_core::{AgentId, CommandId, CommandStatus, HostId, Reserve};
use sparebox_protocol::CommandAck;
use sqlx::Row;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::rows::{
    micros, ACCOUNT_COLUMNS, AGENT_COLUMNS, API_TOKEN_COLUMNS, COMMAND_COLUMNS, HOST_COLUMNS,
};
use super::{
    host_in, insert_api_token, insert_command, not_found, rows, select_command, slot_holders,
    supersede_pending, SqliteStore,
};
use crate::codec::{
    ack_effect, ack_error, apply_update, check_first_command, check_first_token, check_placement,
    db_error, group_by_agent, roles_text, sql_limit, tiers_text, to_json,
};
use crate::{
    wakeup, AccountCredentials, AccountId, AccountRecord, AckOutcome, AgentEventRecord,
    AgentRecord, AgentUpdate, ApiTokenId, ApiTokenRecord, CommandRecord, HostHeartbeat, HostRecord,
    HostSettings, NewAccount, NewAgent, NewAgentEvent, NewApiToken, NewCommand, NewHost,
    NewSession, Role, SessionRecord, Store, StoreError, StoreResult,
};

/// The commands [`Store::expire_commands`] takes; binds the delivered cutoff, then the
/// cutoff.
const EXPIRABLE: &str = "(status = 'pending' OR (status = 'sent' AND (created_at < ? \
     OR EXISTS (SELECT 1 FROM hosts h WHERE h.id = agent_commands.host \
     AND h.last_heartbeat_at > agent_commands.sent_at)))) AND created_at < ?";

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(
        &self,
        new: NewAccount,
        first_token: NewApiToken,
    ) -> StoreResult<(AccountRecord, ApiTokenRecord)> {
        check_first_token(&new, &first_token)?;
        let mut tx = self.write().await?;
        let sql = format!(
            "INSERT INTO accounts (id, email, name, password_hash, roles, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.id.to_string())
            .bind(&new.email)
            .bind(&new.name)
            .bind(&new.password_hash)
            .bind(roles_text(&new.roles))
            .bind(micros(new.created_at))
            .fetch_one(&mut *tx)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("account with email {:?}", new.email),
                    || not_found("account", new.id),
                )
            })?;
        let account = rows::account(&row)?;
        let token = insert_api_token(&mut tx, &first_token).await?;
        tx.commit().await?;
        Ok((account, token))
    }

    async fn account(&self, id: AccountId) -> StoreResult<Option<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn account_by_email(&self, email: &str) -> StoreResult<Option<AccountCredentials>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = ?");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(AccountCredentials {
                account: rows::account(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn set_account_roles(
        &self,
        id: AccountId,
        roles: BTreeSet<Role>,
    ) -> StoreResult<AccountRecord> {
        let sql = format!("UPDATE accounts SET roles = ? WHERE id = ? RETURNING {ACCOUNT_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(roles_text(&roles))
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| not_found("account", id))?;
        rows::account(&row)
    }

    async fn create_api_token(&self, new: NewApiToken) -> StoreResult<ApiTokenRecord> {
        let mut tx = self.write().await?;
        let token = insert_api_token(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn account_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<AccountRecord>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE id = (SELECT account FROM api_tokens WHERE token_hash = ?)"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn api_tokens_for_account(&self, account: AccountId) -> StoreResult<Vec<ApiTokenRecord>> {
        let sql = format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE account = ? \
             ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::api_token).collect()
    }

    async fn delete_api_token(&self, account: AccountId, id: ApiTokenId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ? AND account = ?")
            .bind(id.to_string())
            .bind(account.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, account, csrf_hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&new.id_hash)
        .bind(new.account.to_string())
        .bind(&new.csrf_hash)
        .bind(micros(new.created_at))
        .bind(micros(new.expires_at))
        .execute(&self.writer)
        .await
        .map_err(|err| {
            db_error(
                err,
                || "session".to_owned(),
                || not_found("account", new.account),
            )
        })?;
        Ok(())
    }

    async fn session_by_hash(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let sql = "SELECT a.id, a.email, a.name, a.roles, a.created_at, s.csrf_hash, \
                   s.created_at AS session_created_at, s.expires_at \
                   FROM sessions s JOIN accounts a ON a.id = s.account \
                   WHERE s.id_hash = ? AND s.expires_at > ?";
        let row = sqlx::query(sql)
            .bind(id_hash)
            .bind(micros(now))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(micros(now))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
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
            .fetch_one(&self.writer)
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

    async fn count_hosts_heard_since(&self, since: DateTime<Utc>) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE last_heartbeat_at >= ?")
                .bind(micros(since))
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn agents_of_silent_hosts(
        &self,
        silent_since: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentRecord>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents \
             WHERE state NOT IN ('host_offline', 'undeploying', 'undeployed') \
             AND host IN (SELECT id FROM hosts WHERE last_heartbeat_at < ?) \
             ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(micros(silent_since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::agent).collect()
    }

    async fn hosts_for_owner(&self, owner: AccountId) -> StoreResult<Vec<HostRecord>> {
        let sql =
            format!("SELECT {HOST_COLUMNS} FROM hosts WHERE owner = ? ORDER BY created_at, rowid");
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::host).collect()
    }

    async fn rotate_host_key(
        &self,
        id: HostId,
        key_hash: Vec<u8>,
        key_prefix: String,
    ) -> StoreResult<HostRecord> {
        let sql = format!(
            "UPDATE hosts SET key_hash = ?, key_prefix = ? WHERE id = ? RETURNING {HOST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&key_hash)
            .bind(&key_prefix)
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("host key {key_prefix}"),
                    || not_found("host", id),
                )
            })?
            .ok_or_else(|| not_found("host", id))?;
        rows::host(&row)
    }

    async fn set_host_settings(
        &self,
        id: HostId,
        settings: HostSettings,
    ) -> StoreResult<HostRecord> {
        let prices = to_json("hosts.prices", &settings.prices)?;
        let sql = format!(
            "UPDATE hosts SET offered_tiers = ?, prices = ?, max_agents = ?, region = ? \
             WHERE id = ? RETURNING {HOST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(tiers_text(&settings.offered))
            .bind(prices.to_string())
            .bind(settings.max_agents.map(i64::from))
            .bind(&settings.region)
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| not_found("host", id))?;
        rows::host(&row)
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
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("host", host));
        }
        Ok(())
    }

    async fn record_heartbeat_reports(
        &self,
        host: HostId,
        heartbeat: HostHeartbeat,
        now: DateTime<Utc>,
        reports: Vec<crate::ReportWrite>,
        min_sample_interval: chrono::Duration,
    ) -> StoreResult<Vec<AgentId>> {
        self.write_heartbeat_reports(host, heartbeat, now, reports, min_sample_interval)
            .await
    }

    async fn create_agent(
        &self,
        new: NewAgent,
        first_command: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)> {
        check_first_command(&new, &first_command)?;
        let mut tx = self.write().await?;

        let host = host_in(&mut tx, new.host).await?;
        let holders = slot_holders(&mut tx, new.host).await?;
        check_placement(
            host.id,
            host.hardware.as_ref(),
            &host.settings,
            &reserve,
            holders,
            new.tier,
        )?;

        let agent = super::billing::insert_agent(&mut tx, &new).await?;
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
             last_report_at = ?, openclaw_config = ?, workspace_files = ?, sealed_secrets = ?, \
             image = ? WHERE id = ?",
        )
        .bind(agent.state.as_str())
        .bind(agent.deploy_stage.map(|s| s.as_str()))
        .bind(&agent.error)
        .bind(report.map(|r| r.to_string()))
        .bind(agent.last_report_at.map(micros))
        .bind(to_json("agents.openclaw_config", &agent.openclaw_config)?.to_string())
        .bind(to_json("agents.workspace_files", &agent.workspace_files)?.to_string())
        .bind(&agent.sealed_secrets)
        .bind(&agent.image)
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
        // Most heartbeats find nothing pending: a plain read answers them without taking
        // SQLite's single write lock. A command queued just after this read waits for the
        // next heartbeat, as it would if it had been queued just after the transaction.
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM agent_commands WHERE host = ? AND status = 'pending')",
        )
        .bind(host.to_string())
        .fetch_one(&self.pool)
        .await?;
        if !pending {
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

    async fn expire_commands(
        &self,
        cutoff: DateTime<Utc>,
        delivered_cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<CommandRecord>> {
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE {EXPIRABLE} \
             ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(micros(delivered_cutoff))
            .bind(micros(cutoff))
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = rows
            .iter()
            .map(rows::command)
            .collect::<StoreResult<Vec<_>>>()?;
        // Under the write lock the same condition picks the same rows.
        sqlx::query(&format!(
            "UPDATE agent_commands SET status = 'expired' WHERE {EXPIRABLE}"
        ))
        .bind(micros(delivered_cutoff))
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

    async fn recent_commands_for_host(
        &self,
        host: HostId,
        per_agent: u32,
    ) -> StoreResult<BTreeMap<AgentId, Vec<CommandRecord>>> {
        // For each of the host's agents, the rowids of its latest commands come from the
        // (agent, created_at) index, so the cost is bounded by `per_agent`, not history.
        let columns = COMMAND_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM agents a JOIN agent_commands c ON c.rowid IN \
             (SELECT rowid FROM agent_commands WHERE agent = a.id \
              ORDER BY created_at DESC, rowid DESC LIMIT ?) \
             WHERE a.host = ? ORDER BY c.agent, c.created_at DESC, c.rowid DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(sql_limit(per_agent))
            .bind(host.to_string())
            .fetch_all(&self.pool)
            .await?;
        group_by_agent(rows.iter().map(rows::command))
    }

    async fn add_event(&self, event: NewAgentEvent) -> StoreResult<()> {
        sqlx::query("INSERT INTO agent_events (agent, kind, message, at) VALUES (?, ?, ?, ?)")
            .bind(event.agent.to_string())
            .bind(event.kind.as_str())
            .bind(&event.message)
            .bind(micros(event.at))
            .execute(&self.writer)
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

    async fn record_agent_sample(
        &self,
        sample: crate::AgentSample,
        retention: crate::SampleRetention,
    ) -> StoreResult<bool> {
        self.insert_sample(sample, retention).await
    }

    async fn prune_agent_samples(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.delete_samples_before(before).await
    }

    async fn agent_samples(
        &self,
        agent: AgentId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<crate::AgentSample>> {
        self.select_samples(agent, since).await
    }

    async fn insert_backup(
        &self,
        backup: crate::BackupRecord,
        retention: crate::BackupRetention,
    ) -> StoreResult<Vec<crate::BackupRecord>> {
        self.insert_backup_row(backup, retention).await
    }

    async fn backups_for_agent(&self, agent: AgentId) -> StoreResult<Vec<crate::BackupRecord>> {
        self.select_backups(agent).await
    }

    async fn backup(&self, id: CommandId) -> StoreResult<Option<crate::BackupRecord>> {
        self.select_backup(id).await
    }

    async fn set_backup_schedule(
        &self,
        agent: AgentId,
        interval_hours: Option<u32>,
    ) -> StoreResult<()> {
        self.upsert_backup_schedule(agent, interval_hours).await
    }

    async fn backup_schedule(&self, agent: AgentId) -> StoreResult<Option<u32>> {
        self.select_backup_schedule(agent).await
    }

    async fn claim_due_backups(&self, now: DateTime<Utc>) -> StoreResult<Vec<AgentId>> {
        self.claim_due_backup_schedules(now).await
    }

    async fn reassign_agent(
        &self,
        agent: AgentId,
        to: HostId,
        deploy: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)> {
        self.reassign(agent, to, deploy, reserve).await
    }

    async fn save_move(&self, record: crate::MoveRecord) -> StoreResult<()> {
        self.upsert_move(record).await
    }

    async fn moves(&self) -> StoreResult<Vec<crate::MoveRecord>> {
        self.select_moves(None).await
    }

    async fn agent_move(&self, agent: AgentId) -> StoreResult<Option<crate::MoveRecord>> {
        Ok(self.select_moves(Some(agent)).await?.pop())
    }

    async fn delete_move(&self, agent: AgentId) -> StoreResult<bool> {
        self.remove_move(agent).await
    }

    async fn put_command_logs(&self, logs: crate::CommandLogs) -> StoreResult<()> {
        self.upsert_command_logs(logs).await
    }

    async fn command_logs(&self, command: CommandId) -> StoreResult<Option<crate::CommandLogs>> {
        self.select_command_logs(command).await
    }

    async fn delete_expired_command_logs(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.delete_command_logs_before(now).await
    }

    fn host_wakeups(&self) -> broadcast::Receiver<HostId> {
        self.wakeups.subscribe()
    }

    async fn create_checkout(&self, new: crate::NewCheckout) -> StoreResult<crate::CheckoutRecord> {
        self.insert_checkout(new).await
    }

    async fn checkout(&self, id: crate::CheckoutId) -> StoreResult<Option<crate::CheckoutRecord>> {
        self.select_checkout(id).await
    }

    async fn subscriptions_for_owner(
        &self,
        owner: AccountId,
    ) -> StoreResult<Vec<crate::SubscriptionRecord>> {
        self.owner_subscriptions(owner).await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<crate::SubscriptionRecord>> {
        self.select_subscription(id).await
    }

    async fn apply_billing_event(
        &self,
        event: crate::NewBillingEvent,
        effect: crate::BillingEffect,
    ) -> StoreResult<crate::BillingOutcome> {
        self.billing_event(event, effect).await
    }
}
