//! The daemon against a small stand-in for the server's HTTP API, with the fake runtime.
//! The full end-to-end test against the real server and Docker lives elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use sparebox_core::crypto::BundleDraft;
use sparebox_core::{AgentId, CommandId, CommandKind, Secret, Tier};
use sparebox_hostd::{
    DaemonConfig, DaemonError, HealthProbe, HostDaemon, HttpServerApi, ServerApi,
};
use sparebox_protocol::{
    AckStatus, Command, DeployBundle, HeartbeatRequest, HeartbeatResponse, RuntimeStatus,
    SessionKey, WorkspaceFile,
};
use sparebox_runtime::fake::FakeRuntime;
use tokio::sync::Notify;

const KEY: &str = "sbx_host_test_key";

#[derive(Default)]
struct Server {
    queued: Mutex<Vec<Command>>,
    heartbeats: Mutex<Vec<HeartbeatRequest>>,
    bundle_queries: Mutex<Vec<String>>,
    done: Notify,
}

type Shared = Arc<Server>;

fn unauthorized() -> Response {
    let body =
        serde_json::json!({"error": {"code": "unauthorized", "message": "unknown host key"}});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

async fn heartbeat(
    State(server): State<Shared>,
    headers: HeaderMap,
    Json(request): Json<HeartbeatRequest>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let confirmed: Vec<CommandId> = request.command_acks.iter().map(|ack| ack.id).collect();
    let running = request
        .agent_statuses
        .iter()
        .any(|status| status.status == RuntimeStatus::Running);
    let mut heartbeats = server.heartbeats.lock().unwrap();
    let acked_before = heartbeats.iter().any(|hb| !hb.command_acks.is_empty());
    if acked_before && confirmed.is_empty() && running {
        server.done.notify_one();
    }
    heartbeats.push(request);
    let commands = std::mem::take(&mut *server.queued.lock().unwrap());
    Json(HeartbeatResponse {
        commands,
        confirmed_acks: confirmed,
        next_heartbeat_seconds: 1,
        server_time: Utc::now(),
        desired_agents: None,
    })
    .into_response()
}

async fn deploy_config(
    State(server): State<Shared>,
    headers: HeaderMap,
    Path(agent): Path<AgentId>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let command_id = query.get("commandId").cloned().unwrap_or_default();
    server
        .bundle_queries
        .lock()
        .unwrap()
        .push(command_id.clone());
    let Ok(command_id) = command_id.parse::<CommandId>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let bundle: DeployBundle = BundleDraft {
        agent_id: agent,
        command_id,
        tier: Tier::Lite,
        image: "ghcr.io/openclaw/openclaw:test".into(),
        openclaw_config: serde_json::json!({"gateway": {"mode": "local"}}),
        workspace_files: vec![WorkspaceFile {
            path: "SOUL.md".into(),
            content: "hello".into(),
        }],
        secrets: BTreeMap::from([("OPENCLAW_GATEWAY_TOKEN".into(), Secret::new("tok"))]),
        issued_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::minutes(5),
    }
    .seal(&session_key())
    .unwrap();
    Json(bundle).into_response()
}

/// The one key this test server seals every bundle with.
fn session_key() -> SessionKey {
    SessionKey::from_bytes([7; 32])
}

async fn start_server(server: Shared) -> String {
    let app = Router::new()
        .route("/api/v1/hosts/heartbeat", post(heartbeat))
        .route("/api/v1/agents/{id}/deploy-config", get(deploy_config))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct AlwaysHealthy;

#[async_trait]
impl HealthProbe for AlwaysHealthy {
    async fn probe(&self, _port: u16) -> Result<(), String> {
        Ok(())
    }
}

fn daemon(url: &str, key: &str, dir: &std::path::Path, runtime: Arc<FakeRuntime>) -> HostDaemon {
    let mut config = DaemonConfig::new(url, Secret::new(key), dir.to_owned());
    config.port_range_start = 42000;
    config.busy_heartbeat_interval = Duration::from_millis(50);
    let server: Arc<dyn ServerApi> = Arc::new(HttpServerApi::new(
        reqwest::Client::new(),
        url,
        Secret::new(key),
        Duration::from_secs(5),
    ));
    HostDaemon::with_parts(config, runtime, server, Arc::new(AlwaysHealthy)).unwrap()
}

#[tokio::test]
async fn deploy_over_http_is_acked_confirmed_and_reported_running() {
    let server: Shared = Arc::default();
    let agent = AgentId::new_random();
    let deploy = Command {
        id: CommandId::new_random(),
        agent_id: agent,
        kind: CommandKind::Deploy,
        tier: Tier::Lite,
        created_at: Utc::now(),
        session_key: Some(session_key()),
        params: None,
    };
    server.queued.lock().unwrap().push(deploy.clone());
    let url = start_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());

    let done = server.clone();
    let run = daemon(&url, KEY, dir.path(), runtime.clone()).run(async move {
        done.done.notified().await;
    });
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("daemon did not finish the deploy in time")
        .unwrap();

    assert_eq!(
        *server.bundle_queries.lock().unwrap(),
        [deploy.id.to_string()]
    );
    let heartbeats = server.heartbeats.lock().unwrap();
    let ack = heartbeats
        .iter()
        .flat_map(|hb| hb.command_acks.iter())
        .next()
        .unwrap();
    assert_eq!((ack.id, ack.status), (deploy.id, AckStatus::Acked));
    let last = heartbeats.last().unwrap();
    assert_eq!(last.agent_statuses[0].status, RuntimeStatus::Running);
    assert_eq!(last.agent_statuses[0].gateway_port, Some(42000));
    assert!(last.hardware.cpu_cores >= 1);
    let soul = dir
        .path()
        .join(format!("agents/{agent}/state/workspace/SOUL.md"));
    assert_eq!(std::fs::read_to_string(soul).unwrap(), "hello");
}

#[tokio::test]
async fn wrong_host_key_ends_the_run_with_an_error() {
    let server: Shared = Arc::default();
    let url = start_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();

    let run =
        daemon(&url, "wrong", dir.path(), Arc::new(FakeRuntime::new())).run(std::future::pending());
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap();

    let err = result.unwrap_err();
    assert!(matches!(err, DaemonError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("unknown host key"), "{err}");
}
