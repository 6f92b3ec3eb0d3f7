//! The Docker engine restarts under a running daemon: agents come back as their deployers
//! left them and the daemon keeps reporting. It stops the engine every other test shares,
//! so it only runs when asked: `scripts/test-engine-restart.sh` (as root, nothing else
//! using the engine).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{containers_of, port_range_start, Api, Cleanup, TestServer};
use sparebox_core::Secret;
use sparebox_hostd::{DaemonConfig, HostDaemon};
use sparebox_runtime::docker::DockerRuntime;

/// Stops the engine by the pid it recorded and starts it again with the repository's
/// script, which waits until it answers.
fn restart_engine() {
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("dockerd's pid file");
    let pid = pid.trim().to_owned();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "could not stop dockerd {pid}");
    let proc = format!("/proc/{pid}");
    for _ in 0..120 {
        if !std::path::Path::new(&proc).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-docker.sh");
    let started = std::process::Command::new("bash")
        .arg(script)
        .status()
        .unwrap();
    assert!(started.success(), "ensure-docker.sh failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the Docker engine; run alone with scripts/test-engine-restart.sh"]
async fn agents_come_back_as_left_after_an_engine_restart() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (host, key) = api.host().await;
    let mut config = DaemonConfig::new(
        server.base(),
        Secret::new(key.as_str()),
        dir.path().join("hostd"),
    );
    config.port_range_start = port_range_start();
    config.heartbeat_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    config.max_backoff = Duration::from_secs(4);
    let runtime = DockerRuntime::connect(None)
        .await
        .expect("a running engine");
    let daemon = HostDaemon::new(config, Arc::new(runtime), reqwest::Client::new()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));
    api.wait_online().await;
    let running = api.agent(&host).await;
    let stopped_agent = api.agent(&host).await;
    cleanup.agent(&running);
    cleanup.agent(&stopped_agent);
    api.wait_command(&running, "deploy", "acked").await;
    api.wait_command(&stopped_agent, "deploy", "acked").await;
    api.command(&stopped_agent, "stop").await;
    api.wait_command(&stopped_agent, "stop", "acked").await;

    tokio::task::spawn_blocking(restart_engine).await.unwrap();

    let state = |agent: String| {
        let api = &api;
        async move { api.view(&agent).await["state"].clone() }
    };
    api.poll("running agent back", Duration::from_secs(90), || async {
        state(running.clone()).await == "running"
    })
    .await;
    // A few more heartbeats, so a wrong report would have arrived.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(state(running.clone()).await, "running");
    assert_eq!(state(stopped_agent.clone()).await, "stopped");
    assert_eq!(containers_of(&running).len(), 1);
    assert_eq!(containers_of(&stopped_agent).len(), 1);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
