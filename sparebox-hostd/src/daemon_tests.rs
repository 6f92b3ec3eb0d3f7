use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sparebox_core::{AgentId, CommandKind, DeployStage};
use sparebox_protocol::{AckStatus, HeartbeatRequest, RuntimeStatus};
use sparebox_runtime::fake::{FakeOp, FakeRuntime};

use super::{DaemonError, HostDaemon};
use crate::client::ClientError;
use crate::health::HealthProbe;
use crate::journal::Journal;
use crate::testing::{command, config, response, FakeServer, Probe};

/// Runs a daemon over `server` until the server has seen `heartbeats` heartbeats.
async fn run_until(
    dir: &std::path::Path,
    runtime: Arc<FakeRuntime>,
    server: Arc<FakeServer>,
    health: Arc<dyn HealthProbe>,
    heartbeats: usize,
) -> Result<(), DaemonError> {
    let daemon = HostDaemon::with_parts(config(dir), runtime, server.clone(), health).unwrap();
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
    assert_eq!(heartbeats[0].agent_statuses[0].gateway_port, Some(41000));
}
