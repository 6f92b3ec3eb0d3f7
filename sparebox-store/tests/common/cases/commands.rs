//! Commands: queueing, supersession, delivery, acks and expiry.

use sparebox_core::{CommandId, CommandKind, CommandStatus};
use sparebox_store::{AckOutcome, Store, StoreError};

use super::{ack, nack, status_of};
use crate::common::{at, hardware, heartbeat, host, new_command, Backend, World};

pub async fn command_for_unknown_agent_or_wrong_host_is_refused<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;

    let unknown = new_command(
        sparebox_core::AgentId::new_random(),
        world.host.id,
        CommandKind::Start,
        11,
    );
    let err = world.store.enqueue_command(unknown).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "agent", .. }),
        "{err}"
    );

    let misaddressed = new_command(
        agent.id,
        sparebox_core::HostId::new_random(),
        CommandKind::Start,
        12,
    );
    let err = world.store.enqueue_command(misaddressed).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        world
            .store
            .commands_for_agent(agent.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn command_id_used_twice_is_a_conflict<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    let mut again = new_command(agent.id, agent.host, CommandKind::Stop, 11);
    again.id = deploy.id;

    let err = world.store.enqueue_command(again).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn newer_command_supersedes_pending_ones_it_replaces<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    let start = world.enqueue(&agent, CommandKind::Start, 11).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();
    let restart = world.enqueue(&agent, CommandKind::Restart, 13).await;
    let config = world.enqueue(&agent, CommandKind::UpdateConfig, 14).await;

    let stop = world.enqueue(&agent, CommandKind::Stop, 15).await;

    assert_eq!(
        status_of(&world.store, deploy.id).await,
        CommandStatus::Sent
    );
    assert_eq!(status_of(&world.store, start.id).await, CommandStatus::Sent);
    assert_eq!(
        status_of(&world.store, restart.id).await,
        CommandStatus::Superseded
    );
    assert_eq!(
        status_of(&world.store, config.id).await,
        CommandStatus::Pending
    );
    assert_eq!(
        status_of(&world.store, stop.id).await,
        CommandStatus::Pending
    );
    let delivered = world
        .store
        .deliver_commands(world.host.id, at(16), 10)
        .await
        .unwrap();
    let ids: Vec<_> = delivered.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![config.id, stop.id]);
}

