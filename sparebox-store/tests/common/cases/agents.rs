//! Agents: creation against slots, listing, updates and events.

use serde_json::json;
use sparebox_core::{AgentState, CommandKind, CommandStatus, DeployStage, Reserve, Tier};
use sparebox_protocol::{AgentStatusReport, RuntimeStatus, WorkspaceFile};
use sparebox_store::{AgentEventKind, AgentUpdate, NewAgentEvent, Store, StoreError};

use crate::common::{
    account, at, hardware, heartbeat, host, new_agent, new_command, Backend, World,
};

pub async fn created_agent_is_pending_deploy_with_a_pending_first_command<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let new = new_agent(world.host.id, &world.owner, Tier::Pro, 10);
    let first = new_command(new.id, new.host, CommandKind::Deploy, 10);

    let (agent, command) = world
        .store
        .create_agent(new.clone(), first.clone(), Reserve::default())
        .await
        .unwrap();

    assert_eq!(agent.id, new.id);
    assert_eq!(agent.tier, Tier::Pro);
    assert_eq!(agent.state, AgentState::PendingDeploy);
    assert_eq!(agent.openclaw_config, new.openclaw_config);
    assert_eq!(agent.workspace_files, new.workspace_files);
    assert_eq!(agent.sealed_secrets, new.sealed_secrets);
    assert_eq!((agent.deploy_stage, agent.error.as_deref()), (None, None));
    assert_eq!(command.id, first.id);
    assert_eq!(command.status, CommandStatus::Pending);
    assert_eq!((command.sent_at, command.acked_at), (None, None));
    assert!(!command.late_ack);
    assert_eq!(world.store.agent(agent.id).await.unwrap(), Some(agent));
    assert_eq!(
        world.store.command(command.id).await.unwrap(),
        Some(command)
    );
}

pub async fn host_without_heartbeat_has_no_slot<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let silent = host(&store, &owner, 1).await;
    let new = new_agent(silent.id, &owner, Tier::Lite, 2);
    let first = new_command(new.id, new.host, CommandKind::Deploy, 2);

    let err = store
        .create_agent(new, first, Reserve::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NoSlot {
                tier: Tier::Lite,
                ..
            }
        ),
        "{err}"
    );
    assert!(store.agents_for_host(silent.id).await.unwrap().is_empty());
}

pub async fn agent_on_unknown_host_is_not_found<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let new = new_agent(sparebox_core::HostId::new_random(), &owner, Tier::Lite, 2);
    let first = new_command(new.id, new.host, CommandKind::Deploy, 2);

    let err = store
        .create_agent(new, first, Reserve::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "host", .. }),
        "{err}"
    );
}

pub async fn first_command_for_another_agent_is_invalid<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let new = new_agent(world.host.id, &world.owner, Tier::Lite, 2);
    let stray = new_command(
        sparebox_core::AgentId::new_random(),
        new.host,
        CommandKind::Deploy,
        2,
    );

    let err = world
        .store
        .create_agent(new.clone(), stray, Reserve::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(world.store.agent(new.id).await.unwrap(), None);
}

pub async fn full_host_refuses_an_agent_until_one_is_undeployed<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let small = host(&store, &owner, 1).await;
    // 5 GiB and 3 cores, minus the default reserve: room for two Standard agents.
    store
        .record_heartbeat(small.id, heartbeat(hardware(5, 3)), at(2))
        .await
        .unwrap();
    let create = |secs| {
        let new = new_agent(small.id, &owner, Tier::Standard, secs);
        let first = new_command(new.id, new.host, CommandKind::Deploy, secs);
        store.create_agent(new, first, Reserve::default())
    };
    let (first, _) = create(10).await.unwrap();
    create(11).await.unwrap();

    let err = create(12).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NoSlot {
                tier: Tier::Standard,
                ..
            }
        ),
        "{err}"
    );

    store
        .update_agent(
            first.id,
            AgentUpdate {
                state: Some(AgentState::Undeployed),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    create(13).await.unwrap();
    assert_eq!(store.agents_for_host(small.id).await.unwrap().len(), 3);
}

pub async fn agents_are_listed_by_owner_and_by_host_oldest_first<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let other_owner = account(&world.store, 3).await;
    let other_host = host(&world.store, &other_owner, 4).await;
    world
        .store
        .record_heartbeat(other_host.id, heartbeat(hardware(16, 8)), at(5))
        .await
        .unwrap();
    let (second, _) = world.deploy(20).await;
    let (first, _) = world.deploy(10).await;
    let foreign = new_agent(other_host.id, &other_owner, Tier::Lite, 15);
    let foreign_cmd = new_command(foreign.id, foreign.host, CommandKind::Deploy, 15);
    let (foreign, _) = world
        .store
        .create_agent(foreign, foreign_cmd, Reserve::default())
        .await
        .unwrap();

    let by_owner = world.store.agents_for_owner(world.owner.id).await.unwrap();
    assert_eq!(by_owner, vec![first.clone(), second.clone()]);
    let by_host = world.store.agents_for_host(world.host.id).await.unwrap();
    assert_eq!(by_host, vec![first, second]);
    assert_eq!(
        world.store.agents_for_host(other_host.id).await.unwrap(),
        vec![foreign.clone()]
    );
    assert_eq!(
        world.store.agents_for_owner(other_owner.id).await.unwrap(),
        vec![foreign]
    );
    assert_eq!(
        world
            .store
            .agent(sparebox_core::AgentId::new_random())
            .await
            .unwrap(),
        None
    );
}

