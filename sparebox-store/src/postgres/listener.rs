//! Host wakeups across replicas: `NOTIFY` on queueing, one `LISTEN`ing task per store.

use std::time::Duration;

use sparebox_core::HostId;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Postgres, Transaction};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::{wakeup, StoreResult};

/// The notification channel; the payload is the host id.
const CHANNEL: &str = "sparebox_host_wakeup";

/// How long to wait before listening again after the connection failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Queues a wakeup for `host`; PostgreSQL delivers it to every listener when `tx` commits,
/// and drops it if `tx` rolls back.
pub(super) async fn notify(
    tx: &mut Transaction<'static, Postgres>,
    host: HostId,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(host.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The task forwarding notifications into a store's wakeup channel; aborted when dropped.
#[derive(Debug)]
pub(super) struct Forwarder(JoinHandle<()>);

impl Forwarder {
    /// Starts listening before returning, so no wakeup queued after this is missed.
    pub(super) async fn start(
        pool: &PgPool,
        wakeups: broadcast::Sender<HostId>,
    ) -> StoreResult<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Self(tokio::spawn(forward(listener, wakeups))))
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn forward(mut listener: PgListener, wakeups: broadcast::Sender<HostId>) {
    loop {
        match listener.recv().await {
            Ok(notification) => match notification.payload().parse::<HostId>() {
                Ok(host) => wakeup::wake(&wakeups, host),
                Err(err) => tracing::warn!(
                    payload = notification.payload(),
                    error = %err,
                    "ignoring a host wakeup that names no host"
                ),
            },
            Err(sqlx::Error::PoolClosed) => return,
            Err(err) => {
                // The listener reconnects on the next call; wakeups sent meanwhile are lost,
                // which long-polling callers tolerate (they poll on a timer too).
                tracing::warn!(error = %err, "host wakeup listener lost its connection");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}
