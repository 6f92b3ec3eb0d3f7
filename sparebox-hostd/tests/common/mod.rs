//! Helpers for the acceptance tests: a real server on SQLite that can be stopped and
//! started again on the same port and database, an API client, and a guard that removes
//! the test's containers however the test ends.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;
use tokio::sync::oneshot;

pub const IMAGE: &str = "sparebox-agent-test:local";

/// A server that can be stopped and started again with the same database and key.
pub struct TestServer {
    db: PathBuf,
    keyring: Keyring,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(dir: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = Self {
            db: dir.join("server.db"),
            keyring: Keyring::new(EncryptionKey::generate()),
            addr: listener.local_addr().unwrap(),
            stop: None,
            task: None,
        };
        server.serve(listener).await;
        server
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn serve(&mut self, listener: tokio::net::TcpListener) {
        let store = SqliteStore::open(&self.db).await.unwrap();
        let platform = Platform::new(
            Arc::new(store),
            PlatformConfig {
                agent_image: IMAGE.into(),
                heartbeat_interval: Duration::from_secs(1),
                backups: sparebox_server::BackupConfig {
                    dir: Some(self.db.with_file_name("backups")),
                    ..sparebox_server::BackupConfig::default()
                },
                ..PlatformConfig::default()
            },
            self.keyring.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(sparebox_server::http::serve(
            listener,
            platform,
            async {
                let _ = stopped.await;
            },
        )));
    }

    /// Stops listening; connections still open are cut off.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(result) => result.unwrap().unwrap(),
                Err(elapsed) => panic!("server did not stop: {elapsed}"),
            }
        }
    }

    /// Starts again on the same port and database.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener).await;
    }
}

/// A deployer's and host owner's view of the API.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn sign_up(base: &str) -> Self {
        let client = reqwest::Client::new();
        let account: Value = client
            .post(format!("{base}/api/v1/users"))
            .json(&json!({
                "email": format!("{}@example.com", uuid_like()),
                "password": "correct horse battery staple",
                "roles": ["host_owner", "deployer"]
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            base: base.to_owned(),
            token: account["apiToken"]
                .as_str()
                .unwrap_or_else(|| panic!("sign-up: {account}"))
                .to_owned(),
            client,
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    /// Registers a host; returns its id and key.
    pub async fn host(&self) -> (String, String) {
        let host = self
            .send(
                reqwest::Method::POST,
                "/api/v1/hosts",
                Some(json!({ "name": "resilience host" })),
            )
            .await;
        (
            host["host"]["id"].as_str().unwrap().to_owned(),
            host["hostKey"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn wait_online(&self) {
        self.poll("host online", Duration::from_secs(30), || async {
            let hosts = self.send(reqwest::Method::GET, "/api/v1/hosts", None).await;
            hosts[0]["online"] == true
        })
        .await;
    }

    /// Creates a Lite agent on `host`; returns its id.
    pub async fn agent(&self, host: &str) -> String {
        let created = self
            .send(
                reqwest::Method::POST,
                "/api/v1/agents",
                Some(json!({
                    "hostId": host, "tier": "lite", "name": "resilience agent",
                    "openclawConfig": { "agents": { "defaults": {} } },
                    "workspaceFiles": [{ "path": "SOUL.md", "content": "Be brief." }]
                })),
            )
            .await;
        created["agent"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn view(&self, agent: &str) -> Value {
        self.send(
            reqwest::Method::GET,
            &format!("/api/v1/agents/{agent}"),
            None,
        )
        .await
    }

    pub async fn commands(&self, agent: &str) -> Vec<Value> {
        let all = self
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/agents/{agent}/commands"),
                None,
            )
            .await;
        all.as_array().unwrap().clone()
    }

    pub async fn command(&self, agent: &str, kind: &str) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/agents/{agent}/commands"),
            Some(json!({ "type": kind })),
        )
        .await;
    }

    /// How many of the agent's events are of `kind`.
    pub async fn events_of_kind(&self, agent: &str, kind: &str) -> usize {
        let events = self
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/agents/{agent}/events"),
                None,
            )
            .await;
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .count()
    }

    /// Polls until `done` holds, failing after `limit`.
    pub async fn poll<F, Fut>(&self, what: &str, limit: Duration, done: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        while !done().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the agent's newest command of `kind` has `status`.
    pub async fn wait_command(&self, agent: &str, kind: &str, status: &str) {
        self.poll(
            &format!("{kind} {status}"),
            Duration::from_secs(90),
            || async {
                self.commands(agent)
                    .await
                    .iter()
                    .find(|c| c["type"] == kind)
                    .is_some_and(|c| c["status"] == status)
            },
        )
        .await;
    }
}

fn uuid_like() -> String {
    sparebox_core::AgentId::new_random().to_string()
}

/// A port range start no other test is likely to use.
pub fn port_range_start() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    port.clamp(20_000, 60_000)
}

/// Ids of the containers labelled with `agent`'s id, running or not.
pub fn containers_of(agent: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=dev.sparebox.agent-id={agent}"),
        ])
        .output()
        .expect("the docker CLI");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes the containers of the agents it was told about when dropped, also when the
/// test panics.
#[derive(Default)]
pub struct Cleanup(pub std::sync::Mutex<Vec<String>>);

impl Cleanup {
    pub fn agent(&self, agent: &str) {
        self.0.lock().unwrap().push(agent.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for agent in self.0.lock().unwrap().iter() {
            for id in containers_of(agent) {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", &id])
                    .output();
            }
        }
    }
}
