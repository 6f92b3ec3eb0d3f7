//! A deployer's secret goes from the API to the container's environment and nowhere
//! else: not into any log line (at debug level), any file the daemon writes, or any API
//! response. Needs a running Docker engine and the local agent image.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use serde_json::{json, Value};
use sparebox_core::Secret;
use sparebox_hostd::{DaemonConfig, HostDaemon};
use sparebox_runtime::docker::DockerRuntime;
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;

const IMAGE: &str = "sparebox-agent-test:local";
const CANARY: &str = "sk-ant-SPAREBOX-CANARY-7f3a9c2e";
const CANARY_2: &str = "sk-openai-SPAREBOX-CANARY-41d0";

/// Every log line of this test process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(sparebox_hostd::logging::env_filter("debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    captured
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> String {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployer_secret_reaches_only_the_container() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("server.db"))
        .await
        .unwrap();
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
    let client = reqwest::Client::new();
    let mut responses = Vec::new();

    let signup: Value = client
        .post(format!("{base}/api/v1/users"))
        .json(&json!({
            "email": "leak-test@example.com",
            "password": "correct horse battery staple",
            "roles": ["host_owner", "deployer"]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["apiToken"].as_str().unwrap().to_owned();
    let host: Value = serde_json::from_str(
        &call(
            &client,
            reqwest::Method::POST,
            format!("{base}/api/v1/hosts"),
            &token,
            Some(json!({ "name": "h" })),
        )
        .await,
    )
    .unwrap();
    let host_id = host["host"]["id"].as_str().unwrap().to_owned();

    let runtime = DockerRuntime::connect(None)
        .await
        .expect("a running Docker engine");
    let mut config = DaemonConfig::new(
        base.clone(),
        Secret::new(host["hostKey"].as_str().unwrap()),
        dir.path().join("hostd"),
    );
    config.port_range_start = 23_000 + (std::process::id() % 1000) as u16 * 10;
    config.heartbeat_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    let data_dir = config.data_dir.clone();
    let daemon = HostDaemon::new(config, Arc::new(runtime), client.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));
    // The host reports its hardware before it can take an agent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hosts: Value = serde_json::from_str(
            &call(
                &client,
                reqwest::Method::GET,
                format!("{base}/api/v1/hosts"),
                &token,
                None,
            )
            .await,
        )
        .unwrap();
        if hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == host_id && h["online"] == true)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "host never came online: {hosts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let created = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/v1/agents"),
        &token,
        Some(json!({
            "hostId": host_id, "tier": "lite", "name": "leaky?",
            "secrets": { "ANTHROPIC_API_KEY": CANARY }
        })),
    )
    .await;
    let agent = serde_json::from_str::<Value>(&created).unwrap()["agent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    responses.push(created);

    let running = |view: &Value| view["state"] == "running";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let view = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/v1/agents/{agent}"),
            &token,
            None,
        )
        .await;
        let parsed: Value = serde_json::from_str(&view).unwrap();
        responses.push(view);
        if running(&parsed) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never running: {parsed}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The secret really reached the container (so the checks below are not vacuous).
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let name = sparebox_runtime::agent_container_name(agent.parse().unwrap());
    let inspect = docker
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let env = inspect.config.unwrap().env.unwrap_or_default();
    assert!(env
        .iter()
        .any(|e| e == &format!("ANTHROPIC_API_KEY={CANARY}")));

    // A configuration update with a new secret travels the same way.
    responses.push(
        call(
            &client,
            reqwest::Method::PUT,
            format!("{base}/api/v1/agents/{agent}/config"),
            &token,
            Some(json!({ "secrets": { "OPENAI_API_KEY": CANARY_2 } })),
        )
        .await,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let history = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/v1/agents/{agent}/commands"),
            &token,
            None,
        )
        .await;
        let parsed: Value = serde_json::from_str(&history).unwrap();
        responses.push(history);
        if parsed[0]["type"] == "update_config" && parsed[0]["status"] == "acked" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "update never acked: {parsed}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for path in [
        format!("/api/v1/agents/{agent}"),
        "/api/v1/agents".to_owned(),
        format!("/api/v1/agents/{agent}/events"),
        "/api/v1/hosts".to_owned(),
    ] {
        responses.push(
            call(
                &client,
                reqwest::Method::GET,
                format!("{base}{path}"),
                &token,
                None,
            )
            .await,
        );
    }
    responses.push(
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    // Files the daemon wrote while the agent ran (the journal, openclaw.json, workspace).
    let mut files = Vec::new();
    files_under(&data_dir, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("journal.json")),
        "{files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for canary in [CANARY, CANARY_2] {
            assert!(
                !text.contains(canary),
                "{} contains a secret",
                file.display()
            );
        }
    }

    call(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/v1/agents/{agent}/commands"),
        &token,
        Some(json!({ "type": "undeploy" })),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view: Value = serde_json::from_str(
            &call(
                &client,
                reqwest::Method::GET,
                format!("{base}/api/v1/agents/{agent}"),
                &token,
                None,
            )
            .await,
        )
        .unwrap();
        if view["state"] == "undeployed" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never undeployed: {view}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop.send(());
    daemon.await.unwrap().unwrap();

    for response in &responses {
        for canary in [CANARY, CANARY_2] {
            assert!(
                !response.contains(canary),
                "an API response contains a secret: {response}"
            );
        }
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 20, "logs were captured: {logs}");
    assert!(
        logs.contains("agent ready"),
        "debug logs of the deploy were captured"
    );
    for canary in [CANARY, CANARY_2] {
        assert!(!logs.contains(canary), "a log line contains a secret");
    }
}
