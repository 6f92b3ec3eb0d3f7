//! The daemon against a real server and a real Docker engine when things go wrong: a
//! command delivered twice, the server gone for a while (a daemon killed in the middle of a
//! deploy is in `sigkill.rs`). Needs a running engine and the local agent image
//! (`scripts/ensure-docker.sh`, `scripts/build-agent-image.sh`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{containers_of, port_range_start, Api, Cleanup, TestServer};
use sparebox_core::{AgentId, CommandId, CommandKind, Secret};
use sparebox_hostd::journal::Journal;
use sparebox_hostd::{
    ClientError, DaemonConfig, HostDaemon, HttpHealthProbe, HttpServerApi, ServerApi,
};
use sparebox_protocol::{Command, DeployBundle, HeartbeatRequest, HeartbeatResponse};
use sparebox_runtime::docker::DockerRuntime;
use tokio::sync::{oneshot, Notify};

/// The real HTTP client, recording what goes through it; it can deliver every command it
/// has seen again with each answer, and tell when a command of some kind arrives.
struct Recording {
    inner: HttpServerApi,
    redeliver: bool,
    seen: Mutex<Vec<Command>>,
    requests: Mutex<Vec<HeartbeatRequest>>,
    failures: AtomicUsize,
    watch: Mutex<Option<CommandKind>>,
    arrived: Notify,
}

impl Recording {
    fn new(base: &str, key: &str, redeliver: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: HttpServerApi::new(
                reqwest::Client::new(),
                base,
                Secret::new(key),
                Duration::from_secs(10),
            ),
            redeliver,
            seen: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            failures: AtomicUsize::new(0),
            watch: Mutex::new(None),
            arrived: Notify::new(),
        })
    }

    /// Heartbeats that carried an ack for `id`.
    fn acks_sent(&self, id: CommandId) -> usize {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.command_acks.iter().any(|a| a.id == id))
            .count()
    }
}

#[async_trait]
impl ServerApi for Recording {
    async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.requests.lock().unwrap().push(request.clone());
        let mut response = match self.inner.heartbeat(request).await {
            Ok(response) => response,
            Err(err) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(err);
            }
        };
        let watched = *self.watch.lock().unwrap();
        if response.commands.iter().any(|c| Some(c.kind) == watched) {
            self.arrived.notify_one();
        }
        let mut seen = self.seen.lock().unwrap();
        let earlier: Vec<Command> = seen
            .iter()
            .filter(|old| !response.commands.iter().any(|c| c.id == old.id))
            .cloned()
            .collect();
        seen.extend(response.commands.iter().cloned());
        if self.redeliver {
            response.commands.extend(earlier);
        }
        Ok(response)
    }

    async fn deploy_bundle(
        &self,
        agent: AgentId,
        command: CommandId,
    ) -> Result<DeployBundle, ClientError> {
        self.inner.deploy_bundle(agent, command).await
    }

    async fn command(&self, command: CommandId) -> Result<Command, ClientError> {
        self.inner.command(command).await
    }
}

fn config(base: &str, key: &str, data_dir: &Path) -> DaemonConfig {
    let mut config = DaemonConfig::new(base, Secret::new(key), data_dir.to_owned());
    config.port_range_start = port_range_start();
    config.heartbeat_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    config.max_backoff = Duration::from_secs(4);
    config
}

/// A daemon running in the background until its sender is used or dropped.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), sparebox_hostd::DaemonError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn spawn_daemon(config: DaemonConfig, server: Arc<dyn ServerApi>) -> Running {
    let runtime = DockerRuntime::connect(None)
        .await
        .expect("a running Docker engine: run scripts/ensure-docker.sh");
    let health = HttpHealthProbe::new(reqwest::Client::new(), Duration::from_secs(5));
    let daemon =
        HostDaemon::with_parts(config, Arc::new(runtime), server, Arc::new(health)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

fn command_id(command: &serde_json::Value) -> CommandId {
    command["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_deploy_is_acked_again_and_leaves_exactly_one_container() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (host, key) = api.host().await;
    let recording = Recording::new(&server.base(), &key, true);
    let daemon = spawn_daemon(
        config(&server.base(), &key, &dir.path().join("hostd")),
        recording.clone(),
    )
    .await;
    api.wait_online().await;

    let agent = api.agent(&host).await;
    cleanup.agent(&agent);
    api.wait_command(&agent, "deploy", "acked").await;
    let first = containers_of(&agent);
    let deploy = command_id(&api.commands(&agent).await[0]);
    // Every later answer delivers the deploy again.
    api.poll("the ack sent again", Duration::from_secs(30), || async {
        recording.acks_sent(deploy) >= 3
    })
    .await;

    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        containers_of(&agent),
        first,
        "no second container, none replaced"
    );
    assert_eq!(api.events_of_kind(&agent, "deployed").await, 1);
    assert_eq!(api.view(&agent).await["state"], "running");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outage_is_ridden_out_and_the_ack_arrives_once() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (host, key) = api.host().await;
    let recording = Recording::new(&server.base(), &key, false);
    let daemon = spawn_daemon(
        config(&server.base(), &key, &dir.path().join("hostd")),
        recording.clone(),
    )
    .await;
    api.wait_online().await;
    let agent = api.agent(&host).await;
    cleanup.agent(&agent);
    api.wait_command(&agent, "deploy", "acked").await;

    // The server goes away right after handing out the stop.
    *recording.watch.lock().unwrap() = Some(CommandKind::Stop);
    api.command(&agent, "stop").await;
    recording.arrived.notified().await;
    server.stop().await;
    api.poll("heartbeats failing", Duration::from_secs(30), || async {
        recording.failures.load(Ordering::SeqCst) >= 3
    })
    .await;
    let stop = command_id(&api_commands_offline(&recording));
    assert!(
        recording.acks_sent(stop) >= 1,
        "the ack was tried while away"
    );
    server.restart().await;

    api.wait_command(&agent, "stop", "acked").await;
    api.poll("agent stopped", Duration::from_secs(30), || async {
        api.view(&agent).await["state"] == "stopped"
    })
    .await;
    assert_eq!(api.events_of_kind(&agent, "stopped").await, 1);
    let journal = Journal::load(&dir.path().join("hostd/journal.json")).unwrap();
    api.poll("ack confirmed", Duration::from_secs(10), || async {
        Journal::load(&dir.path().join("hostd/journal.json"))
            .unwrap()
            .pending_acks
            .is_empty()
    })
    .await;
    assert!(journal.in_flight.is_empty());
    assert_eq!(containers_of(&agent).len(), 1);
    daemon.stop().await;
}

/// The stop command as the daemon received it (the API is down when this is needed).
fn api_commands_offline(recording: &Recording) -> serde_json::Value {
    let seen = recording.seen.lock().unwrap();
    let stop = seen.iter().find(|c| c.kind == CommandKind::Stop).unwrap();
    serde_json::json!({ "id": stop.id.to_string() })
}
