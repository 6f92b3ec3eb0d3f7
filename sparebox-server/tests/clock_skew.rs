//! A host whose clock is an hour wrong, either way. The only timestamps a daemon sends (a
//! container's start, an engine event's time) are diagnostics: liveness, delivery, acks and
//! command expiry go by the server's clock, so such a host works like any other.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sparebox_server::{Clock, ManualClock, PlatformConfig};

/// A running report and a crash event stamped `skew` away from the server's clock.
fn skewed(agent: &str, at: chrono::DateTime<Utc>) -> Value {
    json!({
        "agentStatuses": [{ "agentId": agent, "status": "running", "startedAt": at, "uptimeSeconds": 5 }],
        "agentEvents": [{ "agentId": agent, "kind": "restarted", "at": at }],
    })
}

async fn host_with_skew(skew: chrono::Duration) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let server = TestServer::start_with_clock(PlatformConfig::default(), clock.clone()).await;
    let token = server
        .sign_up("skew@example.com", &["host_owner", "deployer"])
        .await;
    let (host, key) = server.host(&token, "skewed box").await;
    let host_time = clock.now() + skew;
    assert_eq!(server.heartbeat(&key, json!({})).await.0, StatusCode::OK);
    let (status, created) = server.agent(&token, &host, "lite").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent = created["agent"]["id"].as_str().unwrap().to_owned();

    let (_, answer) = server.heartbeat(&key, json!({})).await;
    let deploy = answer["commands"][0]["id"].clone();
    let mut ack = skewed(&agent, host_time);
    ack["commandAcks"] = json!([{ "id": deploy, "status": "acked" }]);
    let (status, answer) = server.heartbeat(&key, ack).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["serverTime"].as_str().unwrap(),
        serde_json::to_value(clock.now()).unwrap().as_str().unwrap(),
        "the answer carries the server's time, for the daemon to compare with its own"
    );

    // Four minutes later by the server's clock: still within the command expiry window
    // (five minutes) and heard from within the liveness window (three intervals).
    clock.advance(Duration::from_secs(170));
    let (status, _) = server.heartbeat(&key, skewed(&agent, host_time)).await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(Duration::from_secs(70));
    let (_, stop) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            Some(json!({ "type": "stop" })),
        )
        .await;
    let (_, answer) = server.heartbeat(&key, skewed(&agent, host_time)).await;
    assert_eq!(answer["commands"][0]["id"], stop["id"], "{answer}");
    let ack = json!({ "commandAcks": [{ "id": stop["id"], "status": "acked" }] });
    assert_eq!(server.heartbeat(&key, ack).await.0, StatusCode::OK);

    let summary = server.platform.sweep().await.unwrap();
    assert_eq!(summary.hosts_online, 1, "skew {skew}");
    assert!(
        summary.expired.is_empty(),
        "skew {skew}: {:?}",
        summary.expired
    );
    let (_, commands) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}/commands"),
            Some(&token),
            None,
        )
        .await;
    let statuses: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["acked", "acked"], "skew {skew}: {commands}");
    let (_, view) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(view["state"], "stopped", "skew {skew}: {view}");
}

#[tokio::test]
async fn host_clock_an_hour_fast_changes_nothing_the_platform_decides() {
    host_with_skew(chrono::Duration::hours(1)).await;
}

#[tokio::test]
async fn host_clock_an_hour_slow_changes_nothing_the_platform_decides() {
    host_with_skew(-chrono::Duration::hours(1)).await;
}
