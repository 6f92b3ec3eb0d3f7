//! The logs API with a scripted host: a deployer's request reaches the host with its
//! parameters, uploads are checked (the command's host, its cap, UTF-8, still sent), the
//! text is kept sealed and only its deployer (or an admin) reads it, for an hour.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{message, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sparebox_server::{ManualClock, PlatformConfig};

struct World {
    server: TestServer,
    clock: Arc<ManualClock>,
    deployer: String,
    owner: String,
    key: String,
    agent: String,
}

/// A deployer's agent, deployed on a host owned by someone else.
async fn world() -> World {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let server = TestServer::start_with_clock(PlatformConfig::default(), clock.clone()).await;
    let deployer = server.sign_up("deployer@example.com", &["deployer"]).await;
    let owner = server
        .sign_up("owner@example.com", &["host_owner", "deployer"])
        .await;
    let (host, key) = server.host(&owner, "host").await;
    server.heartbeat(&key, json!({})).await;
    let (status, created) = server.agent(&deployer, &host, "lite").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let deploy = created["command"]["id"].clone();
    server.heartbeat(&key, json!({})).await;
    let acks = json!({ "commandAcks": [{ "id": deploy, "status": "acked" }] });
    server.heartbeat(&key, acks).await;
    World {
        agent: created["agent"]["id"].as_str().unwrap().to_owned(),
        server,
        clock,
        deployer,
        owner,
        key,
    }
}

async fn upload(world: &World, key: &str, command: &str, text: Vec<u8>) -> (StatusCode, Value) {
    let response = world
        .server
        .client
        .post(format!(
            "{}/api/v1/hosts/commands/{command}/logs?truncated=true",
            world.server.base
        ))
        .bearer_auth(key)
        .body(text)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn uploaded_logs_are_checked_sealed_private_and_expire() {
    let world = world().await;
    let server = &world.server;
    let logs_path = format!("/api/v1/agents/{}/logs", world.agent);

    let (status, command) = server
        .call(
            "POST",
            &logs_path,
            Some(world.deployer.as_str()),
            Some(json!({ "maxBytes": 16 })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{command}");
    let id = command["id"].as_str().unwrap().to_owned();

    // The host gets the command with its parameters, defaults filled in.
    let (_, response) = server.heartbeat(&world.key, json!({})).await;
    let delivered = &response["commands"][0];
    assert_eq!(delivered["type"], "logs");
    assert_eq!(
        delivered["params"],
        json!({ "op": "logs", "tailLines": 500, "maxBytes": 16 })
    );

    // Another host's key, an oversized or non-UTF-8 body are refused.
    let (_, other_key) = server.host(&world.owner, "other host").await;
    assert_eq!(
        upload(&world, &other_key, &id, b"x".to_vec()).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = upload(&world, &world.key, &id, vec![b'a'; 17]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(message(&body).contains("cap of 16"), "{body}");
    let (status, _) = upload(&world, &world.key, &id, vec![0xff, 0xfe]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let oversized = vec![b'a'; 1024 * 1024 + 1];
    assert_eq!(
        upload(&world, &world.key, &id, oversized).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    assert_eq!(
        upload(&world, &world.key, &id, b"hello [redacted]".to_vec())
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let stored = server
        .platform
        .store()
        .command_logs(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.sealed.windows(5).any(|w| w == b"hello"),
        "logs are sealed at rest"
    );

    let read_path = format!("{logs_path}/{id}");
    let (status, view) = server
        .call("GET", &read_path, Some(world.deployer.as_str()), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "sent");
    assert_eq!(view["logs"], "hello [redacted]");
    assert_eq!(view["truncated"], true);
    // The host owner and the host key read nothing.
    let (status, _) = server
        .call("GET", &read_path, Some(world.owner.as_str()), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call("GET", &read_path, Some(world.key.as_str()), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor does another agent's path reach this command.
    let (status, _) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{}/logs/{id}", uuid::Uuid::new_v4()),
            Some(world.deployer.as_str()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let acks = json!({ "commandAcks": [{ "id": id, "status": "acked" }] });
    server.heartbeat(&world.key, acks).await;
    let (status, _) = upload(&world, &world.key, &id, b"late".to_vec()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, view) = server
        .call("GET", &read_path, Some(world.deployer.as_str()), None)
        .await;
    assert_eq!(
        (view["status"].as_str(), view["logs"].as_str()),
        (Some("acked"), Some("hello [redacted]"))
    );

    // An hour later the text is gone, and the sweep deletes it.
    world.clock.advance(Duration::from_secs(60 * 60 + 1));
    let (_, view) = server
        .call("GET", &read_path, Some(world.deployer.as_str()), None)
        .await;
    assert_eq!(view["logs"], Value::Null);
    server.platform.sweep().await.unwrap();
    let store = server.platform.store();
    assert!(store
        .command_logs(id.parse().unwrap())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn logs_requests_out_of_bounds_or_for_others_are_refused() {
    let world = world().await;
    let server = &world.server;
    let path = format!("/api/v1/agents/{}/logs", world.agent);
    for (body, field) in [
        (json!({ "tailLines": 0 }), "tailLines"),
        (json!({ "tailLines": 5001 }), "tailLines"),
        (json!({ "sinceSeconds": 0 }), "sinceSeconds"),
        (json!({ "maxBytes": 1_048_577 }), "maxBytes"),
        (json!({ "lines": 5 }), "lines"),
    ] {
        let (status, reply) = server
            .call("POST", &path, Some(world.deployer.as_str()), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(message(&reply).contains(field), "{reply}");
    }
    let (status, _) = server
        .call("POST", &path, Some(world.owner.as_str()), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call("POST", &path, None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