pub async fn delivery_sends_pending_commands_oldest_first_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    let config = world.enqueue(&agent, CommandKind::UpdateConfig, 12).await;
    let restart = world.enqueue(&agent, CommandKind::Restart, 11).await;

    let first = world
        .store
        .deliver_commands(world.host.id, at(20), 2)
        .await
        .unwrap();
    let ids: Vec<_> = first.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![deploy.id, restart.id]);
    assert!(first
        .iter()
        .all(|c| c.status == CommandStatus::Sent && c.sent_at == Some(at(20))));
    assert_eq!(
        world.store.command(deploy.id).await.unwrap().unwrap(),
        first[0]
    );

    let second = world
        .store
        .deliver_commands(world.host.id, at(21), 10)
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![config.id]
    );
    assert!(world
        .store
        .deliver_commands(world.host.id, at(22), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(world
        .store
        .deliver_commands(world.host.id, at(22), 0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delivery_only_returns_the_hosts_own_commands<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let other = host(&world.store, &world.owner, 3).await;
    world
        .store
        .record_heartbeat(other.id, heartbeat(hardware(16, 8)), at(4))
        .await
        .unwrap();
    world.deploy(10).await;

    assert!(world
        .store
        .deliver_commands(other.id, at(20), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        world
            .store
            .deliver_commands(world.host.id, at(20), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn ack_and_nack_finish_sent_commands<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    let config = world.enqueue(&agent, CommandKind::UpdateConfig, 11).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();

    let acked = world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(13))
        .await
        .unwrap();
    let AckOutcome::Applied(acked) = acked else {
        panic!("expected applied, got {acked:?}");
    };
    assert_eq!(acked.status, CommandStatus::Acked);
    assert_eq!(
        (acked.acked_at, acked.error.as_deref()),
        (Some(at(13)), None)
    );

    let failed = world
        .store
        .record_ack(world.host.id, &nack(config.id, "image missing"), at(14))
        .await
        .unwrap();
    let AckOutcome::Applied(failed) = failed else {
        panic!("expected applied, got {failed:?}");
    };
    assert_eq!(failed.status, CommandStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("image missing"));
    assert_eq!(world.store.command(config.id).await.unwrap(), Some(failed));
}

pub async fn duplicate_ack_changes_nothing<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (_, deploy) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();
    world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(13))
        .await
        .unwrap();
    let stored = world.store.command(deploy.id).await.unwrap().unwrap();

    let again = world
        .store
        .record_ack(world.host.id, &nack(deploy.id, "changed my mind"), at(14))
        .await
        .unwrap();

    assert_eq!(again, AckOutcome::Duplicate(stored.clone()));
    assert_eq!(world.store.command(deploy.id).await.unwrap(), Some(stored));
}

pub async fn ack_from_another_host_is_unknown_and_changes_nothing<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let intruder = host(&world.store, &world.owner, 3).await;
    let (_, deploy) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();
    let before = world.store.command(deploy.id).await.unwrap();

    let outcome = world
        .store
        .record_ack(intruder.id, &ack(deploy.id), at(13))
        .await
        .unwrap();
    assert_eq!(outcome, AckOutcome::Unknown);
    assert_eq!(world.store.command(deploy.id).await.unwrap(), before);

    let unknown = ack(CommandId::new_random());
    let outcome = world
        .store
        .record_ack(world.host.id, &unknown, at(13))
        .await
        .unwrap();
    assert_eq!(outcome, AckOutcome::Unknown);
}

pub async fn ack_for_undelivered_command_counts_as_delivery<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (_, deploy) = world.deploy(10).await;

    let outcome = world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(13))
        .await
        .unwrap();

    let AckOutcome::Applied(applied) = outcome else {
        panic!("expected applied, got {outcome:?}");
    };
    assert_eq!(applied.status, CommandStatus::Acked);
    assert_eq!(
        (applied.sent_at, applied.acked_at),
        (Some(at(13)), Some(at(13)))
    );
}

pub async fn late_ack_is_recorded_without_changing_an_expired_command<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (_, deploy) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();
    world.heartbeat_at(20).await;
    world.store.expire_commands(at(400), at(0)).await.unwrap();

    let outcome = world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(500))
        .await
        .unwrap();
    let AckOutcome::Late(late) = outcome else {
        panic!("expected late, got {outcome:?}");
    };
    assert_eq!(late.status, CommandStatus::Expired);
    assert!(late.late_ack);
    assert_eq!(late.acked_at, Some(at(500)));

    let again = world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(600))
        .await
        .unwrap();
    assert_eq!(again, AckOutcome::Late(late.clone()));
    assert_eq!(world.store.command(deploy.id).await.unwrap(), Some(late));
}

pub async fn expiry_takes_only_open_commands_created_before_the_cutoff<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, sent) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(11), 10)
        .await
        .unwrap();
    let acked = world.enqueue(&agent, CommandKind::Restart, 21).await;
    world
        .store
        .deliver_commands(world.host.id, at(21), 10)
        .await
        .unwrap();
    world
        .store
        .record_ack(world.host.id, &ack(acked.id), at(22))
        .await
        .unwrap();
    let pending = world.enqueue(&agent, CommandKind::UpdateConfig, 20).await;
    let at_cutoff = world.enqueue(&agent, CommandKind::Stop, 100).await;
    // The host was heard from after the deliveries without acking the deploy.
    world.heartbeat_at(30).await;

    let expired = world.store.expire_commands(at(100), at(0)).await.unwrap();

    let ids: Vec<_> = expired.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![sent.id, pending.id]);
    assert!(expired.iter().all(|c| c.status == CommandStatus::Expired));
    assert_eq!(
        world.store.command(sent.id).await.unwrap().as_ref(),
        Some(&expired[0])
    );
    assert_eq!(
        status_of(&world.store, acked.id).await,
        CommandStatus::Acked
    );
    assert_eq!(
        status_of(&world.store, at_cutoff.id).await,
        CommandStatus::Pending
    );
    assert!(world
        .store
        .expire_commands(at(100), at(0))
        .await
        .unwrap()
        .is_empty());
}

