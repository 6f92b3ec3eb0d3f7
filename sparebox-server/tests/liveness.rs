//! Host liveness and command expiry, judged by the server's clock (a manual clock here).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sparebox_core::{AgentState, CommandId};
use sparebox_protocol::{
    AckStatus, AgentStatusReport, CommandAck, HeartbeatRequest, RuntimeStatus,
};
use sparebox_server::{
    AccountRecord, AgentRequest, EncryptionKey, HostFilter, Keyring, ManualClock, Platform,
    PlatformConfig,
};
use sparebox_store::sqlite::SqliteStore;

fn heartbeat(statuses: Vec<AgentStatusReport>, acks: Vec<CommandAck>) -> HeartbeatRequest {
    HeartbeatRequest {
        agent_statuses: statuses,
        command_acks: acks,
        ..common::quiet_heartbeat()
    }
}

/// The ack of a command carried out.
fn acked(id: CommandId) -> CommandAck {
    CommandAck {
        id,
        status: AckStatus::Acked,
        error: None,
    }
}

async fn platform(clock: Arc<ManualClock>) -> Platform {
    let store = SqliteStore::open_in_memory().await.unwrap();
    Platform::new(
        Arc::new(store),
        PlatformConfig::default(),
        Keyring::new(EncryptionKey::generate()),
    )
    .with_clock(clock)
}

#[tokio::test]
async fn silent_host_goes_offline_and_its_agents_recover_when_it_returns() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let platform = platform(clock.clone()).await;
    let owner = common::sign_up_owner(&platform).await;
    let (host_view, key) = platform.register_host(&owner, "box").await.unwrap();
    let host = platform.authenticate_host(&key).await.unwrap();
    platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    let (agent, _) = platform
        .create_agent(
            &owner,
            AgentRequest {
                host_id: host_view.id,
                tier: "standard".into(),
                name: "a".into(),
                openclaw_config: None,
                workspace_files: vec![],
                secrets: Default::default(),
            },
        )
        .await
        .unwrap();
    let delivered = platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    let deploy = delivered.response.commands[0].id;
    let running = AgentStatusReport::new(agent.id, RuntimeStatus::Running);
    platform
        .heartbeat(&host, heartbeat(vec![running.clone()], vec![acked(deploy)]))
        .await
        .unwrap();
    assert_eq!(
        platform.owned_agent(&owner, agent.id).await.unwrap().state,
        AgentState::Running
    );

    // Two intervals of silence: still online.
    clock.advance(Duration::from_secs(120));
    let summary = platform.sweep().await.unwrap();
    assert_eq!(
        (summary.hosts_online, summary.agents_marked_offline),
        (1, 0)
    );

    // Past three intervals: offline, and so are its agents.
    clock.advance(Duration::from_secs(61));
    let summary = platform.sweep().await.unwrap();
    assert_eq!(
        (summary.hosts_online, summary.agents_marked_offline),
        (0, 1)
    );
    assert_eq!(
        platform.owned_agent(&owner, agent.id).await.unwrap().state,
        AgentState::HostOffline
    );
    let summary = platform.sweep().await.unwrap();
    assert_eq!(
        (summary.hosts_online, summary.agents_marked_offline),
        (0, 0),
        "an agent is marked once"
    );
    let hosts = platform.browse_hosts(&HostFilter::default()).await.unwrap();
    assert!(!hosts[0].online);

    // It comes back and reports the agent running.
    platform
        .heartbeat(&host, heartbeat(vec![running], vec![]))
        .await
        .unwrap();
    assert_eq!(
        platform.owned_agent(&owner, agent.id).await.unwrap().state,
        AgentState::Running
    );
    assert_eq!(platform.sweep().await.unwrap().hosts_online, 1);
}

/// A platform on `clock` with one heartbeating host and a Lite agent whose deploy is queued
/// for it, not yet delivered.
async fn host_with_queued_deploy(
    clock: Arc<ManualClock>,
) -> (
    Platform,
    AccountRecord,
    sparebox_store::HostRecord,
    sparebox_server::AgentView,
    sparebox_store::CommandRecord,
) {
    let platform = platform(clock).await;
    let owner = common::sign_up_owner(&platform).await;
    let (host_view, key) = platform.register_host(&owner, "box").await.unwrap();
    let host = platform.authenticate_host(&key).await.unwrap();
    platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    let (agent, command) = platform
        .create_agent(
            &owner,
            AgentRequest {
                host_id: host_view.id,
                tier: "lite".into(),
                name: "a".into(),
                openclaw_config: None,
                workspace_files: vec![],
                secrets: Default::default(),
            },
        )
        .await
        .unwrap();
    (platform, owner, host, agent, command)
}

#[tokio::test]
async fn unacknowledged_deploy_expires_after_five_minutes_by_the_server_clock() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (platform, owner, host, agent, command) = host_with_queued_deploy(clock.clone()).await;
    platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();

    // The host keeps heartbeating (so it stays online) but never acks the deploy.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(60));
        platform
            .heartbeat(&host, heartbeat(vec![], vec![]))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(59));
    assert!(
        platform.sweep().await.unwrap().expired.is_empty(),
        "not yet"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(platform.sweep().await.unwrap().expired.len(), 1);
    let view = platform.owned_agent(&owner, agent.id).await.unwrap();
    assert_eq!(view.state, AgentState::Error);
    assert!(view
        .error
        .unwrap()
        .contains("deploy expired before the host acknowledged it"));

    // A late ack changes nothing.
    platform
        .heartbeat(&host, heartbeat(vec![], vec![acked(command.id)]))
        .await
        .unwrap();
    assert_eq!(
        platform.owned_agent(&owner, agent.id).await.unwrap().state,
        AgentState::Error
    );
    let history = platform.agent_commands(&owner, agent.id).await.unwrap();
    assert_eq!(history[0].status, sparebox_core::CommandStatus::Expired);
    assert!(history[0].late_ack);
}

