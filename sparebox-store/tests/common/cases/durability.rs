//! Timestamps, wakeups and reopening a database.

use std::time::Duration;

use chrono::TimeDelta;
use sparebox_core::CommandKind;
use sparebox_store::{NewAccount, Store};

use crate::common::{at, new_account, new_token, Backend, World};

pub async fn timestamps_are_kept_to_the_microsecond<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let precise = at(0) + TimeDelta::nanoseconds(123_456_789);
    let new = NewAccount {
        created_at: precise,
        ..new_account(0)
    };
    let token = new_token(new.id, 0);
    let (created, _) = store.create_account(new, token).await.unwrap();

    assert_eq!(created.created_at, at(0) + TimeDelta::microseconds(123_456));
}

pub async fn wakeup_fires_when_a_command_is_queued<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let mut wakeups = world.store.host_wakeups();

    let (agent, _) = world.deploy(10).await;
    assert_eq!(next_wakeup(&mut wakeups).await, world.host.id);

    world.enqueue(&agent, CommandKind::Stop, 11).await;
    assert_eq!(next_wakeup(&mut wakeups).await, world.host.id);
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub async fn wakeup_reaches_another_replica<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let replica = backend.open().await;
    let mut wakeups = replica.host_wakeups();

    world.enqueue(&agent, CommandKind::Restart, 11).await;

    assert_eq!(next_wakeup(&mut wakeups).await, world.host.id);
}

/// The next wakeup, failing the test rather than hanging when none comes.
async fn next_wakeup(
    wakeups: &mut tokio::sync::broadcast::Receiver<sparebox_core::HostId>,
) -> sparebox_core::HostId {
    tokio::time::timeout(Duration::from_secs(30), wakeups.recv())
        .await
        .expect("a wakeup arrives")
        .expect("wakeup channel open")
}

pub async fn reopening_keeps_data_and_reapplies_no_migration<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    let hosts = world.store.list_hosts().await.unwrap();
    drop(world.store);

    let reopened = backend.open().await;
    let again = backend.open().await;

    assert_eq!(reopened.agent(agent.id).await.unwrap(), Some(agent));
    assert_eq!(again.command(deploy.id).await.unwrap(), Some(deploy));
    assert_eq!(again.list_hosts().await.unwrap(), hosts);
}
