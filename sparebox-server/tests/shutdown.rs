//! Graceful shutdown answers heartbeats that are being held, instead of leaving daemons
//! waiting on a closing connection until their wait runs out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::sqlite::SqliteStore;

#[tokio::test]
async fn shutdown_answers_held_heartbeats_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("test.db")).await.unwrap();
    let platform = Platform::new(
        Arc::new(store),
        PlatformConfig::default(),
        Keyring::new(EncryptionKey::generate()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sparebox_server::http::serve(listener, platform, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let user: Value = client
        .post(format!("{base}/api/v1/users"))
        .json(&json!({ "email": "h@example.com", "password": "long enough password", "roles": ["host_owner"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = user["apiToken"].as_str().unwrap();
    let host: Value = client
        .post(format!("{base}/api/v1/hosts"))
        .bearer_auth(token)
        .json(&json!({ "name": "box" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = host["hostKey"].as_str().unwrap().to_owned();

    let held = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/api/v1/hosts/heartbeat"))
                .bearer_auth(key)
                .json(&json!({
                    "protocolVersion": 1, "daemonVersion": "t", "isolation": "docker",
                    "hardware": { "ramMb": 4096, "cpuCores": 2, "diskGb": 50, "os": "linux", "arch": "x86_64" },
                    "waitSeconds": 30
                }))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the heartbeat is being held");
    stop.send(()).unwrap();

    // Well inside the 30 s wait: the held heartbeat is answered, and the server exits.
    let answered = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("held heartbeat answered at shutdown")
        .unwrap()
        .unwrap();
    assert!(answered.status().is_success());
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["commands"], json!([]));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
}
