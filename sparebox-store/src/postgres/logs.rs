//! Uploaded command logs in [`PgStore`].

use chrono::{DateTime, Utc};
use sparebox_core::CommandId;
use sqlx::Row;

use super::{not_found, PgStore};
use crate::codec::db_error;
use crate::logs::bytes_column;
use crate::{CommandLogs, StoreResult};

impl PgStore {
    pub(super) async fn upsert_command_logs(&self, logs: CommandLogs) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO command_logs (command, sealed, bytes, truncated, uploaded_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (command) DO UPDATE SET \
             sealed = EXCLUDED.sealed, bytes = EXCLUDED.bytes, truncated = EXCLUDED.truncated, \
             uploaded_at = EXCLUDED.uploaded_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(logs.command.0)
        .bind(&logs.sealed)
        .bind(bytes_column(logs.bytes)?)
        .bind(logs.truncated)
        .bind(logs.uploaded_at)
        .bind(logs.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("logs of command {}", logs.command),
                || not_found("command", logs.command),
            )
        })?;
        Ok(())
    }

    pub(super) async fn select_command_logs(
        &self,
        command: CommandId,
    ) -> StoreResult<Option<CommandLogs>> {
        let row = sqlx::query(
            "SELECT command, sealed, bytes, truncated, uploaded_at, expires_at \
             FROM command_logs WHERE command = $1",
        )
        .bind(command.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CommandLogs {
                command: row.try_get::<uuid::Uuid, _>("command")?.into(),
                sealed: row.try_get("sealed")?,
                bytes: row.try_get::<i64, _>("bytes")?.max(0) as u64,
                truncated: row.try_get("truncated")?,
                uploaded_at: row.try_get("uploaded_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub(super) async fn delete_command_logs_before(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM command_logs WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
