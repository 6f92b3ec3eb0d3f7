//! Uploaded command logs in [`SqliteStore`].

use chrono::{DateTime, Utc};
use sparebox_core::CommandId;
use sqlx::Row;

use super::rows::{micros, time, uuid};
use super::{not_found, SqliteStore};
use crate::codec::db_error;
use crate::logs::bytes_column;
use crate::{CommandLogs, StoreResult};

impl SqliteStore {
    pub(super) async fn upsert_command_logs(&self, logs: CommandLogs) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO command_logs (command, sealed, bytes, truncated, uploaded_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (command) DO UPDATE SET sealed = excluded.sealed, \
             bytes = excluded.bytes, truncated = excluded.truncated, \
             uploaded_at = excluded.uploaded_at, expires_at = excluded.expires_at",
        )
        .bind(logs.command.to_string())
        .bind(&logs.sealed)
        .bind(bytes_column(logs.bytes)?)
        .bind(logs.truncated)
        .bind(micros(logs.uploaded_at))
        .bind(micros(logs.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("logs of command {}", logs.command),
                || not_found("command", logs.command),
            )
        })?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn select_command_logs(
        &self,
        command: CommandId,
    ) -> StoreResult<Option<CommandLogs>> {
        let row = sqlx::query(
            "SELECT command, sealed, bytes, truncated, uploaded_at, expires_at \
             FROM command_logs WHERE command = ?",
        )
        .bind(command.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CommandLogs {
                command: uuid(&row, "command")?.into(),
                sealed: row.try_get("sealed")?,
                bytes: row.try_get::<i64, _>("bytes")?.max(0) as u64,
                truncated: row.try_get("truncated")?,
                uploaded_at: time(&row, "uploaded_at")?,
                expires_at: time(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    pub(super) async fn delete_command_logs_before(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM command_logs WHERE expires_at <= ?")
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
