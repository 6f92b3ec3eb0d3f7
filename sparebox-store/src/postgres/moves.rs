//! Moving agents between hosts in [`PgStore`].

use sparebox_core::{AgentId, AgentState, HostId, Reserve};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::listener::notify;
use super::rows::{self, AGENT_COLUMNS};
use super::{insert_command, lock_host, not_found, slot_holders, PgStore};
use crate::codec::{check_placement, db_error};
use crate::{AgentRecord, CommandRecord, MoveRecord, NewCommand, StoreError, StoreResult};

const MOVE_COLUMNS: &str =
    "agent, from_host, to_host, phase, command, backup, reason, started_at, updated_at, \
     keep_stopped";

impl PgStore {
    pub(super) async fn reassign(
        &self,
        agent: AgentId,
        to: HostId,
        deploy: NewCommand,
        reserve: Reserve,
    ) -> StoreResult<(AgentRecord, CommandRecord)> {
        crate::moves::check_deploy(agent, to, &deploy)?;
        let mut tx = self.pool.begin().await?;
        let host = lock_host(&mut tx, to).await?;
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1 FOR UPDATE");
        let current = sqlx::query(&sql)
            .bind(agent.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("agent", agent))?;
        let current = rows::agent(&current)?;
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
            "UPDATE agents SET host = $1, state = $2, deploy_stage = NULL, error = NULL, \
             last_report = NULL, last_report_at = NULL WHERE id = $3 RETURNING {AGENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(to.0)
            .bind(AgentState::PendingDeploy.as_str())
            .bind(agent.0)
            .fetch_one(&mut *tx)
            .await?;
        let moved = rows::agent(&row)?;
        sqlx::query("UPDATE subscriptions SET host = $1 WHERE agent = $2")
            .bind(to.0)
            .bind(agent.0)
            .execute(&mut *tx)
            .await?;
        let command = insert_command(&mut tx, &deploy).await?;
        notify(&mut tx, to).await?;
        tx.commit().await?;
        Ok((moved, command))
    }

    pub(super) async fn upsert_move(&self, record: MoveRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO agent_moves ({MOVE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (agent) DO UPDATE SET from_host = excluded.from_host, \
             to_host = excluded.to_host, phase = excluded.phase, command = excluded.command, \
             backup = excluded.backup, reason = excluded.reason, \
             updated_at = excluded.updated_at, keep_stopped = excluded.keep_stopped"
        );
        sqlx::query(&sql)
            .bind(record.agent.0)
            .bind(record.from_host.0)
            .bind(record.to_host.map(|h| h.0))
            .bind(record.phase.as_str())
            .bind(record.command.map(|c| c.0))
            .bind(record.backup.map(|c| c.0))
            .bind(&record.reason)
            .bind(record.started_at)
            .bind(record.updated_at)
            .bind(record.keep_stopped)
            .execute(&self.pool)
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
            "SELECT {MOVE_COLUMNS} FROM agent_moves WHERE $1::uuid IS NULL OR agent = $1 \
             ORDER BY started_at, agent"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.map(|a| a.0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    pub(super) async fn remove_move(&self, agent: AgentId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM agent_moves WHERE agent = $1")
            .bind(agent.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn row(row: &PgRow) -> StoreResult<MoveRecord> {
    let phase: String = row.try_get("phase")?;
    Ok(MoveRecord {
        agent: row.try_get::<Uuid, _>("agent")?.into(),
        from_host: row.try_get::<Uuid, _>("from_host")?.into(),
        to_host: row.try_get::<Option<Uuid>, _>("to_host")?.map(Into::into),
        phase: phase.parse().map_err(|message| StoreError::Corrupt {
            column: "agent_moves.phase",
            message,
        })?,
        command: row.try_get::<Option<Uuid>, _>("command")?.map(Into::into),
        backup: row.try_get::<Option<Uuid>, _>("backup")?.map(Into::into),
        reason: row.try_get("reason")?,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        keep_stopped: row.try_get("keep_stopped")?,
    })
}
