//! A real server on a loopback port over a SQLite file, and helpers that speak its API,
//! for the account and host tests.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;

/// A heartbeat from a 16 GiB, 8-core Linux host isolating with Docker that reports
/// nothing; tests fill in what they report with struct update syntax.
pub fn quiet_heartbeat() -> sparebox_protocol::HeartbeatRequest {
    sparebox_protocol::HeartbeatRequest {
        protocol_version: sparebox_protocol::PROTOCOL_VERSION,
        daemon_version: "test".into(),
        hardware: sparebox_protocol::HostHardware {
            ram_mb: 16 * 1024,
            cpu_cores: 8,
            disk_gb: 200,
            os: "linux".into(),
            arch: "x86_64".into(),
            gpu: None,
        },
        isolation: sparebox_protocol::IsolationMode::Docker,
        agent_statuses: Vec::new(),
        command_acks: Vec::new(),
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    }
}

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// Signs alice@example.com up on `platform` directly (no HTTP) as a host owner and
/// deployer.
pub async fn sign_up_owner(platform: &Platform) -> sparebox_server::AccountRecord {
    let (owner, _, _) = platform
        .sign_up(sparebox_server::SignUp {
            email: "alice@example.com".into(),
            password: sparebox_core::Secret::new(PASSWORD),
            roles: vec!["host_owner".into(), "deployer".into()],
            name: None,
        })
        .await
        .unwrap();
    owner
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub platform: Platform,
    _dir: tempfile::TempDir,
}

/// A response: status, headers and JSON body (or the text as a JSON string).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// A session cookie, with the CSRF token to echo (if any).
    Cookie(&'a str, Option<&'a str>),
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(PlatformConfig::default()).await
    }

    pub async fn start_with(config: PlatformConfig) -> Self {
        Self::start_with_clock(config, Arc::new(sparebox_server::SystemClock)).await
    }

    /// A server whose platform reads time from `clock`.
    pub async fn start_with_clock(
        config: PlatformConfig,
        clock: Arc<dyn sparebox_server::Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("test.db")).await.unwrap();
        let platform = Platform::new(
            Arc::new(store),
            PlatformConfig {
                agent_image: "sparebox-agent-test:local".into(),
                ..config
            },
            Keyring::new(EncryptionKey::generate()),
        )
        .with_clock(clock);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(sparebox_server::http::serve(
            listener,
            platform.clone(),
            std::future::pending(),
        ));
        Self {
            base,
            client: reqwest::Client::new(),
            platform,
            _dir: dir,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Cookie(session, csrf) => {
                request =
                    request.header("cookie", format!("theme=dark; sparebox_session={session}"));
                if let Some(csrf) = csrf {
                    request = request.header("x-csrf-token", csrf);
                }
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let auth = token.map_or(Auth::None, Auth::Bearer);
        let reply = self.send(method, path, auth, body).await;
        (reply.status, reply.body)
    }

    /// Signs up `email` with `roles`; returns the API token.
    pub async fn sign_up(&self, email: &str, roles: &[&str]) -> String {
        let reply = self
            .send(
                "POST",
                "/api/v1/users",
                Auth::None,
                Some(json!({ "email": email, "password": PASSWORD, "roles": roles })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["apiToken"].as_str().unwrap().to_owned()
    }

    /// Signs in; returns the session id from the cookie and the CSRF token.
    pub async fn sign_in(&self, email: &str) -> (String, String) {
        let reply = self
            .send(
                "POST",
                "/api/v1/sessions",
                Auth::None,
                Some(json!({ "email": email, "password": PASSWORD })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let cookie = reply.headers["set-cookie"].to_str().unwrap();
        let session = cookie
            .strip_prefix("sparebox_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_owned();
        (
            session,
            reply.body["csrfToken"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers a host; returns its id and key.
    pub async fn host(&self, token: &str, name: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/hosts",
                Some(token),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["host"]["id"].as_str().unwrap().to_owned(),
            body["hostKey"].as_str().unwrap().to_owned(),
        )
    }

    /// A heartbeat from a host with 8 GiB and 4 cores, with `extra` fields merged in.
    pub async fn heartbeat(&self, key: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({
            "protocolVersion": 1,
            "daemonVersion": "test",
            "isolation": "docker",
            "hardware": { "ramMb": 8192, "cpuCores": 4, "diskGb": 100, "os": "linux", "arch": "x86_64", "gpu": null },
            "agentStatuses": [],
            "commandAcks": []
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.call("POST", "/api/v1/hosts/heartbeat", Some(key), Some(body))
            .await
    }

    /// Asks to create an agent of `tier` on `host`.
    pub async fn agent(&self, token: &str, host: &str, tier: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/agents",
            Some(token),
            Some(json!({
                "hostId": host,
                "tier": tier,
                "name": "helper",
                "openclawConfig": { "agents": { "defaults": { "userTimezone": "deployer-config" } } },
                "workspaceFiles": [{ "path": "SOUL.md", "content": "Be kind." }],
                "secrets": { "ANTHROPIC_API_KEY": "sk-ant-test-0000" }
            })),
        )
        .await
    }
}

pub fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}
