//! Backup metadata and backup schedules in [`SqliteStore`].

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, CommandId};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{micros, time, uuid};
use super::{not_found, SqliteStore};
use crate::backups::{keep_count, size_column, size_value};
use crate::codec::db_error;
use crate::{BackupRecord, BackupRetention, StoreResult};

const BACKUP_COLUMNS: &str = "id, agent, host, size_bytes, sha256, created_at";

impl SqliteStore {
    pub(super) async fn insert_backup_row(
        &self,
        backup: BackupRecord,
        retention: BackupRetention,
    ) -> StoreResult<Vec<BackupRecord>> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO backups (id, agent, host, size_bytes, sha256, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(backup.id.to_string())
        .bind(backup.agent.to_string())
        .bind(backup.host.to_string())
        .bind(size_column(backup.size_bytes)?)
        .bind(&backup.sha256)
        .bind(micros(backup.created_at))
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
            "DELETE FROM backups WHERE id IN (SELECT id FROM backups WHERE agent = ? \
             ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?) RETURNING {BACKUP_COLUMNS}"
        );
        let pruned = sqlx::query(&sql)
            .bind(backup.agent.to_string())
            .bind(keep_count(retention))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        pruned.iter().map(row).collect()
    }

    pub(super) async fn select_backups(&self, agent: AgentId) -> StoreResult<Vec<BackupRecord>> {
        let sql = format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE agent = ? ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(agent.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    pub(super) async fn select_backup(&self, id: CommandId) -> StoreResult<Option<BackupRecord>> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?");
        let found = sqlx::query(&sql)
            .bind(id.to_string())
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
                    "INSERT INTO backup_schedules (agent, interval_hours) VALUES (?, ?) \
                     ON CONFLICT (agent) DO UPDATE SET interval_hours = excluded.interval_hours",
                )
                .bind(agent.to_string())
                .bind(i64::from(hours))
                .execute(&self.writer)
                .await
            }
            None => {
                sqlx::query("DELETE FROM backup_schedules WHERE agent = ?")
                    .bind(agent.to_string())
                    .execute(&self.writer)
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
        let hours: Option<i64> =
            sqlx::query_scalar("SELECT interval_hours FROM backup_schedules WHERE agent = ?")
                .bind(agent.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(hours.and_then(|h| u32::try_from(h).ok()))
    }

    pub(super) async fn claim_due_backup_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentId>> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "UPDATE backup_schedules SET last_queued_at = ?1 WHERE last_queued_at IS NULL \
             OR last_queued_at + interval_hours * 3600000000 <= ?1 RETURNING agent",
        )
        .bind(micros(now))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| uuid(r, "agent").map(AgentId::from))
            .collect()
    }
}

fn row(row: &SqliteRow) -> StoreResult<BackupRecord> {
    Ok(BackupRecord {
        id: uuid(row, "id")?.into(),
        agent: uuid(row, "agent")?.into(),
        host: uuid(row, "host")?.into(),
        size_bytes: size_value(row.try_get("size_bytes")?)?,
        sha256: row.try_get("sha256")?,
        created_at: time(row, "created_at")?,
    })
}
