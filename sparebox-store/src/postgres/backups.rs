//! Backup metadata and backup schedules in [`PgStore`].

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, CommandId};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{not_found, PgStore};
use crate::backups::{keep_count, size_column, size_value};
use crate::codec::db_error;
use crate::{BackupRecord, BackupRetention, StoreResult};

const BACKUP_COLUMNS: &str = "id, agent, host, size_bytes, sha256, created_at";

impl PgStore {
    pub(super) async fn insert_backup_row(
        &self,
        backup: BackupRecord,
        retention: BackupRetention,
    ) -> StoreResult<Vec<BackupRecord>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO backups (id, agent, host, size_bytes, sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(backup.id.0)
        .bind(backup.agent.0)
        .bind(backup.host.0)
        .bind(size_column(backup.size_bytes)?)
        .bind(&backup.sha256)
        .bind(backup.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("backup {}", backup.id),
                || not_found("agent or host", format!("{}/{}", backup.agent, backup.host)),
            )
        })?;
        let sql = format!(
            "DELETE FROM backups WHERE id IN (SELECT id FROM backups WHERE agent = $1 \
             ORDER BY created_at DESC, id DESC OFFSET $2) RETURNING {BACKUP_COLUMNS}"
        );
        let pruned = sqlx::query(&sql)
            .bind(backup.agent.0)
            .bind(keep_count(retention))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        pruned.iter().map(row).collect()
    }

    pub(super) async fn select_backups(&self, agent: AgentId) -> StoreResult<Vec<BackupRecord>> {
        let sql = format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE agent = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    pub(super) async fn select_backup(&self, id: CommandId) -> StoreResult<Option<BackupRecord>> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = $1");
        let found = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    pub(super) async fn upsert_backup_schedule(
        &self,
        agent: AgentId,
        interval_hours: Option<u32>,
    ) -> StoreResult<()> {
        let result = match interval_hours {
            Some(hours) => {
                sqlx::query(
                    "INSERT INTO backup_schedules (agent, interval_hours) VALUES ($1, $2) \
                     ON CONFLICT (agent) DO UPDATE SET interval_hours = excluded.interval_hours",
                )
                .bind(agent.0)
                .bind(i32::try_from(hours).unwrap_or(i32::MAX))
                .execute(&self.pool)
                .await
            }
            None => {
                sqlx::query("DELETE FROM backup_schedules WHERE agent = $1")
                    .bind(agent.0)
                    .execute(&self.pool)
                    .await
            }
        };
        result.map_err(|err| {
            db_error(
                err,
                || format!("backup schedule of agent {agent}"),
                || not_found("agent", agent),
            )
        })?;
        Ok(())
    }

    pub(super) async fn select_backup_schedule(&self, agent: AgentId) -> StoreResult<Option<u32>> {
        let hours: Option<i32> =
            sqlx::query_scalar("SELECT interval_hours FROM backup_schedules WHERE agent = $1")
                .bind(agent.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hours.and_then(|h| u32::try_from(h).ok()))
    }

    pub(super) async fn claim_due_backup_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentId>> {
        let agents: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE backup_schedules SET last_queued_at = $1 WHERE last_queued_at IS NULL \
             OR last_queued_at + make_interval(hours => interval_hours) <= $1 RETURNING agent",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(agents.into_iter().map(AgentId::from).collect())
    }
}

fn row(row: &PgRow) -> StoreResult<BackupRecord> {
    Ok(BackupRecord {
        id: row.try_get::<Uuid, _>("id")?.into(),
        agent: row.try_get::<Uuid, _>("agent")?.into(),
        host: row.try_get::<Uuid, _>("host")?.into(),
        size_bytes: size_value(row.try_get("size_bytes")?)?,
        sha256: row.try_get("sha256")?,
        created_at: row.try_get("created_at")?,
    })
}
