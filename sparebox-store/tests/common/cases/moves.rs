//! Moving an agent to another host: the slot check, the reassignment, the move record.

use sparebox_core::{AgentState, CommandKind, CommandStatus};
use sparebox_store::{MovePhase, MoveRecord, Store, StoreError};

use crate::common::{at, hardware, heartbeat, host, new_command, Backend, World};

pub async fn an_agent_is_reassigned_with_its_deploy_only_where_there_is_room<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (agent, _) = world.deploy(10).await;
    let roomy = host(store, &world.owner, 20).await;
    store
        .record_heartbeat(roomy.id, heartbeat(hardware(64, 16)), at(21))
        .await
        .unwrap();
    let tiny = host(store, &world.owner, 22).await;
    store
        .record_heartbeat(tiny.id, heartbeat(hardware(1, 1)), at(23))
        .await
        .unwrap();

    let refused = store
        .reassign_agent(
            agent.id,
            tiny.id,
            new_command(agent.id, tiny.id, CommandKind::Deploy, 30),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::NoSlot { .. }), "{refused}");
    assert_eq!(
        store.agent(agent.id).await.unwrap().unwrap().host,
        world.host.id
    );
    let wrong = store
        .reassign_agent(
            agent.id,
            roomy.id,
            new_command(agent.id, roomy.id, CommandKind::Start, 30),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, StoreError::Invalid(_)), "{wrong}");

    let (moved, deploy) = store
        .reassign_agent(
            agent.id,
            roomy.id,
            new_command(agent.id, roomy.id, CommandKind::Deploy, 31),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(moved.host, roomy.id);
    assert_eq!(moved.state, AgentState::PendingDeploy);
    assert_eq!((deploy.host, deploy.kind), (roomy.id, CommandKind::Deploy));
    assert_eq!(deploy.status, CommandStatus::Pending);
    assert!(store
        .agents_for_host(world.host.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.agents_for_host(roomy.id).await.unwrap().len(), 1);
}

pub async fn a_move_is_saved_replaced_listed_and_deleted<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (agent, deploy) = world.deploy(10).await;
    let record = MoveRecord {
        agent: agent.id,
        from_host: world.host.id,
        to_host: None,
        phase: MovePhase::BackingUp,
        command: Some(deploy.id),
        backup: None,
        reason: "host drained".into(),
        started_at: at(20),
        updated_at: at(20),
        keep_stopped: true,
    };
    store.save_move(record.clone()).await.unwrap();
    let later = MoveRecord {
        to_host: Some(world.host.id),
        phase: MovePhase::Restoring,
        backup: Some(deploy.id),
        updated_at: at(30),
        ..record.clone()
    };
    store.save_move(later.clone()).await.unwrap();
    assert_eq!(store.moves().await.unwrap(), vec![later.clone()]);
    assert_eq!(
        backend.open().await.agent_move(agent.id).await.unwrap(),
        Some(later)
    );
    assert!(store.delete_move(agent.id).await.unwrap());
    assert!(!store.delete_move(agent.id).await.unwrap());
    assert_eq!(store.agent_move(agent.id).await.unwrap(), None);
}
