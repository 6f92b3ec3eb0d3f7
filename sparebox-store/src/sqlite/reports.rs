//! A heartbeat's routine writes in [`SqliteStore`]: the host row, the reports that change
//! nothing but the report, and their samples, in one transaction of a few statements
//! whatever the number of agents.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, HostId};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::rows::micros;
use super::{not_found, SqliteStore};
use crate::codec::to_json;
use crate::samples::mb_column;
use crate::{HostHeartbeat, ReportWrite, StoreResult};

/// Rows per statement, well under SQLite's limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 128;

impl SqliteStore {
    pub(super) async fn write_heartbeat_reports(
        &self,
        host: HostId,
        heartbeat: HostHeartbeat,
        now: DateTime<Utc>,
        reports: Vec<ReportWrite>,
        min_sample_interval: chrono::Duration,
    ) -> StoreResult<Vec<AgentId>> {
        if reports.is_empty() {
            // A host without agents: one statement, no transaction needed.
            crate::Store::record_heartbeat(self, host, heartbeat, now).await?;
            return Ok(Vec::new());
        }
        let hardware = to_json("hosts.hardware", &heartbeat.hardware)?;
        let mut encoded = Vec::with_capacity(reports.len());
        for write in &reports {
            let report = to_json("agents.last_report", &write.report)?.to_string();
            let sample = match &write.sample {
                Some(sample) => Some((
                    sample.cpu_percent,
                    mb_column("ram_usage_mb", sample.ram_usage_mb)?,
                    mb_column("ram_limit_mb", sample.ram_limit_mb)?,
                    micros(sample.at),
                )),
                None => None,
            };
            encoded.push((write, report, sample));
        }

        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE hosts SET hardware = ?, isolation = ?, daemon_version = ?, \
             last_heartbeat_at = ? WHERE id = ?",
        )
        .bind(hardware.to_string())
        .bind(heartbeat.isolation.as_str())
        .bind(&heartbeat.daemon_version)
        .bind(micros(now))
        .bind(host.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("host", host));
        }

        let mut written = BTreeSet::new();
        for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
            let mut update = QueryBuilder::<Sqlite>::new(
                "WITH seen (id, report, state, deploy_stage, error, last_report_at) AS (",
            );
            update.push_values(chunk, |mut row, (write, report, _)| {
                row.push_bind(write.agent.to_string())
                    .push_bind(report.clone())
                    .push_bind(write.seen.state.as_str())
                    .push_bind(write.seen.deploy_stage.map(|s| s.as_str()))
                    .push_bind(write.seen.error.clone())
                    .push_bind(write.seen.last_report_at.map(micros));
            });
            update
                .push(") UPDATE agents SET last_report = seen.report, last_report_at = ")
                .push_bind(micros(now))
                .push(" FROM seen WHERE agents.id = seen.id AND agents.host = ")
                .push_bind(host.to_string())
                .push(
                    " AND agents.state = seen.state AND agents.deploy_stage IS seen.deploy_stage \
                     AND agents.error IS seen.error \
                     AND agents.last_report_at IS seen.last_report_at RETURNING agents.id",
                );
            for row in update.build().fetch_all(&mut *tx).await? {
                written.insert(row.try_get::<String, _>("id")?);
            }
        }

        let samples: Vec<_> = encoded
            .iter()
            .filter(|(write, _, _)| written.contains(&write.agent.to_string()))
            .filter_map(|(write, _, sample)| sample.map(|sample| (write.agent, sample)))
            .collect();
        for chunk in samples.chunks(ROWS_PER_STATEMENT) {
            insert_samples(&mut tx, chunk, min_sample_interval).await?;
        }
        tx.commit().await?;

        Ok(reports
            .iter()
            .map(|write| write.agent)
            .filter(|agent| !written.contains(&agent.to_string()))
            .collect())
    }

    pub(super) async fn delete_samples_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM agent_samples WHERE at < ?")
            .bind(micros(before))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

/// A sample's columns as bound: CPU, memory used, memory limit, time.
type SampleColumns = (Option<f64>, Option<i64>, Option<i64>, i64);

/// Inserts each sample unless its agent has one less than `min_interval` older.
async fn insert_samples(
    tx: &mut Transaction<'static, Sqlite>,
    samples: &[(AgentId, SampleColumns)],
    min_interval: chrono::Duration,
) -> StoreResult<()> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "WITH fresh (agent, at, since, cpu_percent, ram_usage_mb, ram_limit_mb) AS (",
    );
    insert.push_values(samples, |mut row, (agent, (cpu, usage, limit, at))| {
        row.push_bind(agent.to_string())
            .push_bind(*at)
            .push_bind(at.saturating_sub(min_interval.num_microseconds().unwrap_or(i64::MAX)))
            .push_bind(*cpu)
            .push_bind(*usage)
            .push_bind(*limit);
    });
    insert.push(
        ") INSERT INTO agent_samples (agent, at, cpu_percent, ram_usage_mb, ram_limit_mb) \
         SELECT agent, at, cpu_percent, ram_usage_mb, ram_limit_mb FROM fresh \
         WHERE NOT EXISTS (SELECT 1 FROM agent_samples s \
         WHERE s.agent = fresh.agent AND s.at > fresh.since)",
    );
    insert.build().execute(&mut **tx).await?;
    Ok(())
}
