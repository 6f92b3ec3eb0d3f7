//! Backup and restore against a real Docker engine: a real server on SQLite, two real host
//! daemons, real containers. An agent's state is backed up on one host, the agent is
//! undeployed, and the backup is restored into an agent on the other host; the files must
//! come back byte for byte. Needs a running engine and the local agent image
//! (`scripts/ensure-docker.sh`, `scripts/build-agent-image.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{containers_of, port_range_start, Api, Cleanup, TestServer};
use serde_json::{json, Value};
use sparebox_core::Secret;
use sparebox_hostd::{DaemonConfig, HostDaemon};
use sparebox_runtime::docker::DockerRuntime;
use tokio::sync::oneshot;

/// Files as OpenClaw leaves them in its state directory (sessions, memory, workspace),
/// relative to that directory.
fn openclaw_state() -> Vec<(&'static str, Vec<u8>)> {
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.extend((0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    vec![
        (
            "agents/main/sessions/2026-12-03T10-00-00.jsonl",
            b"{\"role\":\"user\",\"content\":\"hello\"}\n{\"role\":\"assistant\",\"content\":\"hi\"}\n"
                .to_vec(),
        ),
        ("agents/main/sessions/sessions.json", b"{\"main\":{}}".to_vec()),
        ("memory/main.sqlite", sqlite),
        ("workspace/MEMORY.md", b"- the user likes tea\n".to_vec()),
        ("workspace/memory/2026-12-03.md", b"# today\nbacked up\n".to_vec()),
    ]
}

struct Host {
    id: String,
    data_dir: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), sparebox_hostd::DaemonError>>,
}

impl Host {
    /// A daemon on the engine at `socket` (Docker's default when `None`).
    async fn start(api: &Api, base: &str, dir: &Path, socket: Option<&str>) -> Self {
        let (id, key) = api.host().await;
        let mut config = DaemonConfig::new(base, Secret::new(key), dir.to_owned());
        config.port_range_start = port_range_start();
        config.heartbeat_interval = Duration::from_secs(1);
        config.stop_grace = Duration::from_secs(2);
        config.orphan_grace = Duration::from_secs(3);
        let data_dir = config.agents_dir();
        let runtime = DockerRuntime::connect(socket)
            .await
            .expect("a running container engine: run scripts/ensure-docker.sh");
        let daemon = HostDaemon::new(config, Arc::new(runtime), reqwest::Client::new()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async {
            let _ = stopped.await;
        }));
        Self {
            id,
            data_dir,
            stop,
            task,
        }
    }

    fn state_dir(&self, agent: &str) -> PathBuf {
        self.data_dir.join(agent).join("state")
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn wait_hosts_online(api: &Api, count: usize) {
    api.poll("hosts online", Duration::from_secs(30), || async {
        let hosts = api.send(reqwest::Method::GET, "/api/v1/hosts", None).await;
        let online = hosts.as_array().unwrap().iter();
        online.filter(|h| h["online"] == true).count() == count
    })
    .await;
}

async fn create_agent(api: &Api, host: &str) -> String {
    let agent = api.agent(host).await;
    api.wait_command(&agent, "deploy", "acked").await;
    api.poll("agent running", Duration::from_secs(60), || async {
        api.view(&agent).await["state"] == "running"
    })
    .await;
    agent
}

/// Posts to `path` and waits for the queued command to reach `acked`; returns the
/// command's id and how long that took.
async fn run_command(api: &Api, agent: &str, path: &str, body: Value) -> (String, Duration) {
    let started = Instant::now();
    let queued = api.send(reqwest::Method::POST, path, Some(body)).await;
    let id = queued["id"].as_str().unwrap().to_owned();
    api.poll(
        &format!("command {} acked", queued["type"]),
        Duration::from_secs(120),
        || async {
            let commands = api.commands(agent).await;
            let command = commands.iter().find(|c| c["id"] == id.as_str()).unwrap();
            assert_ne!(command["status"], "failed", "{command}");
            command["status"] == "acked"
        },
    )
    .await;
    (id, started.elapsed())
}

fn plant(state: &Path, files: &[(&str, Vec<u8>)]) {
    for (path, content) in files {
        let target = state.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_undeploy_then_restore_on_another_host_brings_back_every_file() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let host_a = Host::start(&api, &server.base(), &dir.path().join("a"), None).await;
    let host_b = Host::start(&api, &server.base(), &dir.path().join("b"), None).await;
    wait_hosts_online(&api, 2).await;

    let first = create_agent(&api, &host_a.id).await;
    cleanup.agent(&first);
    let state_a = host_a.state_dir(&first);
    let files = openclaw_state();
    plant(&state_a, &files);
    let soul = std::fs::read(state_a.join("workspace/SOUL.md")).unwrap();

    let (backup, took) = run_command(
        &api,
        &first,
        &format!("/api/v1/agents/{first}/backups"),
        json!({}),
    )
    .await;
    eprintln!("backup (request to ack): {took:?}");
    let list = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/agents/{first}/backups"),
            None,
        )
        .await;
    assert_eq!(list["backups"][0]["id"], backup.as_str(), "{list}");
    eprintln!("backup size: {} bytes", list["backups"][0]["sizeBytes"]);
    assert_eq!(api.events_of_kind(&first, "backed_up").await, 1);

    let started = Instant::now();
    api.command(&first, "undeploy").await;
    api.wait_command(&first, "undeploy", "acked").await;
    eprintln!("undeploy: {:?}", started.elapsed());
    assert!(containers_of(&first).is_empty());
    assert!(!state_a.exists(), "undeploy left the state behind");

    let started = Instant::now();
    let second = create_agent(&api, &host_b.id).await;
    cleanup.agent(&second);
    eprintln!("deploy on the second host: {:?}", started.elapsed());
    let state_b = host_b.state_dir(&second);
    let own_config = std::fs::read(state_b.join("openclaw.json")).unwrap();
    std::fs::write(
        state_b.join("workspace/STALE.md"),
        "replaced by the restore",
    )
    .unwrap();

    let (_, took) = run_command(
        &api,
        &second,
        &format!("/api/v1/agents/{second}/restore"),
        json!({ "backupId": backup }),
    )
    .await;
    eprintln!("restore on the second host (request to healthy ack): {took:?}");

    for (path, content) in &files {
        let restored = std::fs::read(state_b.join(path)).unwrap();
        assert!(restored == *content, "{path} differs after the restore");
    }
    assert_eq!(
        std::fs::read(state_b.join("workspace/SOUL.md")).unwrap(),
        soul
    );
    assert!(!state_b.join("workspace/STALE.md").exists());
    assert_eq!(
        std::fs::read(state_b.join("openclaw.json")).unwrap(),
        own_config,
        "the platform's config of the second agent is kept"
    );
    assert_eq!(api.view(&second).await["state"], "running");
    assert_eq!(containers_of(&second).len(), 1);
    assert_eq!(api.events_of_kind(&second, "restored").await, 1);

    host_a.stop().await;
    host_b.stop().await;
}

/// Podman's Docker-compatible socket (`SPAREBOX_TEST_PODMAN_SOCKET`, by default
/// `/run/podman/podman.sock`, set up by `scripts/ensure-podman.sh`): the old host runs on
/// Podman and the new one on Docker, so the two hosts have engines of their own, as real
/// hosts do.
fn podman_socket() -> String {
    let path = std::env::var("SPAREBOX_TEST_PODMAN_SOCKET")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "/run/podman/podman.sock".to_owned());
    if path.contains("://") {
        path
    } else {
        format!("unix://{path}")
    }
}

/// Ids of the Podman containers labelled with `agent`'s id.
fn podman_containers_of(agent: &str) -> Vec<String> {
    let output = std::process::Command::new("podman")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sparebox.agent-id={agent}"),
        ])
        .output()
        .expect("the podman CLI");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes an agent's Podman containers when dropped.
