//! Host wakeups: a broadcast channel of host ids, one per store.

use sparebox_core::HostId;
use tokio::sync::broadcast;

/// How many wakeups a slow receiver may fall behind before it lags.
const CAPACITY: usize = 1024;

/// A fresh wakeup channel.
pub(crate) fn channel() -> broadcast::Sender<HostId> {
    broadcast::channel(CAPACITY).0
}

/// Wakes whoever waits for `host`; having nobody waiting is normal.
pub(crate) fn wake(sender: &broadcast::Sender<HostId>, host: HostId) {
    // `send` fails only when no receiver exists, which means nobody is long-polling.
    let _ = sender.send(host);
}
