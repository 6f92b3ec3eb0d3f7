//! Backup metadata: recorded, listed newest first, pruned to the retention; schedules
//! claimed once per interval.

use sparebox_core::{AgentId, CommandId};
use sparebox_store::{BackupRecord, BackupRetention, Store, StoreError};

use crate::common::{at, Backend, World};

fn backup(agent: AgentId, host: sparebox_core::HostId, secs: i64) -> BackupRecord {
    BackupRecord {
        id: CommandId::new_random(),
        agent,
        host,
        size_bytes: 1000 + secs as u64,
        sha256: format!("{secs:064x}"),
        created_at: at(secs),
    }
}

pub async fn backups_are_listed_newest_first_and_pruned_to_the_retention<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    let store = &world.store;
    let keep = BackupRetention { keep: 2 };

    let first = backup(agent.id, agent.host, 100);
    assert!(store
        .insert_backup(first.clone(), keep)
        .await
        .unwrap()
        .is_empty());
    let theirs = backup(other.id, other.host, 150);
    store.insert_backup(theirs.clone(), keep).await.unwrap();
    let second = backup(agent.id, agent.host, 200);
    assert!(store
        .insert_backup(second.clone(), keep)
        .await
        .unwrap()
        .is_empty());
    let third = backup(agent.id, agent.host, 300);
    let pruned = store.insert_backup(third.clone(), keep).await.unwrap();

    assert_eq!(pruned, vec![first.clone()]);
    assert_eq!(
        store.backups_for_agent(agent.id).await.unwrap(),
        vec![third.clone(), second]
    );
    assert_eq!(
        store.backups_for_agent(other.id).await.unwrap(),
        vec![theirs]
    );
    assert_eq!(store.backup(third.id).await.unwrap(), Some(third));
    assert_eq!(store.backup(first.id).await.unwrap(), None);
}

pub async fn backup_of_unknown_agent_or_twice_is_refused<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let store = &world.store;
    let keep = BackupRetention::default();

    let stray = backup(AgentId::new_random(), agent.host, 100);
    let err = store.insert_backup(stray, keep).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    let once = backup(agent.id, agent.host, 100);
    store.insert_backup(once.clone(), keep).await.unwrap();
    let err = store.insert_backup(once, keep).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn backup_schedules_are_claimed_once_per_interval<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (unscheduled, _) = world.deploy(11).await;
    let store = &world.store;
    let replica = backend.open().await;

    store.set_backup_schedule(agent.id, Some(2)).await.unwrap();
    assert_eq!(store.backup_schedule(agent.id).await.unwrap(), Some(2));
    assert_eq!(store.backup_schedule(unscheduled.id).await.unwrap(), None);

    assert_eq!(
        store.claim_due_backups(at(100)).await.unwrap(),
        vec![agent.id]
    );
    assert!(replica.claim_due_backups(at(100)).await.unwrap().is_empty());
    assert!(store
        .claim_due_backups(at(100 + 7199))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        replica.claim_due_backups(at(100 + 7200)).await.unwrap(),
        vec![agent.id]
    );

    store.set_backup_schedule(agent.id, None).await.unwrap();
    assert!(store
        .claim_due_backups(at(100_000))
        .await
        .unwrap()
        .is_empty());
    let err = store
        .set_backup_schedule(AgentId::new_random(), Some(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}