struct PodmanCleanup(String);

impl Drop for PodmanCleanup {
    fn drop(&mut self) {
        for id in podman_containers_of(&self.0) {
            let _ = std::process::Command::new("podman")
                .args(["rm", "-f", &id])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_hosts_agent_ends_running_on_another_host_with_its_files() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let podman = podman_socket();
    let old = Host::start(&api, &server.base(), &dir.path().join("old"), Some(&podman)).await;
    let new = Host::start(&api, &server.base(), &dir.path().join("new"), None).await;
    wait_hosts_online(&api, 2).await;

    let agent = create_agent(&api, &old.id).await;
    cleanup.agent(&agent);
    let _podman = PodmanCleanup(agent.clone());
    assert_eq!(podman_containers_of(&agent).len(), 1);
    let old_state = old.state_dir(&agent);
    let files = openclaw_state();
    plant(&old_state, &files);

    let started = Instant::now();
    let drained = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/hosts/{}/drain", old.id),
            None,
        )
        .await;
    assert_eq!(drained["moves"][0]["agent"], agent.as_str(), "{drained}");
    api.poll("the move to finish", Duration::from_secs(180), || async {
        assert_eq!(api.events_of_kind(&agent, "move_failed").await, 0);
        api.events_of_kind(&agent, "moved").await == 1
    })
    .await;
    eprintln!(
        "drain: move with backup, deploy and restore: {:?}",
        started.elapsed()
    );

    let view = api.view(&agent).await;
    assert_eq!(view["hostId"], new.id.as_str(), "{view}");
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(containers_of(&agent).len(), 1, "runs on the new host");
    let new_state = new.state_dir(&agent);
    for (path, content) in &files {
        let moved = std::fs::read(new_state.join(path)).unwrap();
        assert!(moved == *content, "{path} differs after the move");
    }

    let started = Instant::now();
    api.poll(
        "the old copy to be removed",
        Duration::from_secs(150),
        || async { podman_containers_of(&agent).is_empty() && !old_state.exists() },
    )
    .await;
    eprintln!(
        "old copy removed by reconciliation: {:?}",
        started.elapsed()
    );

    old.stop().await;
    new.stop().await;
}
