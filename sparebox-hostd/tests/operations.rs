//! Agent operations against a real Docker engine: a deployer reads their agent's logs
//! (secrets redacted, size capped, nobody else may read them), and an admin rolls new
//! images out (an image that never becomes healthy is rolled back, a healthy one is kept).
//! Needs a running engine and the local test images (`scripts/ensure-docker.sh`,
//! `scripts/build-agent-image.sh` and `scripts/build-agent-image.sh --unhealthy`).
//!
//! Each operation's duration is printed (`eprintln!`) for the record; nothing asserts on
//! it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use common::{Api, Cleanup, IMAGE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sparebox_core::Secret;
use sparebox_hostd::{DaemonConfig, HostDaemon};
use sparebox_runtime::docker::DockerRuntime;
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;
use sparebox_store::{Role, Store};

/// An image whose `/healthz` answers `{"ok":false}`.
const UNHEALTHY_IMAGE: &str = "sparebox-agent-test:unhealthy";
/// The healthy test image under a second tag, made by the test.
const V2_IMAGE: &str = "sparebox-agent-test:v2";
/// A secret the test image prints at start (it prints its whole environment).
const CANARY: &str = "sk-ant-canary-7f3a9d2e41b8";

/// Sends a request as `token` (any bearer credential) and returns status and body.
async fn call(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = api
        .client
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("server reachable");
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A server on SQLite in `dir` whose hosts keep no disk back: the test must not depend on
/// how full the machine's disk is. Returns its base URL and its store.
async fn start_server(dir: &std::path::Path) -> (String, SqliteStore) {
    let store = SqliteStore::open(dir.join("server.db")).await.unwrap();
    let platform = Platform::new(
        Arc::new(store.clone()),
        PlatformConfig {
            agent_image: IMAGE.into(),
            heartbeat_interval: Duration::from_secs(1),
            reserve: sparebox_core::Reserve::new(512, 250, 0).unwrap(),
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
    (base, store)
}

/// Grants `api`'s account the admin role, as the reference binary's `--admin-email` does.
async fn make_admin(store: &SqliteStore, api: &Api) {
    let me = api.send(Method::GET, "/api/v1/users/me", None).await;
    let id = me["id"].as_str().expect("account id").parse().unwrap();
    let roles = [Role::Admin, Role::Deployer].into_iter().collect();
    store.set_account_roles(id, roles).await.unwrap();
}

async fn start_daemon(base: &str, key: &str, dir: &std::path::Path) {
    let runtime = DockerRuntime::connect(None)
        .await
        .expect("a running Docker engine: run scripts/ensure-docker.sh");
    let mut config = DaemonConfig::new(base, Secret::new(key), dir.join("hostd"));
    config.port_range_start = common::port_range_start();
    config.heartbeat_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    config.upgrade_health_timeout = Duration::from_secs(15);
    let daemon = HostDaemon::new(config, Arc::new(runtime), reqwest::Client::new()).unwrap();
    tokio::spawn(daemon.run(std::future::pending()));
}

/// Queues a `logs` command with `body` and waits for its text.
async fn read_logs(api: &Api, agent: &str, body: Value) -> Value {
    let command = api
        .send(
            Method::POST,
            &format!("/api/v1/agents/{agent}/logs"),
            Some(body),
        )
        .await;
    let path = format!(
        "/api/v1/agents/{agent}/logs/{}",
        command["id"].as_str().unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = api.send(Method::GET, &path, None).await;
        if view["status"] == "acked" {
            assert!(view["logs"].is_string(), "acked without logs: {view}");
            return view;
        }
        assert_ne!(view["status"], "failed", "logs failed: {view}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "logs never came: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest command of `kind` once it has left pending and sent.
async fn finished(api: &Api, agent: &str, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let newest = api
            .commands(agent)
            .await
            .into_iter()
            .find(|c| c["type"] == kind);
        if let Some(c) = newest.filter(|c| c["status"] == "acked" || c["status"] == "failed") {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind} never finished"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The image the agent's container runs and its gateway port, as the engine says.
async fn engine_view(docker: &Docker, agent: &str) -> (String, u16) {
    let name = sparebox_runtime::agent_container_name(agent.parse().unwrap());
    let container = docker
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("the agent's container exists");
    let image = container.config.unwrap().image.unwrap();
    let port = container.host_config.unwrap().port_bindings.unwrap()["18789/tcp"]
        .as_ref()
        .unwrap()[0]
        .host_port
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    (image, port)
}

async fn healthz(port: u16) -> Value {
    reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("the gateway answers")
        .json()
        .await
        .unwrap()
}

async fn rollout(api: &Api, image: &str) -> Value {
    api.send(
        Method::POST,
        "/api/v1/admin/rollouts",
        Some(json!({ "image": image, "percent": 100 })),
    )
    .await
}

async fn event_messages(api: &Api, agent: &str, kind: &str) -> Vec<String> {
    let events = api
        .send(Method::GET, &format!("/api/v1/agents/{agent}/events"), None)
        .await;
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_redacted_and_private_and_upgrades_keep_only_healthy_images() {
    let cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let (base, store) = start_server(dir.path()).await;
    let owner = Api::sign_up(&base).await;
    let deployer = Api::sign_up(&base).await;
    let admin = Api::sign_up(&base).await;
    make_admin(&store, &admin).await;
    let (host, key) = owner.host().await;
    start_daemon(&base, &key, dir.path()).await;
    owner.wait_online().await;

    let started = Instant::now();
    let created = deployer
        .send(
            Method::POST,
            "/api/v1/agents",
            Some(json!({
                "hostId": host, "tier": "lite", "name": "operations agent",
                "openclawConfig": { "agents": { "defaults": {} } },
                "secrets": { "ANTHROPIC_API_KEY": CANARY }
            })),
        )
        .await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    cleanup.agent(&agent);
    deployer.wait_command(&agent, "deploy", "acked").await;
    eprintln!("timing: deploy to healthy: {:?}", started.elapsed());

    // Logs: the canary and the gateway token are replaced, the rest is there.
    let started = Instant::now();
    let view = read_logs(&deployer, &agent, json!({ "tailLines": 200 })).await;
    eprintln!("timing: logs request to text: {:?}", started.elapsed());
    let logs = view["logs"].as_str().unwrap();
    assert!(logs.contains("gateway: environment:"), "{logs}");
    assert!(logs.contains("ANTHROPIC_API_KEY=[redacted]"), "{logs}");
    assert!(logs.contains("OPENCLAW_GATEWAY_TOKEN=[redacted]"), "{logs}");
    assert!(
        !logs.contains(CANARY),
        "the canary secret reached the logs: {logs}"
    );
    assert_eq!(view["truncated"], false);

    // The size cap keeps the newest bytes only.
    let capped = read_logs(
        &deployer,
        &agent,
        json!({ "tailLines": 200, "maxBytes": 64 }),
    )
    .await;
    let text = capped["logs"].as_str().unwrap();
    assert!(text.len() <= 64 && !text.is_empty(), "{text:?}");
    assert_eq!(capped["truncated"], true);
    assert!(logs.ends_with(text), "the newest bytes are kept: {text:?}");

    // Out-of-range requests are refused by name.
    let logs_path = format!("/api/v1/agents/{agent}/logs");
    let (status, body) = call(
        &deployer,
        &deployer.token,
        Method::POST,
        &logs_path,
        Some(json!({ "tailLines": 5001 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("tailLines"), "{body}");
    let (status, _) = call(
        &deployer,
        &deployer.token,
        Method::POST,
        &logs_path,
        Some(json!({ "maxBytes": 2_000_000 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &deployer,
        &deployer.token,
        Method::POST,
        &logs_path,
        Some(json!({ "tail": 5 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Nobody but the deployer (and admins) reads them: not the host's key, not its owner.
    let read_path = format!("{logs_path}/{}", view["commandId"].as_str().unwrap());
    let (status, _) = call(&owner, &key, Method::GET, &read_path, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the host key reads no logs"
    );
    let (status, _) = call(&owner, &owner.token, Method::GET, &read_path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the host owner reads no logs"
    );
    let (status, _) = call(
        &owner,
        &owner.token,
        Method::POST,
        &logs_path,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the host owner requests no logs"
    );
    let (status, body) = call(&admin, &admin.token, Method::GET, &read_path, None).await;
    assert_eq!(status, StatusCode::OK, "admins may read: {body}");
    // The host key cannot upload over logs already acked, nor for a made-up command.
    let upload = |command: &str| format!("/api/v1/hosts/commands/{command}/logs");
    let acked = view["commandId"].as_str().unwrap();
    let response = owner
        .client
        .post(format!("{base}{}", upload(acked)))
        .bearer_auth(&key)
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = owner
        .client
        .post(format!(
            "{base}{}",
            upload(&sparebox_core::CommandId::new_random().to_string())
        ))
        .bearer_auth(&key)
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Rollouts are for admins, and only to pinned images.
    let rollouts = "/api/v1/admin/rollouts";
    let body = json!({ "image": UNHEALTHY_IMAGE, "percent": 100 });
    let (status, _) = call(
        &deployer,
        &deployer.token,
        Method::POST,
        rollouts,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body = json!({ "image": "sparebox-agent-test:latest", "percent": 100 });
    let (status, body) = call(&admin, &admin.token, Method::POST, rollouts, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let body = json!({ "image": IMAGE, "percent": 0 });
    let (status, _) = call(&admin, &admin.token, Method::POST, rollouts, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An image that never becomes healthy is rolled back; the agent keeps running.
    let docker = Docker::connect_with_local_defaults().unwrap();
    let (_, port) = engine_view(&docker, &agent).await;
    let started = Instant::now();
    let report = rollout(&admin, UNHEALTHY_IMAGE).await;
    assert_eq!(report["queued"].as_array().unwrap().len(), 1, "{report}");
    let upgrade = finished(&deployer, &agent, "upgrade").await;
    eprintln!(
        "timing: upgrade to an unhealthy image, rolled back: {:?}",
        started.elapsed()
    );
    assert_eq!(upgrade["status"], "failed", "{upgrade}");
    assert!(
        upgrade["error"]
            .as_str()
            .unwrap()
            .contains("rolled back to"),
        "{upgrade}"
    );
    assert_eq!(engine_view(&docker, &agent).await, (IMAGE.to_owned(), port));
    assert_eq!(healthz(port).await["ok"], true);
    let view = deployer.view(&agent).await;
    assert_eq!(view["image"], IMAGE);
    assert_eq!(
        event_messages(&deployer, &agent, "upgrade_started")
            .await
            .len(),
        1
    );
    let rolled_back = event_messages(&deployer, &agent, "upgrade_rolled_back").await;
    assert!(rolled_back[0].contains(UNHEALTHY_IMAGE), "{rolled_back:?}");
    deployer
        .poll("running again", Duration::from_secs(30), || async {
            deployer.view(&agent).await["state"] == "running"
        })
        .await;

    // A healthy new tag is kept, and the agent's record moves to it.
    let tagged = std::process::Command::new("docker")
        .args(["tag", IMAGE, V2_IMAGE])
        .status()
        .expect("the docker CLI");
    assert!(tagged.success());
    let started = Instant::now();
    rollout(&admin, V2_IMAGE).await;
    let upgrade = finished(&deployer, &agent, "upgrade").await;
    eprintln!(
        "timing: upgrade to a healthy image: {:?}",
        started.elapsed()
    );
    assert_eq!(upgrade["status"], "acked", "{upgrade}");
    assert_eq!(
        engine_view(&docker, &agent).await,
        (V2_IMAGE.to_owned(), port)
    );
    assert_eq!(healthz(port).await["ok"], true);
    deployer
        .poll(
            "the record pinned to v2",
            Duration::from_secs(10),
            || async { deployer.view(&agent).await["image"] == V2_IMAGE },
        )
        .await;
    let upgraded = event_messages(&deployer, &agent, "upgraded").await;
    assert_eq!(upgraded, [format!("upgraded from {IMAGE} to {V2_IMAGE}")]);
    // The same rollout again finds nothing left to do.
    let again = rollout(&admin, V2_IMAGE).await;
    assert_eq!(again["queued"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["alreadyOnImage"], 1, "{again}");

    // After the upgrade the secret is still redacted (read back from the new container).
    let view = read_logs(&deployer, &agent, json!({})).await;
    assert!(!view["logs"].as_str().unwrap().contains(CANARY));

    drop(cleanup);
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", V2_IMAGE])
        .output();
}
