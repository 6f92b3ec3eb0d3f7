//! Backups through the real HTTP API, with the test acting as the host daemon: it takes
//! commands from heartbeats (with their session keys), seals and uploads archives, and
//! downloads them for restores. Who may touch which backup, and the size cap.

mod common;

use std::time::Instant;

use common::{message, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sparebox_core::crypto::{open_backup, seal_backup, SessionKey};
use sparebox_core::{AgentId, CommandId};
use sparebox_server::{BackupConfig, PlatformConfig};

const CAP: u64 = 64 * 1024;

struct Setup {
    server: TestServer,
    token: String,
    host_a: (String, String),
    host_b: (String, String),
    agent: String,
    _backups: tempfile::TempDir,
}

async fn setup() -> Setup {
    let backups = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(PlatformConfig {
        backups: BackupConfig {
            dir: Some(backups.path().to_owned()),
            max_bytes: CAP,
            keep: 2,
        },
        ..PlatformConfig::default()
    })
    .await;
    let token = server
        .sign_up("alice@example.com", &["host_owner", "deployer"])
        .await;
    let host_a = server.host(&token, "a").await;
    let host_b = server.host(&token, "b").await;
    server.heartbeat(&host_a.1, json!({})).await;
    server.heartbeat(&host_b.1, json!({})).await;
    let (status, created) = server.agent(&token, &host_a.0, "lite").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let deploy = created["command"]["id"].as_str().unwrap().to_owned();
    let setup = Setup {
        server,
        token,
        host_a,
        host_b,
        agent,
        _backups: backups,
    };
    setup.deliver(&setup.host_a.1).await;
    setup.ack(&setup.host_a.1, &deploy).await;
    setup
}

impl Setup {
    /// One heartbeat from the host with `key`; the commands it receives.
    async fn deliver(&self, key: &str) -> Vec<Value> {
        let (status, body) = self.server.heartbeat(key, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["commands"].as_array().unwrap().clone()
    }

    async fn ack(&self, key: &str, command: &str) {
        let acks = json!({ "commandAcks": [{ "id": command, "status": "acked" }] });
        let (status, body) = self.server.heartbeat(key, acks).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.server
            .call("POST", path, Some(&self.token), Some(body))
            .await
    }

    /// Queues a command through `path` and receives it on host A with its session key.
    async fn command_on_a(&self, path: &str, body: Value) -> (CommandId, SessionKey) {
        let (status, queued) = self.post(path, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let commands = self.deliver(&self.host_a.1).await;
        let command = commands
            .iter()
            .find(|c| c["id"] == queued["id"])
            .unwrap_or_else(|| panic!("command not delivered: {commands:?}"));
        let key: SessionKey = serde_json::from_value(command["sessionKey"].clone()).unwrap();
        (command["id"].as_str().unwrap().parse().unwrap(), key)
    }

    async fn upload(&self, key: &str, command: CommandId, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .server
            .client
            .put(format!(
                "{}/api/v1/hosts/commands/{command}/backup",
                self.server.base
            ))
            .bearer_auth(key)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn download(&self, key: &str, command: CommandId) -> (StatusCode, Vec<u8>) {
        let response = self
            .server
            .client
            .get(format!(
                "{}/api/v1/hosts/commands/{command}/backup",
                self.server.base
            ))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    fn agent_id(&self) -> AgentId {
        self.agent.parse().unwrap()
    }
}

#[tokio::test]
async fn a_backup_is_stored_listed_and_restored_only_through_its_own_hosts_commands() {
    let s = setup().await;
    let backups_path = format!("/api/v1/agents/{}/backups", s.agent);
    let (backup, key) = s.command_on_a(&backups_path, json!({})).await;
    let archive = b"pretend this is a gzip-compressed tar".to_vec();
    let sealed = seal_backup(&key, s.agent_id(), backup, &archive).unwrap();

    // Another host's key cannot upload through this command.
    let (status, body) = s.upload(&s.host_b.1, backup, sealed.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // An archive sealed for another command does not verify.
    let forged = seal_backup(&key, s.agent_id(), CommandId::new_random(), &archive).unwrap();
    let (status, body) = s.upload(&s.host_a.1, backup, forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("does not verify"), "{body}");

    let started = Instant::now();
    let (status, stored) = s.upload(&s.host_a.1, backup, sealed).await;
    eprintln!(
        "upload of a {} byte backup: {:?}",
        archive.len(),
        started.elapsed()
    );
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["sizeBytes"], archive.len());
    s.ack(&s.host_a.1, &backup.to_string()).await;

    let (status, list) = s
        .server
        .call("GET", &backups_path, Some(&s.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["backups"][0]["id"], backup.to_string());
    assert!(list["backupIntervalHours"].is_null());

    // Someone else can neither list nor restore it.
    let mallory = s.server.sign_up("mallory@example.com", &["deployer"]).await;
    let (status, _) = s
        .server
        .call("GET", &backups_path, Some(&mallory), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let restore_path = format!("/api/v1/agents/{}/restore", s.agent);
    let (restore, key) = s
        .command_on_a(&restore_path, json!({ "backupId": backup.to_string() }))
        .await;
    let (status, _) = s.download(&s.host_b.1, restore).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "host B read host A's backup");
    let (status, _) = s.download(&s.host_a.1, backup).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a backup command is no restore"
    );
    let (status, sealed) = s.download(&s.host_a.1, restore).await;
    assert_eq!(status, StatusCode::OK);
    let opened = open_backup(&key, s.agent_id(), restore, &sealed, 1 << 20).unwrap();
    assert_eq!(opened, archive);
    s.ack(&s.host_a.1, &restore.to_string()).await;
    let (status, _) = s.download(&s.host_a.1, restore).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an acked restore still serves"
    );
}

#[tokio::test]
async fn uploads_over_the_cap_are_refused_with_413() {
    let s = setup().await;
    let backups_path = format!("/api/v1/agents/{}/backups", s.agent);
    let (backup, key) = s.command_on_a(&backups_path, json!({})).await;
    let archive = vec![7u8; CAP as usize + 1];
    let sealed = seal_backup(&key, s.agent_id(), backup, &archive).unwrap();
    let (status, body) = s.upload(&s.host_a.1, backup, sealed.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    // Without a length up front (chunked), the stream is cut off at the cap all the same.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/hosts/commands/{backup}/backup HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        s.host_a.1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in sealed.chunks(4096) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break; // the server may stop reading once over the cap
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn restore_requests_are_checked_and_schedules_bounded() {
    let s = setup().await;
    let restore_path = format!("/api/v1/agents/{}/restore", s.agent);
    let (status, body) = s
        .post(&restore_path, json!({ "backupId": "not-a-uuid" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .post(
            &restore_path,
            json!({ "backupId": CommandId::new_random().to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = s
        .post(&restore_path, json!({ "backupId": 1, "x": 2 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let schedule = format!("/api/v1/agents/{}/backup-schedule", s.agent);
    let set = |hours: u32| {
        let body = json!({ "backupIntervalHours": hours });
        let server = &s.server;
        let (schedule, token) = (schedule.clone(), s.token.clone());
        async move {
            server
                .call("PUT", &schedule, Some(&token), Some(body))
                .await
        }
    };
    for hours in [0, 9000] {
        let (status, body) = set(hours).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{hours}: {body}");
    }
    let (status, body) = set(24).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["backupIntervalHours"], 24);

    // The next sweep queues the first scheduled backup, and only one.
    s.server.platform.sweep().await.unwrap();
    s.server.platform.sweep().await.unwrap();
    let commands = s.deliver(&s.host_a.1).await;
    let backups = commands.iter().filter(|c| c["type"] == "backup").count();
    assert_eq!(backups, 1, "{commands:?}");
}

#[tokio::test]
async fn backups_are_refused_when_the_server_keeps_none() {
    let server = TestServer::start().await;
    let token = server
        .sign_up("bob@example.com", &["host_owner", "deployer"])
        .await;
    let (host, key) = server.host(&token, "h").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap();
    let (status, body) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/backups"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("not enabled"), "{body}");
}
