//! Moving agents off hosts through the real HTTP API, with the test acting as both host
//! daemons: a drain moves an agent with a fresh backup, and a deployer moves an agent off
//! a host that has been offline long enough.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sparebox_core::crypto::{open_backup, seal_backup, SessionKey};
use sparebox_core::{AgentId, CommandId};
use sparebox_server::{BackupConfig, ManualClock, PlatformConfig};

struct World {
    server: TestServer,
    token: String,
    a: (String, String),
    b: (String, String),
    agent: String,
    /// Commands heartbeats delivered that the test has not taken yet.
    inbox: std::sync::Mutex<Vec<Value>>,
    _backups: tempfile::TempDir,
}

async fn world(clock: Arc<ManualClock>) -> World {
    let backups = tempfile::tempdir().unwrap();
    let config = PlatformConfig {
        backups: BackupConfig {
            dir: Some(backups.path().to_owned()),
            ..BackupConfig::default()
        },
        move_grace: Duration::from_secs(600),
        ..PlatformConfig::default()
    };
    let server = TestServer::start_with_clock(config, clock).await;
    let token = server
        .sign_up("owner@example.com", &["host_owner", "deployer"])
        .await;
    let a = server.host(&token, "a").await;
    let b = server.host(&token, "b").await;
    server.heartbeat(&a.1, json!({})).await;
    server.heartbeat(&b.1, json!({})).await;
    let (status, created) = server.agent(&token, &a.0, "lite").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let world = World {
        agent: created["agent"]["id"].as_str().unwrap().to_owned(),
        server,
        token,
        a,
        b,
        inbox: std::sync::Mutex::new(Vec::new()),
        _backups: backups,
    };
    let deploy = world.take(&world.a.1, "deploy").await;
    world.ack(&world.a.1, &deploy).await;
    world
}

impl World {
    /// One heartbeat as the host with `key` (with `extra` fields); keeps what it delivers.
    async fn beat(&self, key: &str, extra: Value) -> Value {
        let (status, body) = self.server.heartbeat(key, extra).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let delivered = body["commands"].as_array().unwrap().clone();
        self.inbox.lock().unwrap().extend(delivered);
        body
    }

    /// Heartbeats as the host with `key` until a command of `kind` has arrived.
    async fn take(&self, key: &str, kind: &str) -> Value {
        for _ in 0..20 {
            {
                let mut inbox = self.inbox.lock().unwrap();
                if let Some(i) = inbox.iter().position(|c| c["type"] == kind) {
                    return inbox.remove(i);
                }
            }
            self.beat(key, json!({})).await;
            self.server.platform.sweep().await.unwrap();
        }
        let path = format!("/api/v1/agents/{}/commands", self.agent);
        let (_, commands) = self
            .server
            .call("GET", &path, Some(&self.token), None)
            .await;
        panic!(
            "no {kind} command arrived: {commands}, events {:?}",
            self.event_kinds().await
        );
    }

    async fn ack(&self, key: &str, command: &Value) {
        let acks = json!({ "commandAcks": [{ "id": command["id"], "status": "acked" }] });
        self.beat(key, acks).await;
    }

    async fn agent_view(&self) -> Value {
        let path = format!("/api/v1/agents/{}", self.agent);
        self.server
            .call("GET", &path, Some(&self.token), None)
            .await
            .1
    }

    async fn event_kinds(&self) -> Vec<String> {
        let path = format!("/api/v1/agents/{}/events", self.agent);
        let (_, events) = self
            .server
            .call("GET", &path, Some(&self.token), None)
            .await;
        let mut kinds: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.reverse();
        kinds
    }

