//! A heartbeat's routine writes: the host, reports that change nothing else, their samples.

use sparebox_core::{AgentId, AgentState, CommandKind, Reserve, Tier};
use sparebox_protocol::{AgentStatusReport, RuntimeStatus};
use sparebox_store::{
    AgentRecord, AgentSample, AgentUpdate, ReportWrite, SeenAgent, Store, StoreError,
};

use crate::common::{
    account, at, hardware, heartbeat, host, new_agent, new_command, Backend, World,
};

fn minute() -> chrono::Duration {
    chrono::Duration::seconds(60)
}

fn running_report(agent: AgentId, cpu: f64) -> AgentStatusReport {
    let mut report = AgentStatusReport::new(agent, RuntimeStatus::Running);
    report.cpu_percent = Some(cpu);
    report.ram_usage_mb = Some(300);
    report.ram_limit_mb = Some(2048);
    report.restart_count = 1;
    report
}

fn write(agent: &AgentRecord, secs: i64, cpu: f64, with_sample: bool) -> ReportWrite {
    ReportWrite {
        agent: agent.id,
        seen: SeenAgent::from(agent),
        report: running_report(agent.id, cpu),
        sample: with_sample.then(|| AgentSample {
            agent: agent.id,
            at: at(secs),
            cpu_percent: Some(cpu),
            ram_usage_mb: Some(300),
            ram_limit_mb: Some(2048),
        }),
    }
}

async fn running<S: Store>(store: &S, agent: &AgentRecord) -> AgentRecord {
    let update = AgentUpdate {
        state: Some(AgentState::Running),
        deploy_stage: Some(None),
        ..AgentUpdate::default()
    };
    store.update_agent(agent.id, update).await.unwrap();
    store.agent(agent.id).await.unwrap().unwrap()
}

pub async fn heartbeat_reports_record_the_host_reports_and_thinned_samples<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (a, _) = world.deploy(10).await;
    let (b, _) = world.deploy(11).await;
    let a = running(store, &a).await;

    let stale = store
        .record_heartbeat_reports(
            world.host.id,
            heartbeat(hardware(32, 8)),
            at(50),
            vec![write(&a, 50, 12.5, true), write(&b, 50, 1.0, false)],
            minute(),
        )
        .await
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");

    let host = store.host(world.host.id).await.unwrap().unwrap();
    assert_eq!(host.hardware, Some(hardware(32, 8)));
    assert_eq!(host.last_heartbeat_at, Some(at(50)));
    let after = store.agent(a.id).await.unwrap().unwrap();
    assert_eq!(after.last_report, Some(running_report(a.id, 12.5)));
    assert_eq!(after.last_report_at, Some(at(50)));
    assert_eq!(
        AgentRecord {
            last_report: a.last_report.clone(),
            last_report_at: a.last_report_at,
            ..after.clone()
        },
        a,
        "only the report changes"
    );
    let b_after = store.agent(b.id).await.unwrap().unwrap();
    assert_eq!(b_after.state, AgentState::PendingDeploy);
    assert_eq!(b_after.last_report, Some(running_report(b.id, 1.0)));
    assert!(store.agent_samples(b.id, at(0)).await.unwrap().is_empty());

    // The next heartbeats: 30 s later the sample is thinned out, 61 s later it is kept.
    for (secs, cpu) in [(80, 20.0), (111, 30.0)] {
        let seen = store.agent(a.id).await.unwrap().unwrap();
        let stale = store
            .record_heartbeat_reports(
                world.host.id,
                heartbeat(hardware(32, 8)),
                at(secs),
                vec![write(&seen, secs, cpu, true)],
                minute(),
            )
            .await
            .unwrap();
        assert!(stale.is_empty());
    }
    let samples = store.agent_samples(a.id, at(0)).await.unwrap();
    assert_eq!(
        samples
            .iter()
            .map(|s| (s.at, s.cpu_percent))
            .collect::<Vec<_>>(),
        vec![(at(50), Some(12.5)), (at(111), Some(30.0))]
    );
    let latest = store.agent(a.id).await.unwrap().unwrap();
    assert_eq!(latest.last_report, Some(running_report(a.id, 30.0)));
    assert_eq!(latest.last_report_at, Some(at(111)));
}

