//! The whole loop against a real Docker engine: a real server on SQLite, a real host
//! daemon, a real container. Needs a running engine and the local agent image
//! (`scripts/ensure-docker.sh` and `scripts/build-agent-image.sh`).

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use serde_json::{json, Value};
use sparebox_core::Secret;
use sparebox_hostd::{DaemonConfig, HostDaemon};
use sparebox_runtime::docker::DockerRuntime;
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;

const IMAGE: &str = "sparebox-agent-test:local";
const GIB: i64 = 1024 * 1024 * 1024;

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("server reachable");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn agent(&self, id: &str) -> Value {
        self.send(reqwest::Method::GET, &format!("/api/v1/agents/{id}"), None)
            .await
    }

    async fn command(&self, id: &str, kind: &str) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/agents/{id}/commands"),
            Some(json!({ "type": kind })),
        )
        .await;
    }

    /// Polls the agent until `done` holds, failing with the last view after `limit`.
    async fn wait_for(
        &self,
        id: &str,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self.agent(id).await;
            if done(&view) {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent never became {what}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn start_server(dir: &std::path::Path) -> String {
    let store = SqliteStore::open(dir.join("server.db")).await.unwrap();
    let platform = Platform::new(
        Arc::new(store),
        PlatformConfig {
            agent_image: IMAGE.into(),
            heartbeat_interval: Duration::from_secs(1),
            ..PlatformConfig::default()
        },
        Keyring::new(EncryptionKey::generate()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sparebox_server::http::serve(
        listener,
        platform,
        std::future::pending(),
    ));
    base
}

/// A port range start no other test is likely to use.
fn port_range_start() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    port.clamp(20_000, 60_000)
}

async fn container_of(
    docker: &Docker,
    agent: &str,
) -> Option<bollard::models::ContainerInspectResponse> {
    let name = sparebox_runtime::agent_container_name(agent.parse().unwrap());
    docker
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_agent_runs_in_a_real_container_through_its_whole_life() {
    let dir = tempfile::tempdir().unwrap();
    let base = start_server(dir.path()).await;
    let client = reqwest::Client::new();
    let account: Value = client
        .post(format!("{base}/api/v1/users"))
        .json(&json!({
            "email": "e2e@example.com",
            "password": "correct horse battery staple",
            "roles": ["host_owner", "deployer"]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = Api {
        base: base.clone(),
        token: account["apiToken"].as_str().unwrap().to_owned(),
        client: client.clone(),
    };
    let host = api
        .send(
            reqwest::Method::POST,
            "/api/v1/hosts",
            Some(json!({ "name": "e2e host" })),
        )
        .await;
    let host_id = host["host"]["id"].as_str().unwrap().to_owned();

    let runtime = DockerRuntime::connect(None)
        .await
        .expect("a running Docker engine: run scripts/ensure-docker.sh");
    let mut config = DaemonConfig::new(
        base.clone(),
        Secret::new(host["hostKey"].as_str().unwrap()),
        dir.path().join("hostd"),
    );
    config.port_range_start = port_range_start();
    config.heartbeat_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    let data_dir = config.data_dir.clone();
    let daemon = HostDaemon::new(config, Arc::new(runtime), client.clone()).unwrap();
    let (stop_daemon, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));

    // The host reports its hardware before it can take an agent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = api.send(reqwest::Method::GET, "/api/v1/hosts", None).await;
        if hosts[0]["online"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "host never came online: {hosts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let created = api
        .send(
            reqwest::Method::POST,
            "/api/v1/agents",
            Some(json!({
                "hostId": host_id, "tier": "standard", "name": "e2e agent",
                "openclawConfig": { "agents": { "defaults": {} } },
                "workspaceFiles": [{ "path": "SOUL.md", "content": "Be brief." }]
            })),
        )
        .await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let view = api
        .wait_for(
            &agent,
            "running with stats",
            Duration::from_secs(120),
            |v| v["state"] == "running" && v["metrics"]["ramUsageMb"].is_u64(),
        )
        .await;
    assert_eq!(view["metrics"]["ramLimitMb"], 2048, "{view}");
    assert!(view["metrics"]["cpuPercent"].is_number(), "{view}");
    assert!(view["metrics"]["uptimeSeconds"].is_u64(), "{view}");
    assert_eq!(view["metrics"]["restartCount"], 0);
    assert_eq!(view["isolationVerified"], true, "{view}");

    // The engine itself applied the tier's limits.
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let inspect = container_of(&docker, &agent)
        .await
        .expect("the agent's container");
    let host_config = inspect.host_config.clone().unwrap();
    assert_eq!(host_config.memory, Some(2 * GIB));
    assert_eq!(host_config.memory_swap, Some(2 * GIB));
    assert_eq!(host_config.nano_cpus, Some(1_000_000_000));
    assert_eq!(inspect.state.as_ref().unwrap().running, Some(true));
    let agent_dir = data_dir.join("agents").join(&agent);
    assert!(agent_dir.join("state/workspace/SOUL.md").is_file());

    api.command(&agent, "stop").await;
    api.wait_for(&agent, "stopped", Duration::from_secs(60), |v| {
        v["state"] == "stopped"
    })
    .await;
    let inspect = container_of(&docker, &agent).await.unwrap();
    assert_eq!(inspect.state.as_ref().unwrap().running, Some(false));

    api.command(&agent, "start").await;
    api.wait_for(&agent, "running again", Duration::from_secs(60), |v| {
        v["state"] == "running"
    })
    .await;
    let before = container_of(&docker, &agent)
        .await
        .unwrap()
        .state
        .unwrap()
        .started_at;

    api.command(&agent, "restart").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let commands = api
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/agents/{agent}/commands"),
                None,
            )
            .await;
        if commands[0]["type"] == "restart" && commands[0]["status"] == "acked" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "restart never acked: {commands}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let state = container_of(&docker, &agent).await.unwrap().state.unwrap();
    assert_eq!(state.running, Some(true));
    assert_ne!(state.started_at, before, "restart gives a new start time");
    assert_eq!(api.agent(&agent).await["state"], "running");

    // A new workspace file reaches the host and the agent comes back running.
    api.send(
        reqwest::Method::PUT,
        &format!("/api/v1/agents/{agent}/config"),
        Some(json!({ "workspaceFiles": [{ "path": "SOUL.md", "content": "Be thorough." }] })),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let commands = api
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/agents/{agent}/commands"),
                None,
            )
            .await;
        if commands[0]["type"] == "update_config" && commands[0]["status"] == "acked" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "update never acked: {commands}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        std::fs::read_to_string(agent_dir.join("state/workspace/SOUL.md")).unwrap(),
        "Be thorough."
    );
    assert_eq!(api.agent(&agent).await["state"], "running");

    api.command(&agent, "undeploy").await;
    api.wait_for(&agent, "undeployed", Duration::from_secs(60), |v| {
        v["state"] == "undeployed"
    })
    .await;
    assert!(
        container_of(&docker, &agent).await.is_none(),
        "container removed"
    );
    assert!(!agent_dir.exists(), "host directories removed");

    let commands = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/agents/{agent}/commands"),
            None,
        )
        .await;
    let kinds: Vec<_> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].clone(), c["status"].clone()))
        .collect();
    assert_eq!(kinds.len(), 6, "{commands}");
    assert!(
        kinds.iter().all(|(_, status)| status == "acked"),
        "every command acked: {commands}"
    );

    let _ = stop_daemon.send(());
    daemon.await.unwrap().unwrap();
}
