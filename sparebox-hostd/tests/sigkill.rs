//! The real `sparebox-hostd` binary killed with SIGKILL at each step of a deploy, then
//! started again on the same data directory, against a real server and the real Docker
//! engine: every time the deploy ends acked once, with exactly one container and one
//! `deployed` event. Needs a running engine and the local agent image
//! (`scripts/ensure-docker.sh`, `scripts/build-agent-image.sh`).
//!
//! The binary's hidden `--halt-after-stage` flag makes the first daemon stop making
//! progress right after it durably records a stage, so the kill lands exactly there; the
//! kill itself is a real SIGKILL of the process, with no chance to flush or clean up.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{containers_of, port_range_start, Api, Cleanup, TestServer};
use sparebox_core::DeployStage;
use sparebox_hostd::journal::Journal;
use tokio::process::{Child, Command};

/// Starts the daemon binary against `base`; `halt` makes its deploys stop after a stage.
fn spawn_hostd(base: &str, key: &str, dir: &Path, ports: u16, halt: Option<DeployStage>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sparebox-hostd"));
    command
        .current_dir("/")
        .args(["run", "--runtime", "docker", "--heartbeat-interval", "1"])
        .arg("--server")
        .arg(base)
        .arg("--config")
        .arg(dir.join("hostd.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--port-range-start")
        .arg(ports.to_string())
        .env("SPAREBOX_HOST_KEY", key)
        .env("RUST_LOG", "sparebox_hostd=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(stage) = halt {
        command.arg("--halt-after-stage").arg(stage.as_str());
    }
    command.spawn().expect("the sparebox-hostd binary starts")
}

/// The stage the journal records for the daemon's only in-flight command.
fn recorded_stage(dir: &Path) -> Option<DeployStage> {
    let journal = Journal::load(&dir.join("data").join("journal.json")).ok()?;
    journal.in_flight.first().and_then(|c| c.stage)
}

/// One deploy whose daemon is SIGKILLed right after recording `stage`, then restarted.
async fn kill_deploy_at(stage: DeployStage) {
    let started = std::time::Instant::now();
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (host, key) = api.host().await;
    let ports = port_range_start();

    let mut first = spawn_hostd(&server.base(), &key, dir.path(), ports, Some(stage));
    api.wait_online().await;
    let agent = api.agent(&host).await;
    cleanup.agent(&agent);
    api.poll(
        &format!("the deploy to reach {stage}"),
        Duration::from_secs(90),
        || async { recorded_stage(dir.path()) == Some(stage) },
    )
    .await;
    first.start_kill().expect("SIGKILL the daemon");
    let status = first.wait().await.unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    let containers_at_kill = containers_of(&agent).len();

    let mut second = spawn_hostd(&server.base(), &key, dir.path(), ports, None);
    api.wait_command(&agent, "deploy", "acked").await;
    api.poll("the agent running", Duration::from_secs(60), || async {
        api.view(&agent).await["state"] == "running"
    })
    .await;

    assert_eq!(
        containers_of(&agent).len(),
        1,
        "killed at {stage} (with {containers_at_kill} containers): exactly one container afterwards"
    );
    let commands = api.commands(&agent).await;
    assert_eq!(
        commands.len(),
        1,
        "no second deploy was needed: {commands:?}"
    );
    assert_eq!(
        api.events_of_kind(&agent, "deployed").await,
        1,
        "killed at {stage}: deployed once"
    );
    let journal = Journal::load(&dir.path().join("data").join("journal.json")).unwrap();
    assert!(journal.in_flight.is_empty(), "{:?}", journal.in_flight);
    second.start_kill().unwrap();
    let _ = second.wait().await;
    eprintln!(
        "killed at {stage}: recovered and acked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_fetching_the_bundle() {
    kill_deploy_at(DeployStage::FetchingConfig).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_pulling() {
    kill_deploy_at(DeployStage::Pulling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_creating() {
    kill_deploy_at(DeployStage::Creating).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_starting() {
    kill_deploy_at(DeployStage::Starting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_health_check() {
    kill_deploy_at(DeployStage::HealthCheck).await;
}
