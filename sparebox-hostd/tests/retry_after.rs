//! The daemon's client against the real server when the server asks it to slow down: a
//! refusal that carries `Retry-After` becomes [`ClientError::RetryLater`] with that wait,
//! which the daemon's heartbeat loop honours (at least that long, up to its backoff cap).

mod common;

use std::time::Duration;

use common::{Api, TestServer};
use sparebox_core::Secret;
use sparebox_hostd::{ClientError, HttpServerApi, ServerApi};
use sparebox_protocol::{HeartbeatRequest, HostHardware, IsolationMode};

fn heartbeat() -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: sparebox_protocol::PROTOCOL_VERSION,
        daemon_version: "test".into(),
        hardware: HostHardware {
            ram_mb: 16 * 1024,
            cpu_cores: 8,
            disk_gb: 200,
            os: "linux".into(),
            arch: "x86_64".into(),
            gpu: None,
        },
        isolation: IsolationMode::Docker,
        agent_statuses: Vec::new(),
        command_acks: Vec::new(),
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    }
}

#[tokio::test]
async fn rate_limited_heartbeat_is_retried_later_as_the_server_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (_, key) = api.host().await;
    let client = HttpServerApi::new(
        reqwest::Client::new(),
        &server.base(),
        Secret::new(key),
        Duration::from_secs(10),
    );

    // The server allows a burst of heartbeats per host, then refuses with Retry-After. The
    // allowance refills by one every 60 s / limit while the loop runs, so it may take a few
    // more than `limit` heartbeats to drain; each takes milliseconds, far less than that.
    let limit = sparebox_server::http::HEARTBEATS_PER_MINUTE;
    let mut refused = None;
    for _ in 0..=limit * 10 {
        if let Err(err) = client.heartbeat(&heartbeat()).await {
            refused = Some(err);
            break;
        }
    }
    let refused = refused.expect("the burst is limited");
    let ClientError::RetryLater {
        status,
        retry_after,
        ref message,
    } = refused
    else {
        panic!("expected a retry-later refusal, got {refused:?}");
    };
    assert_eq!(status, 429);
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
    assert!(message.contains("too many heartbeats"), "{message}");
    assert!(refused.is_transient());
}
