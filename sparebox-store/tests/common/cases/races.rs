//! Several replicas racing for the same rows.

use std::collections::HashSet;

use sparebox_core::{CommandKind, Reserve, Tier};
use sparebox_store::{AckOutcome, HostSettings, Store, StoreError};

use super::ack;
use crate::common::{
    account, at, hardware, heartbeat, host, new_agent, new_command, Backend, World,
};

/// Replicas in each race.
const RACERS: usize = 8;

pub async fn racing_deliveries_hand_out_each_command_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let mut queued = HashSet::new();
    for i in 0..6 {
        let (agent, deploy) = world.deploy(10 + i).await;
        queued.insert(deploy.id);
        for j in 0..5i64 {
            // Deploys supersede nothing, so every one of them stays deliverable.
            let secs = 100 + i * 10 + j;
            queued.insert(world.enqueue(&agent, CommandKind::Deploy, secs).await.id);
        }
    }
    let mut replicas = Vec::new();
    for _ in 0..RACERS {
        replicas.push(backend.open().await);
    }

    let tasks: Vec<_> = replicas
        .into_iter()
        .map(|store| {
            let host = world.host.id;
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.deliver_commands(host, at(500), 3).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut delivered = Vec::new();
    let mut shares = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        shares.push(mine.len());
        delivered.extend(mine);
    }
    // How the work was shared depends on scheduling; it is reported, not asserted.
    eprintln!("commands delivered per replica: {shares:?}");

    let unique: HashSet<_> = delivered.iter().copied().collect();
    assert_eq!(
        delivered.len(),
        unique.len(),
        "a command was delivered twice"
    );
    assert_eq!(unique, queued);
    assert!(world
        .store
        .deliver_commands(world.host.id, at(501), 100)
        .await
        .unwrap()
        .is_empty());
}

pub async fn racing_creates_for_the_last_slot_have_one_winner<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let small = host(&store, &owner, 1).await;
    store
        .record_heartbeat(small.id, heartbeat(hardware(5, 3)), at(2))
        .await
        .unwrap();
    let first = new_agent(small.id, &owner, Tier::Standard, 3);
    let first_cmd = new_command(first.id, first.host, CommandKind::Deploy, 3);
    store
        .create_agent(first, first_cmd, Reserve::default())
        .await
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..RACERS {
        replicas.push(backend.open().await);
    }

    let tasks: Vec<_> = replicas
        .into_iter()
        .enumerate()
        .map(|(i, replica)| {
            let new = new_agent(small.id, &owner, Tier::Standard, 10 + i as i64);
            let cmd = new_command(new.id, new.host, CommandKind::Deploy, 10 + i as i64);
            tokio::spawn(async move { replica.create_agent(new, cmd, Reserve::default()).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::NoSlot { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    assert_eq!(wins, 1);
    assert_eq!(store.agents_for_host(small.id).await.unwrap().len(), 2);
}

pub async fn racing_creates_under_the_cap_have_one_winner<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let big = host(&store, &owner, 1).await;
    store
        .record_heartbeat(big.id, heartbeat(hardware(64, 16)), at(2))
        .await
        .unwrap();
    store
        .set_host_settings(
            big.id,
            HostSettings {
                max_agents: Some(2),
                ..HostSettings::default()
            },
        )
        .await
        .unwrap();
    let first = new_agent(big.id, &owner, Tier::Lite, 3);
    let first_cmd = new_command(first.id, first.host, CommandKind::Deploy, 3);
    store
        .create_agent(first, first_cmd, Reserve::default())
        .await
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..RACERS {
        replicas.push(backend.open().await);
    }

    let tasks: Vec<_> = replicas
        .into_iter()
        .enumerate()
        .map(|(i, replica)| {
            let new = new_agent(big.id, &owner, Tier::Lite, 10 + i as i64);
            let cmd = new_command(new.id, new.host, CommandKind::Deploy, 10 + i as i64);
            tokio::spawn(async move { replica.create_agent(new, cmd, Reserve::default()).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::HostAtCap { max: 2, .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    assert_eq!(wins, 1);
    assert_eq!(store.agents_for_host(big.id).await.unwrap().len(), 2);
}

pub async fn racing_acks_apply_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (_, deploy) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(11), 10)
        .await
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..RACERS {
        replicas.push(backend.open().await);
    }

    let tasks: Vec<_> = replicas
        .into_iter()
        .map(|replica| {
            let host = world.host.id;
            tokio::spawn(async move { replica.record_ack(host, &ack(deploy.id), at(12)).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            AckOutcome::Applied(_) => applied += 1,
            AckOutcome::Duplicate(_) => {}
            other => panic!("unexpected outcome: {other:?}"),
        }
    }

    assert_eq!(applied, 1);
}
