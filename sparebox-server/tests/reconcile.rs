//! What the server tells a daemon to reconcile against: desired agents in each heartbeat
//! response, and a fresh deploy when a running agent's container vanished.

mod common;

use common::TestServer;
use serde_json::{json, Value};

fn desired<'a>(response: &'a Value, agent: &str) -> Option<&'a Value> {
    response["desiredAgents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["agentId"] == agent)
}

async fn ack(server: &TestServer, key: &str, command: &str, agent: &str, status: &str) -> Value {
    server
        .heartbeat(
            key,
            json!({
                "commandAcks": [{ "id": command, "status": "acked" }],
                "agentStatuses": [{ "agentId": agent, "status": status }]
            }),
        )
        .await
        .1
}

#[tokio::test]
async fn a_deployers_stop_is_what_the_daemon_is_told_to_keep() {
    let server = TestServer::start().await;
    let token = server
        .sign_up("dee@example.com", &["deployer", "host_owner"])
        .await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();

    let (_, response) = server.heartbeat(&key, json!({})).await;
    let deploy = response["commands"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(desired(&response, &agent).unwrap()["commandPending"], true);

    let response = ack(&server, &key, &deploy, &agent, "running").await;
    let wanted = desired(&response, &agent).unwrap();
    assert_eq!(wanted["state"], "running");
    assert_eq!(wanted["commandPending"], false);
    assert_eq!(wanted["tier"], "lite");

    server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            Some(json!({ "type": "stop" })),
        )
        .await;
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let stop = response["commands"][0]["id"].as_str().unwrap().to_owned();
    let response = ack(&server, &key, &stop, &agent, "stopped").await;
    let wanted = desired(&response, &agent).unwrap();
    assert_eq!(wanted["state"], "stopped");
    assert_eq!(wanted["commandPending"], false);

    // Once an undeploy is asked for, the agent is no longer wanted on the host.
    server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            Some(json!({ "type": "undeploy" })),
        )
        .await;
    let (_, response) = server.heartbeat(&key, json!({})).await;
    assert!(desired(&response, &agent).is_none(), "{response}");
}

#[tokio::test]
async fn a_running_agent_whose_container_vanished_is_deployed_again_once() {
    let server = TestServer::start().await;
    let token = server
        .sign_up("dee@example.com", &["deployer", "host_owner"])
        .await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let deploy = response["commands"][0]["id"].as_str().unwrap().to_owned();
    ack(&server, &key, &deploy, &agent, "running").await;

    let missing = json!({ "agentStatuses": [{ "agentId": agent, "status": "missing" }] });
    let (_, response) = server.heartbeat(&key, missing.clone()).await;
    let commands = response["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1, "{response}");
    assert_eq!(commands[0]["type"], "deploy");
    assert!(commands[0]["sessionKey"].is_string());

    // While that deploy is on its way, further missing reports queue nothing more.
    let (_, response) = server.heartbeat(&key, missing).await;
    assert!(
        response["commands"].as_array().unwrap().is_empty(),
        "{response}"
    );
}

#[tokio::test]
async fn engine_events_become_agent_history_once() {
    let server = TestServer::start().await;
    let token = server
        .sign_up("dee@example.com", &["deployer", "host_owner"])
        .await;
    let (host, key) = server.host(&token, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&token, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();
    let (_, response) = server.heartbeat(&key, json!({})).await;
    let deploy = response["commands"][0]["id"].as_str().unwrap().to_owned();
    ack(&server, &key, &deploy, &agent, "running").await;

    let events = json!({ "agentEvents": [
        { "agentId": agent, "kind": "died", "at": "2026-12-03T10:00:00Z", "exitCode": 1 },
        { "agentId": agent, "kind": "oom_killed", "at": "2026-12-03T10:05:00Z" },
        { "agentId": agent, "kind": "restarted", "at": "2026-12-03T10:05:01Z" }
    ]});
    server.heartbeat(&key, events.clone()).await;
    // The daemon re-sends after a lost answer: nothing is recorded twice.
    server.heartbeat(&key, events).await;

    let (_, history) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}/events"),
            Some(&token),
            None,
        )
        .await;
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "crashed").count(),
        1,
        "{history}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "oom_killed").count(),
        1,
        "{history}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "restarted").count(),
        1,
        "{history}"
    );
    assert!(
        history.to_string().contains("exited with code 1"),
        "{history}"
    );
}
