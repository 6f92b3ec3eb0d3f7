//! A heartbeat's routine writes in [`PgStore`]: the host row, the reports that change
//! nothing but the report, and their samples, in one transaction of a few statements
//! whatever the number of agents.
//!
//! The host row is updated first, so two heartbeats of one host (a daemon retrying)
//! take the agents' row locks one after the other rather than in competing orders.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, HostId};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{not_found, PgStore, Tx};
use crate::codec::to_json;
use crate::samples::mb_column;
use crate::{HostHeartbeat, ReportWrite, StoreResult};

/// Rows per statement, well under PostgreSQL's limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 128;

/// A sample's columns as bound: agent, time, CPU, memory used, memory limit.
type SampleColumns = (Uuid, DateTime<Utc>, Option<f64>, Option<i64>, Option<i64>);

impl PgStore {
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
            let report = to_json("agents.last_report", &write.report)?;
            let sample: Option<SampleColumns> = match &write.sample {
                Some(sample) => Some((
                    write.agent.0,
                    sample.at,
                    sample.cpu_percent,
                    mb_column("ram_usage_mb", sample.ram_usage_mb)?,
                    mb_column("ram_limit_mb", sample.ram_limit_mb)?,
                )),
                None => None,
            };
            encoded.push((write, report, sample));
        }

        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE hosts SET hardware = $1, isolation = $2, daemon_version = $3, \
             last_heartbeat_at = $4 WHERE id = $5",
        )
        .bind(Json(hardware))
        .bind(heartbeat.isolation.as_str())
        .bind(&heartbeat.daemon_version)
        .bind(now)
        .bind(host.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("host", host));
        }

        let mut written = BTreeSet::new();
        for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
            let mut update = QueryBuilder::<Postgres>::new(
                "WITH seen (id, report, state, deploy_stage, error, last_report_at) AS (",
            );
            update.push_values(chunk, |mut row, (write, report, _)| {
                row.push_bind(write.agent.0)
                    .push_unseparated("::uuid")
                    .push_bind(Json(report.clone()))
                    .push_unseparated("::jsonb")
                    .push_bind(write.seen.state.as_str())
                    .push_unseparated("::text")
                    .push_bind(write.seen.deploy_stage.map(|s| s.as_str()))
                    .push_unseparated("::text")
                    .push_bind(write.seen.error.clone())
                    .push_unseparated("::text")
                    .push_bind(write.seen.last_report_at)
                    .push_unseparated("::timestamptz");
            });
            update
                .push(") UPDATE agents SET last_report = seen.report, last_report_at = ")
                .push_bind(now)
                .push(" FROM seen WHERE agents.id = seen.id AND agents.host = ")
                .push_bind(host.0)
                .push(
                    " AND agents.state = seen.state \
                     AND agents.deploy_stage IS NOT DISTINCT FROM seen.deploy_stage \
                     AND agents.error IS NOT DISTINCT FROM seen.error \
                     AND agents.last_report_at IS NOT DISTINCT FROM seen.last_report_at \
                     RETURNING agents.id",
                );
            for row in update.build().fetch_all(&mut *tx).await? {
                written.insert(row.try_get::<Uuid, _>("id")?);
            }
        }

        let samples: Vec<SampleColumns> = encoded
            .iter()
            .filter(|(write, _, _)| written.contains(&write.agent.0))
            .filter_map(|(_, _, sample)| *sample)
            .collect();
        for chunk in samples.chunks(ROWS_PER_STATEMENT) {
            insert_samples(&mut tx, chunk, min_sample_interval).await?;
        }
        tx.commit().await?;

        Ok(reports
            .iter()
            .map(|write| write.agent)
            .filter(|agent| !written.contains(&agent.0))
            .collect())
    }

    pub(super) async fn delete_samples_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM agent_samples WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Inserts each sample unless its agent has one less than `min_interval` older.
async fn insert_samples(
    tx: &mut Tx,
    samples: &[SampleColumns],
    min_interval: chrono::Duration,
) -> StoreResult<()> {
    let mut insert = QueryBuilder::<Postgres>::new(
        "WITH fresh (agent, at, since, cpu_percent, ram_usage_mb, ram_limit_mb) AS (",
    );
    insert.push_values(samples, |mut row, (agent, at, cpu, usage, limit)| {
        row.push_bind(*agent)
            .push_unseparated("::uuid")
            .push_bind(*at)
            .push_unseparated("::timestamptz")
            .push_bind(*at - min_interval)
            .push_unseparated("::timestamptz")
            .push_bind(*cpu)
            .push_unseparated("::double precision")
            .push_bind(*usage)
            .push_unseparated("::bigint")
            .push_bind(*limit)
            .push_unseparated("::bigint");
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
