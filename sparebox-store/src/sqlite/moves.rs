//! Moving agents between hosts in [`SqliteStore`].

use sparebox_core::{AgentId, AgentState, HostId, Reserve};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{self, micros, time, uuid, AGENT_COLUMNS};
use super::{host_in, insert_command, not_found, slot_holders, SqliteStore};
use crate::codec::{check_placement, db_error};
use crate::{wakeup, AgentRecord, CommandRecord, MoveRecord, NewCommand, StoreError, StoreResult};

const MOVE_COLUMNS: &str =
    "agent, from_host, to_host, phase, command, backup, reason, started_at, updated_at, \
     keep_stopped";

impl SqliteStore {
    pub(super) async fn reassign(
        &self,
        agent: AgentId,
        to: HostId,
        deploy: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)> {
        crate::moves::check_deploy(agent, to, &deploy)?;
        let mut tx = self.write().await?;
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?");
        let current = sqlx::query(&sql)
            .bind(agent.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("agent", agent))?;
        let current = rows::agent(&current)?;
        let host = host_in(&mut tx, to).await?;
        let holders = slot_holders(&mut tx, to).await?;
        check_placement(
            host.id,
            host.hardware.as_ref(),
            &host.settings,
            &reserve,
            holders,
            current.tier,
        )?;
        let sql = format!(
            "UPDATE agents SET host = ?, state = ?, deploy_stage = NULL, error = NULL, \
             last_report = NULL, last_report_at = NULL WHERE id = ? RETURNING {AGENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(to.to_string())
            .bind(AgentState::PendingDeploy.as_str())
            .bind(agent.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let moved = rows::agent(&row)?;
        sqlx::query("UPDATE subscriptions SET host = ? WHERE agent = ?")
            .bind(to.to_string())
            .bind(agent.to_string())
            .execute(&mut *tx)
            .await?;
        let command = insert_command(&mut tx, &deploy).await?;
        tx.commit().await?;
        wakeup::wake(&self.wakeups, to);
        Ok((moved, command))
    }

    pub(super) async fn upsert_move(&self, record: MoveRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO agent_moves ({MOVE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (agent) DO UPDATE SET from_host = excluded.from_host, \
             to_host = excluded.to_host, phase = excluded.phase, command = excluded.command, \
             backup = excluded.backup, reason = excluded.reason, \
             updated_at = excluded.updated_at, keep_stopped = excluded.keep_stopped"
        );
        sqlx::query(&sql)
            .bind(record.agent.to_string())
            .bind(record.from_host.to_string())
            .bind(record.to_host.map(|h| h.to_string()))
            .bind(record.phase.as_str())
            .bind(record.command.map(|c| c.to_string()))
            .bind(record.backup.map(|c| c.to_string()))
            .bind(&record.reason)
            .bind(micros(record.started_at))
            .bind(micros(record.updated_at))
            .bind(record.keep_stopped)
            .execute(&self.writer)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("move of agent {}", record.agent),
                    || not_found("agent or host", record.agent),
                )
            })?;
        Ok(())
    }

    pub(super) async fn select_moves(
        &self,
        agent: Option<AgentId>,
    ) -> StoreResult<Vec<MoveRecord>> {
        let sql = format!(
            "SELECT {MOVE_COLUMNS} FROM agent_moves WHERE ?1 IS NULL OR agent = ?1 \
             ORDER BY started_at, agent"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.map(|a| a.to_string()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    pub(super) async fn remove_move(&self, agent: AgentId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM agent_moves WHERE agent = ?")
            .bind(agent.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn opt_id<T: From<uuid::Uuid>>(row: &SqliteRow, column: &'static str) -> StoreResult<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        uuid::Uuid::parse_str(&t)
            .map(T::from)
            .map_err(|err| StoreError::Corrupt {
                column,
                message: err.to_string(),
            })
    })
    .transpose()
}

fn row(row: &SqliteRow) -> StoreResult<MoveRecord> {
    let phase: String = row.try_get("phase")?;
    Ok(MoveRecord {
        agent: uuid(row, "agent")?.into(),
        from_host: uuid(row, "from_host")?.into(),
        to_host: opt_id(row, "to_host")?,
        phase: phase.parse().map_err(|message| StoreError::Corrupt {
            column: "agent_moves.phase",
            message,
        })?,
        command: opt_id(row, "command")?,
        backup: opt_id(row, "backup")?,
        reason: row.try_get("reason")?,
        started_at: time(row, "started_at")?,
        updated_at: time(row, "updated_at")?,
        keep_stopped: row.try_get("keep_stopped")?,
    })
}
