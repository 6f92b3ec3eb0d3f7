//! Heartbeats take turns: a bounded number are processed at once, a held heartbeat gives
//! its turn up while it waits for a command, and one that gets no turn in time is refused
//! as unavailable with a time to retry, instead of queueing without end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sparebox_protocol::HeartbeatRequest;
use sparebox_server::{
    EncryptionKey, ErrorCode, Keyring, Platform, PlatformConfig, BUSY_RETRY_AFTER_SECS,
};
use sparebox_store::{sqlite::SqliteStore, HostRecord};
use sqlx::{Connection, Executor, SqliteConnection};

fn heartbeat(wait_seconds: Option<u32>) -> HeartbeatRequest {
    HeartbeatRequest {
        wait_seconds,
        ..common::quiet_heartbeat()
    }
}

/// A platform on a SQLite file in `dir` processing one heartbeat at a time and letting
/// others wait a second for their turn, with two registered hosts.
async fn one_turn_platform(dir: &tempfile::TempDir) -> (Platform, HostRecord, HostRecord) {
    let store = SqliteStore::open(dir.path().join("sparebox.db"))
        .await
        .unwrap();
    let config = PlatformConfig {
        heartbeat_concurrency: 1,
        heartbeat_queue_timeout: Duration::from_secs(1),
        ..PlatformConfig::default()
    };
    let platform = Platform::new(
        Arc::new(store),
        config,
        Keyring::new(EncryptionKey::generate()),
    );
    let owner = common::sign_up_owner(&platform).await;
    let mut hosts = Vec::new();
    for name in ["a", "b"] {
        let (_, key) = platform.register_host(&owner, name).await.unwrap();
        hosts.push(platform.authenticate_host(&key).await.unwrap());
    }
    let b = hosts.pop().unwrap();
    let a = hosts.pop().unwrap();
    (platform, a, b)
}

#[tokio::test]
async fn held_heartbeat_gives_up_its_turn_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, a, b) = one_turn_platform(&dir).await;
    let held = tokio::spawn({
        let platform = platform.clone();
        async move { platform.heartbeat(&a, heartbeat(Some(5))).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "the first heartbeat is held");

    // With the only turn kept by the held heartbeat, this one would be refused.
    platform.heartbeat(&b, heartbeat(None)).await.unwrap();
    held.abort();
}

#[tokio::test]
async fn heartbeat_without_a_turn_in_time_is_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, a, b) = one_turn_platform(&dir).await;

    // Another connection holds the database's write lock, so the first heartbeat keeps
    // the only turn while it waits to write.
    let mut blocker = SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("sparebox.db").display()
    ))
    .await
    .unwrap();
    blocker.execute("BEGIN IMMEDIATE").await.unwrap();
    let first = tokio::spawn({
        let platform = platform.clone();
        async move { platform.heartbeat(&a, heartbeat(None)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !first.is_finished(),
        "the first heartbeat waits for the lock"
    );

    let refused = platform.heartbeat(&b, heartbeat(None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert_eq!(refused.retry_after, Some(BUSY_RETRY_AFTER_SECS));
    assert!(refused.message.contains("busy"), "{}", refused.message);

    // Once the lock is released the first heartbeat completes, and the refused host's
    // next heartbeat is taken.
    blocker.execute("ROLLBACK").await.unwrap();
    first.await.unwrap().unwrap();
    platform.heartbeat(&b, heartbeat(None)).await.unwrap();
    let hosts = platform
        .browse_hosts(&sparebox_server::HostFilter::default())
        .await
        .unwrap();
    assert_eq!(hosts.len(), 2);
    assert!(hosts.iter().all(|host| host.online), "{hosts:?}");
}