#[tokio::test]
async fn deploy_delivered_before_an_outage_is_applied_when_its_host_returns_with_the_ack() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (platform, owner, host, agent, command) = host_with_queued_deploy(clock.clone()).await;
    let delivered = platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    assert_eq!(delivered.response.commands[0].id, command.id);

    // The host carries the deploy out but cannot reach the server for ten minutes; the
    // sweep keeps running meanwhile.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(60));
        assert!(platform.sweep().await.unwrap().expired.is_empty());
    }
    let running = AgentStatusReport::new(agent.id, RuntimeStatus::Running);
    platform
        .heartbeat(&host, heartbeat(vec![running], vec![acked(command.id)]))
        .await
        .unwrap();
    assert_eq!(
        platform.owned_agent(&owner, agent.id).await.unwrap().state,
        AgentState::Running
    );
    let history = platform.agent_commands(&owner, agent.id).await.unwrap();
    assert_eq!(history[0].status, sparebox_core::CommandStatus::Acked);
    assert!(!history[0].late_ack);
}

/// Creates a Standard agent on `host` and has the host deploy it and report it running.
async fn running_agent(
    platform: &Platform,
    owner: &AccountRecord,
    host: &sparebox_store::HostRecord,
    name: &str,
) -> sparebox_core::AgentId {
    let (agent, _) = platform
        .create_agent(
            owner,
            AgentRequest {
                host_id: host.id,
                tier: "standard".into(),
                name: name.into(),
                openclaw_config: None,
                workspace_files: vec![],
                secrets: Default::default(),
            },
        )
        .await
        .unwrap();
    let delivered = platform
        .heartbeat(host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    let ack = acked(delivered.response.commands[0].id);
    let running = AgentStatusReport::new(agent.id, RuntimeStatus::Running);
    platform
        .heartbeat(host, heartbeat(vec![running], vec![ack]))
        .await
        .unwrap();
    agent.id
}

fn measured(agent: sparebox_core::AgentId, cpu: f64) -> AgentStatusReport {
    let mut report = AgentStatusReport::new(agent, RuntimeStatus::Running);
    report.cpu_percent = Some(cpu);
    report.ram_usage_mb = Some(512);
    report.ram_limit_mb = Some(2048);
    report
}

#[tokio::test]
async fn routine_and_state_changing_reports_in_one_heartbeat_are_both_applied() {
    // Whole seconds, so the time stored (to the microsecond) compares equal.
    let start = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let platform = platform(clock.clone()).await;
    let owner = common::sign_up_owner(&platform).await;
    let (_, key) = platform.register_host(&owner, "box").await.unwrap();
    let host = platform.authenticate_host(&key).await.unwrap();
    platform
        .heartbeat(&host, heartbeat(vec![], vec![]))
        .await
        .unwrap();
    let steady = running_agent(&platform, &owner, &host, "steady").await;
    let crashing = running_agent(&platform, &owner, &host, "crashing").await;
    let twice = running_agent(&platform, &owner, &host, "twice").await;

    clock.advance(Duration::from_secs(61));
    let mut exited = AgentStatusReport::new(crashing, RuntimeStatus::Exited);
    exited.error = Some("exit code 3".into());
    let stranger =
        AgentStatusReport::new(sparebox_core::AgentId::new_random(), RuntimeStatus::Running);
    platform
        .heartbeat(
            &host,
            heartbeat(
                vec![
                    measured(steady, 12.5),
                    exited,
                    measured(twice, 20.0),
                    stranger,
                    measured(twice, 30.0),
                ],
                vec![],
            ),
        )
        .await
        .unwrap();

    let view = platform.owned_agent(&owner, steady).await.unwrap();
    assert_eq!(view.state, AgentState::Running);
    let report = view.last_report.unwrap();
    assert_eq!(report.cpu_percent, Some(12.5));
    assert_eq!(
        view.last_report_at,
        Some(sparebox_server::Clock::now(&*clock))
    );
    let samples = platform
        .agent_samples(&owner, steady, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        samples.iter().map(|s| s.cpu_percent).collect::<Vec<_>>(),
        vec![Some(12.5)]
    );

    let view = platform.owned_agent(&owner, crashing).await.unwrap();
    assert_ne!(view.state, AgentState::Running, "the exit is applied");
    let events = platform.agent_events(&owner, crashing).await.unwrap();
    assert_eq!(events[0].kind, sparebox_store::AgentEventKind::Crashed);
    assert_eq!(events[0].message, "exit code 3");

    let view = platform.owned_agent(&owner, twice).await.unwrap();
    assert_eq!(
        view.last_report.unwrap().cpu_percent,
        Some(30.0),
        "the later report wins"
    );

    // Next minute, a routine heartbeat again: the steady agent gets its second sample.
    clock.advance(Duration::from_secs(61));
    platform
        .heartbeat(&host, heartbeat(vec![measured(steady, 7.0)], vec![]))
        .await
        .unwrap();
    let samples = platform
        .agent_samples(&owner, steady, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        samples.iter().map(|s| s.cpu_percent).collect::<Vec<_>>(),
        vec![Some(12.5), Some(7.0)]
    );
}
