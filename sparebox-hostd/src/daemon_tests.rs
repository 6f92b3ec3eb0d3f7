use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sparebox_core::{AgentId, CommandKind, DeployStage};
use sparebox_protocol::{AckStatus, HeartbeatRequest, RuntimeStatus};
use sparebox_runtime::fake::{FakeCall, FakeOp, FakeRuntime};

use super::{DaemonError, HostDaemon};
use crate::client::ClientError;
use crate::health::HealthProbe;
use crate::journal::Journal;
use crate::testing::{command, config, response, FakeServer, Probe};

/// Runs a daemon over `server` until the server has seen `heartbeats` heartbeats.
pub(crate) async fn run_until(
    dir: &std::path::Path,
    runtime: Arc<FakeRuntime>,
    server: Arc<FakeServer>,
    health: Arc<dyn HealthProbe>,
    heartbeats: usize,
) -> Result<(), DaemonError> {
    run_with(config(dir), runtime, server, health, heartbeats).await
}

/// As [`run_until`], with a configuration of the test's own.
pub(crate) async fn run_with(
    config: crate::DaemonConfig,
    runtime: Arc<FakeRuntime>,
    server: Arc<FakeServer>,
    health: Arc<dyn HealthProbe>,
    heartbeats: usize,
) -> Result<(), DaemonError> {
    let daemon = HostDaemon::with_parts(config, runtime, server.clone(), health).unwrap();
    let done = {
        let server = server.clone();
        async move {
            while server.heartbeats().len() < heartbeats {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    daemon.run(done).await
}

fn acks_in(heartbeat: &HeartbeatRequest) -> usize {
    heartbeat.command_acks.len()
}

#[tokio::test(start_paused = true)]
async fn redelivered_command_is_acked_again_without_running_again() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    for _ in 0..4 {
        server.script(Ok(response(vec![deploy.clone()], Vec::new())));
    }

    run_until(
        dir.path(),
        runtime.clone(),
        server.clone(),
        Arc::new(Probe(true)),
        6,
    )
    .await
    .unwrap();

    assert_eq!(runtime.count(FakeOp::CreateAndStart), 1);
    assert_eq!(runtime.count(FakeOp::EnsureImage), 1);
    let last = server.heartbeats().pop().unwrap();
    assert_eq!(last.command_acks.len(), 1);
    assert_eq!(last.command_acks[0].id, deploy.id);
    assert_eq!(last.command_acks[0].status, AckStatus::Acked);
}

#[tokio::test(start_paused = true)]
async fn ack_is_resent_until_the_server_confirms_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    server.script(Ok(response(vec![deploy.clone()], Vec::new())));
    server.script(Ok(response(Vec::new(), Vec::new())));
    server.script(Ok(response(Vec::new(), Vec::new())));
    server.script(Ok(response(Vec::new(), vec![deploy.id])));

    run_until(
        dir.path(),
        runtime,
        server.clone(),
        Arc::new(Probe(true)),
        6,
    )
    .await
    .unwrap();

    let acks: Vec<usize> = server.heartbeats().iter().map(acks_in).collect();
    assert_eq!(acks, [0, 1, 1, 1, 0, 0]);
    let journal = Journal::load(&dir.path().join("journal.json")).unwrap();
    assert!(journal.pending_acks.is_empty());
    assert_eq!(journal.executed.len(), 1);
    assert_eq!(journal.agents.len(), 1);
}

/// Unhealthy for the first `n` probes.
struct SlowStart(u32, AtomicU32);

#[async_trait]
impl HealthProbe for SlowStart {
    async fn probe(&self, _port: u16) -> Result<(), String> {
        if self.1.fetch_add(1, Ordering::SeqCst) < self.0 {
            Err("starting".into())
        } else {
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn deploy_stages_show_in_quick_heartbeats_until_running() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let agent = AgentId::new_random();
    server.script(Ok(response(
        vec![command(CommandKind::Deploy, agent)],
        Vec::new(),
    )));

    let probe = Arc::new(SlowStart(5, AtomicU32::new(0)));
    run_until(dir.path(), runtime, server.clone(), probe, 9)
        .await
        .unwrap();

    let heartbeats = server.heartbeats();
    assert_eq!(heartbeats[0].wait_seconds, Some(30), "idle: long poll");
    assert_eq!(heartbeats[2].wait_seconds, None, "busy: answer at once");
    let during = &heartbeats[2].agent_statuses[0];
    assert_eq!(during.status, RuntimeStatus::Deploying);
    assert_eq!(during.deploy_stage, Some(DeployStage::HealthCheck));
    assert!(heartbeats[2].command_acks.is_empty());
    let after = &heartbeats.last().unwrap().agent_statuses[0];
    assert_eq!(after.status, RuntimeStatus::Running);
    assert_eq!(after.deploy_stage, None);
    assert_eq!(heartbeats.last().unwrap().command_acks.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn refused_host_key_stops_the_daemon_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(FakeServer::default());
    server.script(Err(ClientError::Unauthorized {
        status: 401,
        message: "unauthorized: unknown host key".into(),
    }));

    let result = run_until(
        dir.path(),
        Arc::new(FakeRuntime::new()),
        server.clone(),
        Arc::new(Probe(true)),
        usize::MAX,
    )
    .await;

    assert!(
        matches!(result, Err(DaemonError::Unauthorized(_))),
        "{result:?}"
    );
    assert_eq!(server.heartbeats().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn network_errors_are_retried_with_growing_waits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(FakeServer::default());
    for _ in 0..4 {
        server.script(Err(ClientError::Network("connection refused".into())));
    }
    let started = tokio::time::Instant::now();

    run_until(
        dir.path(),
        Arc::new(FakeRuntime::new()),
        server.clone(),
        Arc::new(Probe(true)),
        5,
    )
    .await
    .unwrap();

    // Waits of at least 0.5 + 1 + 2 + 4 seconds (half of each doubling step).
    assert!(
        started.elapsed() >= Duration::from_millis(7500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() <= Duration::from_secs(16),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn restarted_daemon_reacks_from_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    let first = Arc::new(FakeServer::default());
    first.script(Ok(response(vec![deploy.clone()], Vec::new())));
    run_until(dir.path(), runtime.clone(), first, Arc::new(Probe(true)), 3)
        .await
        .unwrap();

    let second = Arc::new(FakeServer::default());
    second.script(Ok(response(vec![deploy.clone()], Vec::new())));
    run_until(
        dir.path(),
        runtime.clone(),
        second.clone(),
        Arc::new(Probe(true)),
        3,
    )
    .await
    .unwrap();

    assert_eq!(runtime.count(FakeOp::CreateAndStart), 1);
    let heartbeats = second.heartbeats();
    assert_eq!(heartbeats[0].command_acks[0].id, deploy.id);
    let created_on = runtime.calls().into_iter().find_map(|call| match call {
        FakeCall::CreateAndStart(spec) => Some(spec.gateway_port),
        _ => None,
    });
    assert_eq!(heartbeats[0].agent_statuses[0].gateway_port, created_on);
}

/// Runs a first daemon whose deploy halts after recording `stage` (as if killed there),
/// then a second one on the same data directory, whose server hands the deploy out again
/// when `offered_again`; returns the runtime, the deploy and the second daemon's
/// heartbeats.
async fn deploy_interrupted_at(
    stage: DeployStage,
    offered_again: bool,
) -> (
    Arc<FakeRuntime>,
    sparebox_protocol::Command,
    Vec<HeartbeatRequest>,
) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    let first = Arc::new(FakeServer::default());
    first.script(Ok(response(vec![deploy.clone()], Vec::new())));
    let mut halting = config(dir.path());
    halting.halt_after_stage = Some(stage);
    run_with(
        halting,
        runtime.clone(),
        first.clone(),
        Arc::new(Probe(true)),
        4,
    )
    .await
    .unwrap();
    assert!(
        first.heartbeats().iter().all(|h| h.command_acks.is_empty()),
        "the first daemon never acked"
    );

    // The server does not deliver a sent command again in heartbeats; the daemon may only
    // ask for it by id.
    let second = Arc::new(FakeServer::default());
    if offered_again {
        second.offer_again(&deploy);
    }
    run_until(
        dir.path(),
        runtime.clone(),
        second.clone(),
        Arc::new(Probe(true)),
        4,
    )
    .await
    .unwrap();
    let journal = Journal::load(&dir.path().join("journal.json")).unwrap();
    assert!(journal.in_flight.is_empty(), "{:?}", journal.in_flight);
    (runtime, deploy, second.heartbeats())
}

#[tokio::test(start_paused = true)]
async fn deploy_killed_after_its_container_started_is_finished_by_the_next_daemon() {
    let (runtime, deploy, heartbeats) =
        deploy_interrupted_at(DeployStage::HealthCheck, false).await;

    assert_eq!(
        runtime.count(FakeOp::CreateAndStart),
        1,
        "no second container"
    );
    assert_eq!(runtime.containers().len(), 1);
    let acks: Vec<_> = heartbeats
        .iter()
        .flat_map(|h| h.command_acks.iter())
        .filter(|ack| ack.id == deploy.id)
        .collect();
    assert!(!acks.is_empty());
    assert!(
        acks.iter().all(|ack| ack.status == AckStatus::Acked),
        "{acks:?}"
    );
    let last = heartbeats.last().unwrap();
    assert_eq!(last.agent_statuses[0].status, RuntimeStatus::Running);
}

#[tokio::test(start_paused = true)]
async fn deploy_killed_while_creating_is_started_by_the_next_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    let first = Arc::new(FakeServer::default());
    first.script(Ok(response(vec![deploy.clone()], Vec::new())));
    let mut halting = config(dir.path());
    halting.halt_after_stage = Some(DeployStage::HealthCheck);
    run_with(halting, runtime.clone(), first, Arc::new(Probe(true)), 4)
        .await
        .unwrap();
    // As if the engine had created the container but the daemon died before starting it.
    runtime.set_state(
        deploy.agent_id,
        sparebox_runtime::ContainerState::Created,
        false,
    );

    let second = Arc::new(FakeServer::default());
    run_until(
        dir.path(),
        runtime.clone(),
        second.clone(),
        Arc::new(Probe(true)),
        4,
    )
    .await
    .unwrap();

    assert_eq!(runtime.count(FakeOp::CreateAndStart), 1);
    assert_eq!(runtime.count(FakeOp::Start), 1);
    let last = second.heartbeats().pop().unwrap();
    assert_eq!(last.command_acks[0].id, deploy.id);
    assert_eq!(last.command_acks[0].status, AckStatus::Acked);
}

#[tokio::test(start_paused = true)]
async fn deploy_killed_before_its_container_existed_is_run_again_from_the_start() {
    for stage in [
        DeployStage::FetchingConfig,
        DeployStage::Pulling,
        DeployStage::Creating,
        DeployStage::Starting,
    ] {
        let (runtime, deploy, heartbeats) = deploy_interrupted_at(stage, true).await;

        assert_eq!(
            runtime.count(FakeOp::CreateAndStart),
            1,
            "killed at {stage}: one container"
        );
        assert_eq!(runtime.containers().len(), 1, "killed at {stage}");
        let acks: Vec<_> = heartbeats
            .iter()
            .flat_map(|h| h.command_acks.iter())
            .filter(|ack| ack.id == deploy.id)
            .collect();
        assert!(!acks.is_empty(), "killed at {stage}: acked");
        assert!(
            acks.iter().all(|ack| ack.status == AckStatus::Acked),
            "killed at {stage}: {acks:?}"
        );
        let last = heartbeats.last().unwrap();
        assert_eq!(last.agent_statuses[0].status, RuntimeStatus::Running);
    }
}

#[tokio::test(start_paused = true)]
async fn deploy_killed_before_its_container_existed_fails_when_the_server_no_longer_offers_it() {
    let (runtime, deploy, heartbeats) = deploy_interrupted_at(DeployStage::Creating, false).await;

    assert_eq!(runtime.count(FakeOp::CreateAndStart), 0);
    let ack = &heartbeats.last().unwrap().command_acks[0];
    assert_eq!((ack.id, ack.status), (deploy.id, AckStatus::Failed));
    let error = ack.error.as_deref().unwrap();
    assert!(
        error.contains("creating: interrupted by a daemon restart")
            && error.contains("did not send the command again"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_interrupted_by_a_restart_runs_again_and_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let agent = AgentId::new_random();
    runtime.insert_container(FakeRuntime::running_container(agent, "c".into(), "img"));
    let stop = command(CommandKind::Stop, agent);
    let mut journal = Journal::load(&dir.path().join("journal.json")).unwrap();
    journal
        .in_flight
        .push(crate::journal::InFlightCommand::new(&stop));
    journal.save(&dir.path().join("journal.json")).unwrap();

    let server = Arc::new(FakeServer::default());
    run_until(
        dir.path(),
        runtime.clone(),
        server.clone(),
        Arc::new(Probe(true)),
        3,
    )
    .await
    .unwrap();

    assert_eq!(runtime.count(FakeOp::Stop), 1);
    let last = server.heartbeats().pop().unwrap();
    assert_eq!(last.command_acks[0].id, stop.id);
}

#[tokio::test(start_paused = true)]
async fn engine_events_are_carried_until_a_heartbeat_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let agent = AgentId::new_random();
    server.script(Ok(response(Vec::new(), Vec::new())));
    server.script(Err(ClientError::Network("connection reset".into())));
    let emitter = runtime.clone();
    let watcher = server.clone();
    tokio::spawn(async move {
        while watcher.heartbeats().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        emitter.emit(sparebox_runtime::RuntimeEvent {
            agent,
            kind: sparebox_runtime::RuntimeEventKind::Died {
                exit_code: Some(137),
                oom_killed: true,
            },
            at: chrono::Utc::now(),
        });
    });

    run_until(
        dir.path(),
        runtime,
        server.clone(),
        Arc::new(Probe(true)),
        5,
    )
    .await
    .unwrap();

    let carried: Vec<usize> = server
        .heartbeats()
        .iter()
        .map(|h| h.agent_events.len())
        .collect();
    // Sent with the failed heartbeat, again with the next one, then forgotten.
    assert_eq!(carried[1..], [1, 1, 0, 0], "{carried:?}");
    let event = &server.heartbeats()[1].agent_events[0];
    assert_eq!(event.agent_id, agent);
    assert_eq!(event.kind, sparebox_protocol::AgentEventKind::OomKilled);
    assert_eq!(event.exit_code, Some(137));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_carries_the_slot_table_minus_running_agents() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    server.script(Ok(response(
        vec![command(CommandKind::Deploy, AgentId::new_random())],
        Vec::new(),
    )));

    run_until(
        dir.path(),
        runtime,
        server.clone(),
        Arc::new(Probe(true)),
        4,
    )
    .await
    .unwrap();

    let heartbeats = server.heartbeats();
    let before = heartbeats[0].slots.clone().expect("a slot table");
    let after = heartbeats.last().unwrap().slots.clone().unwrap();
    let hardware = &heartbeats[0].hardware;
    let plan = sparebox_core::SlotPlan::new(
        sparebox_core::Hardware::new(
            hardware.ram_mb,
            u64::from(hardware.cpu_cores) * 1000,
            hardware.disk_gb,
        ),
        sparebox_core::HostPolicy::all_tiers(),
        [],
    );
    if let Ok(plan) = plan {
        assert_eq!(
            before.get(&sparebox_core::Tier::Lite),
            Some(&plan.slots(sparebox_core::Tier::Lite))
        );
    }
    let standard = sparebox_core::Tier::Standard;
    assert!(
        after[&standard] < before[&standard] || before[&standard] == 0,
        "{before:?} -> {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn daemon_goes_back_to_long_polling_as_soon_as_its_acks_are_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let deploy = command(CommandKind::Deploy, AgentId::new_random());
    server.script(Ok(response(vec![deploy.clone()], Vec::new())));
    server.script(Ok(response(Vec::new(), vec![deploy.id])));

    let started = tokio::time::Instant::now();
    run_until(
        dir.path(),
        runtime,
        server.clone(),
        Arc::new(Probe(true)),
        3,
    )
    .await
    .unwrap();

    // The deploy arrives on a long poll, the ack goes out on a quick heartbeat, and once
    // the server confirms it the daemon long-polls again at once, not a whole
    // interval (60 s) later, so the deployer's next command reaches it without delay.
    let heartbeats = server.heartbeats();
    assert_eq!(heartbeats[1].command_acks.len(), 1);
    assert_eq!(heartbeats[1].wait_seconds, None);
    assert!(heartbeats[2].command_acks.is_empty());
    assert!(heartbeats[2].wait_seconds.is_some_and(|s| s > 0));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_daemon_without_long_polls_heartbeats_once_an_interval() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let mut config = crate::testing::config(dir.path());
    config.long_poll = Duration::ZERO;

    let started = tokio::time::Instant::now();
    run_with(config, runtime, server.clone(), Arc::new(Probe(true)), 3)
        .await
        .unwrap();

    assert!(server.heartbeats().iter().all(|h| h.wait_seconds.is_none()));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(120), "{elapsed:?}");
}