pub async fn expired_command_is_not_redelivered<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    world.deploy(10).await;
    world.store.expire_commands(at(400), at(0)).await.unwrap();

    assert!(world
        .store
        .deliver_commands(world.host.id, at(401), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn commands_for_agent_are_newest_first_and_limited<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    world.enqueue(&other, CommandKind::Stop, 12).await;
    let config = world.enqueue(&agent, CommandKind::UpdateConfig, 13).await;
    let stop = world.enqueue(&agent, CommandKind::Stop, 14).await;

    let recent = world.store.commands_for_agent(agent.id, 2).await.unwrap();

    assert_eq!(recent, vec![stop, config]);
    assert_eq!(
        world
            .store
            .commands_for_agent(agent.id, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        world.store.command(CommandId::new_random()).await.unwrap(),
        None
    );
}

pub async fn recent_commands_for_host_match_each_agents_latest<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let elsewhere = World::new(world.store.clone()).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    let (foreign, _) = elsewhere.deploy(11).await;
    world.enqueue(&agent, CommandKind::UpdateConfig, 13).await;
    world.enqueue(&agent, CommandKind::Stop, 13).await;
    world.enqueue(&other, CommandKind::Stop, 12).await;
    elsewhere.enqueue(&foreign, CommandKind::Stop, 14).await;

    let recent = world
        .store
        .recent_commands_for_host(world.host.id, 2)
        .await
        .unwrap();

    assert_eq!(recent.len(), 2, "{recent:?}");
    for id in [agent.id, other.id] {
        let expected = world.store.commands_for_agent(id, 2).await.unwrap();
        assert_eq!(recent[&id], expected);
    }
    let empty = World::new(world.store.clone()).await;
    assert!(empty
        .store
        .recent_commands_for_host(empty.host.id, 2)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delivered_command_waits_for_its_silent_host_until_the_delivered_cutoff<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let (agent, deploy) = world.deploy(10).await;
    world
        .store
        .deliver_commands(world.host.id, at(12), 10)
        .await
        .unwrap();
    // The host's last heartbeat is the one the deploy was delivered on.
    world.heartbeat_at(12).await;
    let pending = world.enqueue(&agent, CommandKind::UpdateConfig, 20).await;

    // Long past the cutoff, but the host has not been heard from since: only the
    // undelivered command expires.
    let expired = world.store.expire_commands(at(400), at(0)).await.unwrap();
    assert_eq!(
        expired.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![pending.id]
    );
    assert_eq!(
        status_of(&world.store, deploy.id).await,
        CommandStatus::Sent
    );

    // Its ack when the host is back applies as usual.
    let outcome = world
        .store
        .record_ack(world.host.id, &ack(deploy.id), at(450))
        .await
        .unwrap();
    assert!(matches!(outcome, AckOutcome::Applied(_)), "{outcome:?}");

    // Another delivered command of a host that never comes back expires at the
    // delivered cutoff.
    let stop = world.enqueue(&agent, CommandKind::Stop, 460).await;
    world
        .store
        .deliver_commands(world.host.id, at(461), 10)
        .await
        .unwrap();
    assert!(world
        .store
        .expire_commands(at(900), at(400))
        .await
        .unwrap()
        .is_empty());
    let expired = world.store.expire_commands(at(900), at(461)).await.unwrap();
    assert_eq!(
        expired.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![stop.id]
    );
}
