//! Agents' resource samples in [`PgStore`].

use chrono::{DateTime, Utc};
use sparebox_core::AgentId;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{not_found, PgStore};
use crate::codec::db_error;
use crate::samples::{mb_column, mb_value};
use crate::{AgentSample, SampleRetention, StoreResult};

impl PgStore {
    pub(super) async fn insert_sample(
        &self,
        sample: AgentSample,
        retention: SampleRetention,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO agent_samples (agent, at, cpu_percent, ram_usage_mb, ram_limit_mb) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
             (SELECT 1 FROM agent_samples WHERE agent = $1 AND at > $6)",
        )
        .bind(sample.agent.0)
        .bind(sample.at)
        .bind(sample.cpu_percent)
        .bind(mb_column("ram_usage_mb", sample.ram_usage_mb)?)
        .bind(mb_column("ram_limit_mb", sample.ram_limit_mb)?)
        .bind(sample.at - retention.min_interval)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("sample for agent {}", sample.agent),
                || not_found("agent", sample.agent),
            )
        })?
        .rows_affected()
            == 1;
        sqlx::query("DELETE FROM agent_samples WHERE at < $1")
            .bind(sample.at - retention.keep_for)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    pub(super) async fn select_samples(
        &self,
        agent: AgentId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<AgentSample>> {
        let rows = sqlx::query(
            "SELECT agent, at, cpu_percent, ram_usage_mb, ram_limit_mb FROM agent_samples \
             WHERE agent = $1 AND at >= $2 ORDER BY at, seq",
        )
        .bind(agent.0)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sample).collect()
    }
}

fn sample(row: &PgRow) -> StoreResult<AgentSample> {
    Ok(AgentSample {
        agent: row.try_get::<uuid::Uuid, _>("agent")?.into(),
        at: row.try_get("at")?,
        cpu_percent: row.try_get("cpu_percent")?,
        ram_usage_mb: mb_value("agent_samples.ram_usage_mb", row.try_get("ram_usage_mb")?)?,
        ram_limit_mb: mb_value("agent_samples.ram_limit_mb", row.try_get("ram_limit_mb")?)?,
    })
}