    async fn desired_on(&self, key: &str) -> Vec<String> {
        let body = self.beat(key, json!({})).await;
        body["desiredAgents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["agentId"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn ids(command: &Value) -> (CommandId, AgentId, SessionKey) {
    (
        command["id"].as_str().unwrap().parse().unwrap(),
        command["agentId"].as_str().unwrap().parse().unwrap(),
        serde_json::from_value(command["sessionKey"].clone()).unwrap(),
    )
}

#[tokio::test]
async fn a_drained_hosts_agent_moves_with_a_fresh_backup_restored_on_the_new_host() {
    let w = world(Arc::new(ManualClock::new(Utc::now()))).await;
    let (status, drained) = w
        .server
        .call(
            "POST",
            &format!("/api/v1/hosts/{}/drain", w.a.0),
            Some(&w.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{drained}");
    assert_eq!(drained["moves"][0]["phase"], "backing_up");

    // The old host backs the agent up.
    let backup = w.take(&w.a.1, "backup").await;
    let (id, agent, key) = ids(&backup);
    let archive = b"the agent's state".to_vec();
    let sealed = seal_backup(&key, agent, id, &archive).unwrap();
    let uploaded = w
        .server
        .client
        .put(format!(
            "{}/api/v1/hosts/commands/{id}/backup",
            w.server.base
        ))
        .bearer_auth(&w.a.1)
        .body(sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    w.ack(&w.a.1, &backup).await;

    // The new host deploys it, then restores exactly that backup.
    let deploy = w.take(&w.b.1, "deploy").await;
    assert_eq!(w.agent_view().await["hostId"], w.b.0.as_str());
    assert!(!w.desired_on(&w.a.1).await.contains(&w.agent));
    w.ack(&w.b.1, &deploy).await;
    let restore = w.take(&w.b.1, "restore").await;
    assert_eq!(restore["params"]["backupId"], id.to_string());
    let (restore_id, _, key) = ids(&restore);
    let downloaded = w
        .server
        .client
        .get(format!(
            "{}/api/v1/hosts/commands/{restore_id}/backup",
            w.server.base
        ))
        .bearer_auth(&w.b.1)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    let sealed = downloaded.bytes().await.unwrap();
    assert_eq!(
        open_backup(&key, agent, restore_id, &sealed, 1 << 20).unwrap(),
        archive
    );
    w.ack(&w.b.1, &restore).await;

    let kinds = w.event_kinds().await;
    assert!(
        kinds.ends_with(
            &["move_started", "backed_up", "deployed", "restored", "moved"].map(String::from)
        ),
        "{kinds:?}"
    );
    assert_eq!(w.agent_view().await["state"], "running");
    assert!(w.desired_on(&w.b.1).await.contains(&w.agent));
    // Nothing new lands on the drained host.
    let (status, body) = w.server.agent(&w.token, &w.a.0, "lite").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn an_agent_moves_off_an_offline_host_only_after_the_grace_period() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let w = world(clock.clone()).await;
    let path = format!("/api/v1/agents/{}/move", w.agent);
    let (status, body) = w.server.call("POST", &path, Some(&w.token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "an online host: {body}");

    clock.advance(Duration::from_secs(3600));
    w.server.platform.sweep().await.unwrap();
    w.server.heartbeat(&w.b.1, json!({})).await;
    let mallory = w.server.sign_up("mallory@example.com", &["deployer"]).await;
    let (status, _) = w.server.call("POST", &path, Some(&mallory), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, moved) = w.server.call("POST", &path, Some(&w.token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{moved}");
    assert_eq!(moved["toHost"], w.b.0.as_str(), "{moved}");

    let deploy = w.take(&w.b.1, "deploy").await;
    w.ack(&w.b.1, &deploy).await;
    let kinds = w.event_kinds().await;
    assert_eq!(kinds.last().map(String::as_str), Some("moved"), "{kinds:?}");
    assert_eq!(w.agent_view().await["state"], "running");
}

#[tokio::test]
async fn an_agent_its_deployer_stopped_is_stopped_again_after_its_move() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let w = world(clock.clone()).await;
    let commands = format!("/api/v1/agents/{}/commands", w.agent);
    let (status, body) = w
        .server
        .call(
            "POST",
            &commands,
            Some(&w.token),
            Some(json!({ "type": "stop" })),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let stop = w.take(&w.a.1, "stop").await;
    w.ack(&w.a.1, &stop).await;
    assert_eq!(w.agent_view().await["state"], "stopped");

    // Its host disappears; the deployer moves the agent once the grace period is over.
    clock.advance(Duration::from_secs(3600));
    w.server.platform.sweep().await.unwrap();
    w.server.heartbeat(&w.b.1, json!({})).await;
    let path = format!("/api/v1/agents/{}/move", w.agent);
    let (status, moved) = w.server.call("POST", &path, Some(&w.token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{moved}");

    let deploy = w.take(&w.b.1, "deploy").await;
    w.ack(&w.b.1, &deploy).await;
    let stop_again = w.take(&w.b.1, "stop").await;
    w.ack(&w.b.1, &stop_again).await;
    assert_eq!(w.agent_view().await["state"], "stopped");
    assert!(
        w.event_kinds().await.contains(&"moved".to_owned()),
        "{:?}",
        w.event_kinds().await
    );
}