pub async fn heartbeat_report_for_an_agent_changed_since_seen_is_not_written<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (stopped, _) = world.deploy(10).await;
    let stopped = running(store, &stopped).await;
    let (reported, _) = world.deploy(11).await;
    let reported = running(store, &reported).await;
    let (steady, _) = world.deploy(12).await;
    let steady = running(store, &steady).await;

    // Changed after it was read: stopped by someone else, or reported by another heartbeat.
    store
        .update_agent(
            stopped.id,
            AgentUpdate {
                state: Some(AgentState::Stopped),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    store
        .update_agent(
            reported.id,
            AgentUpdate {
                report: Some((running_report(reported.id, 99.0), at(40))),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    // An agent of another host.
    let other_owner = account(store, 3).await;
    let other_host = host(store, &other_owner, 4).await;
    store
        .record_heartbeat(other_host.id, heartbeat(hardware(16, 8)), at(5))
        .await
        .unwrap();
    let foreign = new_agent(other_host.id, &other_owner, Tier::Lite, 15);
    let command = new_command(foreign.id, foreign.host, CommandKind::Deploy, 15);
    let (foreign, _) = store
        .create_agent(foreign, command, Reserve::default())
        .await
        .unwrap();

    let mut stale = store
        .record_heartbeat_reports(
            world.host.id,
            heartbeat(hardware(32, 8)),
            at(50),
            vec![
                write(&stopped, 50, 1.0, true),
                write(&reported, 50, 2.0, true),
                write(&steady, 50, 3.0, true),
                write(&foreign, 50, 4.0, true),
            ],
            minute(),
        )
        .await
        .unwrap();
    stale.sort();
    let mut expected = vec![stopped.id, reported.id, foreign.id];
    expected.sort();
    assert_eq!(stale, expected);

    let stopped = store.agent(stopped.id).await.unwrap().unwrap();
    assert_eq!(stopped.state, AgentState::Stopped);
    assert_eq!(stopped.last_report, None);
    let reported = store.agent(reported.id).await.unwrap().unwrap();
    assert_eq!(
        reported.last_report,
        Some(running_report(reported.id, 99.0))
    );
    assert_eq!(reported.last_report_at, Some(at(40)));
    assert_eq!(
        store.agent(foreign.id).await.unwrap().unwrap().last_report,
        None
    );
    for agent in [stopped.id, reported.id, foreign.id] {
        assert!(store.agent_samples(agent, at(0)).await.unwrap().is_empty());
    }
    let steady = store.agent(steady.id).await.unwrap().unwrap();
    assert_eq!(steady.last_report, Some(running_report(steady.id, 3.0)));
    assert_eq!(
        store.agent_samples(steady.id, at(0)).await.unwrap().len(),
        1
    );
    let host = store.host(world.host.id).await.unwrap().unwrap();
    assert_eq!(host.last_heartbeat_at, Some(at(50)));
}

pub async fn heartbeat_reports_for_unknown_host_write_nothing<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (agent, _) = world.deploy(10).await;
    let err = store
        .record_heartbeat_reports(
            sparebox_core::HostId::new_random(),
            heartbeat(hardware(32, 8)),
            at(50),
            vec![write(&agent, 50, 1.0, true)],
            minute(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let agent = store.agent(agent.id).await.unwrap().unwrap();
    assert_eq!(agent.last_report, None);
    assert!(store
        .agent_samples(agent.id, at(0))
        .await
        .unwrap()
        .is_empty());
}

pub async fn samples_are_pruned_before_a_time<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (agent, _) = world.deploy(10).await;
    for secs in [100, 200, 300] {
        let seen = store.agent(agent.id).await.unwrap().unwrap();
        store
            .record_heartbeat_reports(
                world.host.id,
                heartbeat(hardware(32, 8)),
                at(secs),
                vec![write(&seen, secs, 1.0, true)],
                minute(),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.prune_agent_samples(at(200)).await.unwrap(), 1);
    let kept = store.agent_samples(agent.id, at(0)).await.unwrap();
    assert_eq!(
        kept.iter().map(|s| s.at).collect::<Vec<_>>(),
        vec![at(200), at(300)]
    );
    assert_eq!(store.prune_agent_samples(at(200)).await.unwrap(), 0);
}

pub async fn silent_hosts_agents_are_listed_until_marked_offline<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let store = &world.store;
    let (first, _) = world.deploy(10).await;
    let first = running(store, &first).await;
    let (gone, _) = world.deploy(11).await;
    let (second, _) = world.deploy(12).await;
    store
        .update_agent(
            gone.id,
            AgentUpdate {
                state: Some(AgentState::Undeployed),
                ..AgentUpdate::default()
            },
        )
        .await
        .unwrap();
    let other_owner = account(store, 3).await;
    let heard = host(store, &other_owner, 4).await;
    store
        .record_heartbeat(heard.id, heartbeat(hardware(16, 8)), at(100))
        .await
        .unwrap();
    let foreign = new_agent(heard.id, &other_owner, Tier::Lite, 15);
    let command = new_command(foreign.id, foreign.host, CommandKind::Deploy, 15);
    store
        .create_agent(foreign, command, Reserve::default())
        .await
        .unwrap();
    // Registered, never heard from: not silent, just not started yet.
    host(store, &other_owner, 5).await;

    assert_eq!(store.count_hosts_heard_since(at(50)).await.unwrap(), 1);
    assert_eq!(store.count_hosts_heard_since(at(2)).await.unwrap(), 2);
    assert_eq!(store.count_hosts_heard_since(at(101)).await.unwrap(), 0);

    let silent = store.agents_of_silent_hosts(at(50)).await.unwrap();
    assert_eq!(
        silent.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert!(store
        .agents_of_silent_hosts(at(2))
        .await
        .unwrap()
        .is_empty());

    for agent in [first.id, second.id] {
        let update = AgentUpdate {
            state: Some(AgentState::HostOffline),
            ..AgentUpdate::default()
        };
        store.update_agent(agent, update).await.unwrap();
    }
    assert!(store
        .agents_of_silent_hosts(at(50))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.agents_of_silent_hosts(at(101)).await.unwrap().len(),
        1,
        "the other host's agent once that host is silent too"
    );
}
