//! HTTP-level tests of the API against a real server on a loopback port and a real
//! SQLite database.

mod common;

use std::sync::Arc;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Roles for a user who both hosts and deploys.
const BOTH: &[&str] = &["host_owner", "deployer"];

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn heartbeat_with_missing_or_wrong_key_is_unauthorized() {
    let server = TestServer::start().await;
    let (status, body) = server
        .call("POST", "/api/v1/hosts/heartbeat", None, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");

    let (status, body) = server.heartbeat("sbx_host_wrong", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "invalid host key");
}

#[tokio::test]
async fn malformed_heartbeat_json_is_a_bad_request_naming_the_problem() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (_, key) = server.host(&token, "box").await;
    let response = server
        .client
        .post(format!("{}/api/v1/hosts/heartbeat", server.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"protocolVersion\": 1,")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );

    let (status, body) = server
        .heartbeat(&key, json!({ "hardware": { "ramMb": "lots" } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ramMb"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_tier_and_unknown_command_type_are_bad_requests() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;

    let (status, body) = server.agent(&token, &host, "enormous").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown tier \"enormous\""));

    let (status, body) = server.agent(&token, &host, "standard").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = body["agent"]["id"].as_str().unwrap();
    for kind in ["reboot", "deploy"] {
        let (status, body) = server
            .call(
                "POST",
                &format!("/api/v1/agents/{agent}/commands"),
                Some(&token),
                Some(json!({ "type": kind })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}: {body}");
    }
    let (_, commands) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        commands.as_array().unwrap().len(),
        1,
        "only the deploy: {commands}"
    );
}

#[tokio::test]
async fn host_without_a_heartbeat_or_free_slot_refuses_agents() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    let (status, body) = server.agent(&token, &host, "lite").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // 8 GiB and 4 cores minus the reserve leave room for one Pro agent, not two.
    server.heartbeat(&key, json!({})).await;
    assert_eq!(
        server.agent(&token, &host, "pro").await.0,
        StatusCode::CREATED
    );
    let (status, body) = server.agent(&token, &host, "pro").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no free slot"));
}

#[tokio::test]
async fn commands_are_delivered_once_and_acks_drive_the_agent_state() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "standard").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["agent"]["state"], "pending_deploy");

    let (status, response) = server.heartbeat(&key, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let commands = response["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["type"], "deploy");
    assert_eq!(commands[0]["tier"], "standard");
    let command = commands[0]["id"].as_str().unwrap().to_owned();

    let (_, again) = server.heartbeat(&key, json!({})).await;
    assert!(
        again["commands"].as_array().unwrap().is_empty(),
        "re-delivered: {again}"
    );

    // An intermediate stage never makes the agent running.
    let (_, _) = server
        .heartbeat(&key, json!({ "agentStatuses": [{ "agentId": agent, "status": "deploying", "deployStage": "health_check" }] }))
        .await;
    let (_, view) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(view["state"], "deploying");
    assert_eq!(view["deployStage"], "health_check");

    let (_, response) = server
        .heartbeat(&key, json!({
            "commandAcks": [{ "id": command, "status": "acked" }],
            "agentStatuses": [{ "agentId": agent, "status": "running", "cpuPercent": 150.5, "ramUsageMb": 300, "ramLimitMb": 2048, "uptimeSeconds": 5, "restartCount": 0,
                "image": "sparebox-agent-test:local", "imageId": "sha256:abc", "openclawVersion": "2026.9.6", "imageUpdateAvailable": true }]
        }))
        .await;
    assert_eq!(response["confirmedAcks"], json!([command]));
    let (_, view) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(view["state"], "running");
    assert_eq!(view["metrics"]["cpuPercent"], 150.5);
    assert_eq!(view["metrics"]["ramLimitMb"], 2048);
    assert_eq!(view["openclawVersion"], "2026.9.6");
    assert_eq!(view["imageUpdateAvailable"], true);

    let (_, history) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(history[0]["status"], "acked");
}

#[tokio::test]
async fn deploy_config_is_served_only_to_the_agents_host() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    let (_, other_key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "standard").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let command = response["commands"][0]["id"].as_str().unwrap().to_owned();
    let session_key = response["commands"][0]["sessionKey"].clone();
    let path = format!("/api/v1/agents/{agent}/deploy-config?commandId={command}");

    let (status, body) = server.call("GET", &path, Some(&other_key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = server.call("GET", &path, Some(&token), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an account token is not a host key"
    );

    let response = server
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains("sk-ant-test-0000"), "secrets travel sealed");
    let secrets = open_bundle(&text, &session_key, &agent, &command);
    assert_eq!(secrets["ANTHROPIC_API_KEY"].expose(), "sk-ant-test-0000");
    assert!(secrets["OPENCLAW_GATEWAY_TOKEN"].expose().len() >= 32);
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["image"], "sparebox-agent-test:local");
    assert_eq!(bundle["openclawConfig"]["gateway"]["mode"], "local");
    assert_eq!(bundle["workspaceFiles"][0]["path"], "SOUL.md");
}