pub async fn agent_update_changes_only_the_given_fields<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let mut report = AgentStatusReport::new(agent.id, RuntimeStatus::Deploying);
    report.deploy_stage = Some(DeployStage::Pulling);
    report.cpu_percent = Some(137.25);
    report.ram_usage_mb = Some(700);

    world
        .store
        .update_agent(
            agent.id,
            AgentUpdate {
                state: Some(AgentState::Deploying),
                deploy_stage: Some(Some(DeployStage::Pulling)),
                error: Some(Some("previous attempt failed".into())),
                report: Some((report.clone(), at(20))),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    let deploying = world.store.agent(agent.id).await.unwrap().unwrap();
    assert_eq!(deploying.state, AgentState::Deploying);
    assert_eq!(deploying.deploy_stage, Some(DeployStage::Pulling));
    assert_eq!(deploying.error.as_deref(), Some("previous attempt failed"));
    assert_eq!(deploying.last_report, Some(report));
    assert_eq!(deploying.last_report_at, Some(at(20)));
    assert_eq!(deploying.openclaw_config, agent.openclaw_config);

    let files = vec![WorkspaceFile {
        path: "memory/notes.md".into(),
        content: "ünïcode ✓".into(),
    }];
    world
        .store
        .update_agent(
            agent.id,
            AgentUpdate {
                state: Some(AgentState::Running),
                deploy_stage: Some(None),
                error: Some(None),
                openclaw_config: Some(json!({"x": [1, 2, {"y": null}]})),
                workspace_files: Some(files.clone()),
                sealed_secrets: Some(vec![9; 64]),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    let running = world.store.agent(agent.id).await.unwrap().unwrap();
    assert_eq!(running.state, AgentState::Running);
    assert_eq!(
        (running.deploy_stage, running.error.as_deref()),
        (None, None)
    );
    assert_eq!(running.openclaw_config, json!({"x": [1, 2, {"y": null}]}));
    assert_eq!(running.workspace_files, files);
    assert_eq!(running.sealed_secrets, vec![9; 64]);
    assert_eq!(running.last_report, deploying.last_report);
    assert_eq!(running.created_at, agent.created_at);
}

pub async fn update_of_unknown_agent_is_not_found<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let err = store
        .update_agent(sparebox_core::AgentId::new_random(), AgentUpdate::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "agent", .. }),
        "{err}"
    );
}

pub async fn events_are_listed_newest_first_and_limited<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    let event = |agent, kind, secs| NewAgentEvent {
        agent,
        kind,
        message: format!("{kind:?} at {secs}"),
        at: at(secs),
    };
    for (kind, secs) in [
        (AgentEventKind::Deployed, 20),
        (AgentEventKind::OomKilled, 30),
        (AgentEventKind::Restarted, 30),
        (AgentEventKind::Stopped, 40),
    ] {
        world
            .store
            .add_event(event(agent.id, kind, secs))
            .await
            .unwrap();
    }
    world
        .store
        .add_event(event(other.id, AgentEventKind::Crashed, 50))
        .await
        .unwrap();

    let recent = world.store.events_for_agent(agent.id, 3).await.unwrap();
    let kinds: Vec<_> = recent.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AgentEventKind::Stopped,
            AgentEventKind::Restarted,
            AgentEventKind::OomKilled
        ]
    );
    assert_eq!(recent[0].message, "Stopped at 40");
    assert_eq!(recent[0].at, at(40));

    let err = world
        .store
        .add_event(event(
            sparebox_core::AgentId::new_random(),
            AgentEventKind::Started,
            60,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "agent", .. }),
        "{err}"
    );
}