#[tokio::test]
async fn an_unanswered_command_is_sent_again_only_to_its_host_and_only_while_unanswered() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    let (_, other_key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    server.agent(&token, &host, "standard").await;
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let delivered = response["commands"][0].clone();
    let command = delivered["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/hosts/commands/{command}");

    let (status, again) = server.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again, delivered,
        "the same command with the same session key"
    );

    let (status, body) = server.call("GET", &path, Some(&other_key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = server.call("GET", &path, Some(&token), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an account token is not a host key"
    );
    let (status, _) = server.call("GET", &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .call("GET", "/api/v1/hosts/commands/not-a-uuid", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(common::message(&body).contains("not-a-uuid"), "{body}");

    let ack = json!({ "commandAcks": [{ "id": command, "status": "acked" }] });
    server.heartbeat(&key, ack).await;
    let (status, body) = server.call("GET", &path, Some(&key), None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an answered command is not sent again: {body}"
    );
}

/// Verifies a served bundle with the session key its command carried, and opens it.
fn open_bundle(
    text: &str,
    session_key: &Value,
    agent: &str,
    command: &str,
) -> std::collections::BTreeMap<String, sparebox_core::Secret> {
    let key: sparebox_protocol::SessionKey =
        serde_json::from_value(session_key.clone()).expect("deploy commands carry a session key");
    let bundle = sparebox_protocol::DeployBundle::from_json(text.as_bytes()).unwrap();
    let verified = bundle
        .verify(
            &key,
            agent.parse().unwrap(),
            command.parse().unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
    verified.secrets
}

#[tokio::test]
async fn deployers_cannot_see_or_command_each_others_agents() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice@example.com", BOTH).await;
    let bob = server.sign_up("bob@example.com", BOTH).await;
    let (host, key) = server.host(&alice, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&alice, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap();

    let (status, _) = server
        .call("GET", &format!("/api/v1/agents/{agent}"), Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&bob),
            Some(json!({ "type": "stop" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = server.call("GET", "/api/v1/agents", Some(&bob), None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn deployer_cannot_set_platform_owned_config_or_arbitrary_environment() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(json!({
                "hostId": host, "tier": "lite", "name": "x",
                "openclawConfig": { "gateway": { "bind": "0.0.0.0" } }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`gateway.bind` is owned by the platform"));

    let (status, body) = server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(json!({
                "hostId": host, "tier": "lite", "name": "x", "secrets": { "LD_PRELOAD": "/x.so" }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(json!({
                "hostId": host, "tier": "lite", "name": "x", "image": "evil:latest"
            })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown field image must be refused"
    );
}

#[tokio::test]
async fn held_heartbeat_is_answered_when_a_command_is_queued() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    server.heartbeat(&key, json!({})).await; // takes the deploy

    let server = Arc::new(server);
    let held = {
        let (key, server) = (key.clone(), server.clone());
        tokio::spawn(async move { server.heartbeat(&key, json!({ "waitSeconds": 25 })).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            Some(json!({ "type": "stop" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, response) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // Only a wake-up delivers during the hold: at the end of the wait the answer is empty.
    assert_eq!(response["commands"][0]["type"], "stop", "{response}");
}

#[tokio::test]
async fn deploy_config_is_rate_limited_per_host_with_retry_after() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let command = response["commands"][0]["id"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/api/v1/agents/{agent}/deploy-config?commandId={command}",
        server.base
    );
    for _ in 0..sparebox_server::http::DEPLOY_CONFIG_PER_MINUTE {
        let response = server
            .client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = server
        .client
        .get(&url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "rate_limited");
}

#[tokio::test]
async fn metrics_count_heartbeats_and_commands() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    server.agent(&token, &host, "lite").await;
    server.heartbeat(&key, json!({})).await;
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("sparebox_heartbeats_total 2"), "{text}");
    assert!(
        text.contains("sparebox_commands_total{kind=\"deploy\",status=\"queued\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sparebox_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_and_bad_ids_get_json_errors() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (status, body) = server
        .call("GET", "/api/v1/nothing", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = server
        .call("GET", "/api/v1/agents/not-a-uuid", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a UUID"));
}

#[tokio::test]
async fn config_update_is_validated_then_queued_and_retry_needs_a_failed_deploy() {
    let server = TestServer::start().await;
    let token = server.sign_up("alice@example.com", BOTH).await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/agents/{agent}/config");

    // Before the deploy reaches the host, the stored config is just replaced.
    let (status, body) = server
        .call(
            "PUT",
            &path,
            Some(&token),
            Some(json!({ "workspaceFiles": [{ "path": "SOUL.md", "content": "v2" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["command"], Value::Null);
    assert_eq!(body["agent"]["workspaceFiles"][0]["size"], 2);

    let (_, response) = server.heartbeat(&key, json!({})).await;
    let deploy = response["commands"][0]["id"].as_str().unwrap().to_owned();
    server
        .heartbeat(
            &key,
            json!({ "commandAcks": [{ "id": deploy, "status": "acked" }] }),
        )
        .await;

    let (status, body) = server
        .call(
            "PUT",
            &path,
            Some(&token),
            Some(json!({ "workspaceFiles": [{ "path": "../x", "content": "" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server
        .call(
            "PUT",
            &path,
            Some(&token),
            Some(json!({ "openclawConfig": { "gateway": { "port": 1 } } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = server
        .call("PUT", &path, Some(&token), Some(json!({ "openclawConfig": { "agents": {} }, "secrets": { "OPENAI_API_KEY": "sk-new" } })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["command"]["type"], "update_config");
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let update = response["commands"][0]["id"].as_str().unwrap().to_owned();
    let session_key = response["commands"][0]["sessionKey"].clone();
    let (status, bundle) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}/deploy-config?commandId={update}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let secrets = open_bundle(&bundle.to_string(), &session_key, &agent, &update);
    assert_eq!(secrets["OPENAI_API_KEY"].expose(), "sk-new");
    assert!(
        !secrets.contains_key("ANTHROPIC_API_KEY"),
        "secrets are replaced as a set"
    );
    assert!(
        secrets.contains_key("OPENCLAW_GATEWAY_TOKEN"),
        "the gateway token is kept"
    );

    // Retry is only for failed deploys.
    let retry = format!("/api/v1/agents/{agent}/retry");
    let (status, _) = server.call("POST", &retry, Some(&token), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    server
        .heartbeat(&key, json!({ "commandAcks": [{ "id": update, "status": "failed", "error": "health_check: timed out" }] }))
        .await;
    let (_, view) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(view["state"], "error");
    assert_eq!(
        view["error"],
        "update_config failed: health_check: timed out"
    );
    let (status, body) = server.call("POST", &retry, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["type"], "deploy");
    let (_, view) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(view["state"], "pending_deploy");
}
