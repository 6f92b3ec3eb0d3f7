//! Re-sealing secrets under a new key: interrupted halfway, resumed, and every secret
//! still readable afterwards under the new key alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use sparebox_core::{AgentId, Secret};
use sparebox_protocol::{HeartbeatRequest, HostHardware, IsolationMode};
use sparebox_server::{
    AgentRequest, EncryptionKey, Keyring, Platform, PlatformConfig, RotationReport, SignUp,
};
use sparebox_store::sqlite::SqliteStore;
use sparebox_store::Store;

/// Sign-up details for a deployer who also owns hosts.
fn alice() -> SignUp {
    SignUp {
        email: "alice@example.com".into(),
        password: Secret::new("correct horse battery staple"),
        roles: vec!["host_owner".into(), "deployer".into()],
        name: None,
    }
}

fn heartbeat() -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: sparebox_protocol::PROTOCOL_VERSION,
        daemon_version: "test".into(),
        hardware: HostHardware {
            ram_mb: 64 * 1024,
            cpu_cores: 16,
            disk_gb: 500,
            os: "linux".into(),
            arch: "x86_64".into(),
            gpu: None,
        },
        isolation: IsolationMode::Docker,
        agent_statuses: vec![],
        command_acks: vec![],
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    }
}

#[tokio::test]
async fn interrupted_rotation_resumes_and_leaves_every_secret_readable_under_the_new_key() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let old = EncryptionKey::generate();
    let new = EncryptionKey::generate();
    let before = Platform::new(
        store.clone(),
        PlatformConfig::default(),
        Keyring::new(old.clone()),
    );
    let (owner, _) = before
        .sign_up(alice())
        .await
        .map(|(a, _, t)| (a, t))
        .unwrap();
    let (host, key) = before.register_host(&owner, "box").await.unwrap();
    let host_record = before.authenticate_host(&key).await.unwrap();
    before.heartbeat(&host_record, heartbeat()).await.unwrap();
    let mut agents: Vec<AgentId> = Vec::new();
    for i in 0..4 {
        let (agent, _) = before
            .create_agent(
                &owner,
                AgentRequest {
                    host_id: host.id,
                    tier: "lite".into(),
                    name: format!("agent {i}"),
                    openclaw_config: None,
                    workspace_files: vec![],
                    secrets: BTreeMap::from([(
                        "ANTHROPIC_API_KEY".to_owned(),
                        Secret::new(format!("sk-ant-{i}")),
                    )]),
                },
            )
            .await
            .unwrap();
        agents.push(agent.id);
    }

    let rotating = Keyring::new(new.clone()).with_retired(old).unwrap();
    let during = Platform::new(store.clone(), PlatformConfig::default(), rotating);
    let first = during.rotate_secrets(Some(2)).await.unwrap();
    assert_eq!(
        first,
        RotationReport {
            rotated: 2,
            already_current: 0,
            unreadable: 0
        }
    );
    let resumed = during.rotate_secrets(None).await.unwrap();
    assert_eq!(
        resumed,
        RotationReport {
            rotated: 2,
            already_current: 2,
            unreadable: 0
        }
    );
    let again = during.rotate_secrets(None).await.unwrap();
    assert_eq!(
        again,
        RotationReport {
            rotated: 0,
            already_current: 4,
            unreadable: 0
        }
    );

    let only_new = Keyring::new(new);
    for (i, id) in agents.iter().enumerate() {
        let agent = store.agent(*id).await.unwrap().unwrap();
        let secrets = only_new.open_secrets(*id, &agent.sealed_secrets).unwrap();
        assert_eq!(secrets["ANTHROPIC_API_KEY"].expose(), format!("sk-ant-{i}"));
    }
}

#[tokio::test]
async fn secrets_copied_into_another_agents_row_do_not_open() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let platform = Platform::new(
        store.clone(),
        PlatformConfig::default(),
        Keyring::new(EncryptionKey::generate()),
    );
    let (owner, _) = platform
        .sign_up(alice())
        .await
        .map(|(a, _, t)| (a, t))
        .unwrap();
    let (host, key) = platform.register_host(&owner, "box").await.unwrap();
    let host_record = platform.authenticate_host(&key).await.unwrap();
    platform.heartbeat(&host_record, heartbeat()).await.unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (agent, _) = platform
            .create_agent(
                &owner,
                AgentRequest {
                    host_id: host.id,
                    tier: "lite".into(),
                    name: name.into(),
                    openclaw_config: None,
                    workspace_files: vec![],
                    secrets: BTreeMap::from([("OPENAI_API_KEY".to_owned(), Secret::new("sk-x"))]),
                },
            )
            .await
            .unwrap();
        ids.push(agent.id);
    }
    let stolen = store.agent(ids[0]).await.unwrap().unwrap().sealed_secrets;
    store
        .update_agent(
            ids[1],
            sparebox_store::AgentUpdate {
                sealed_secrets: Some(stolen),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = platform
        .update_config(
            &owner,
            ids[1],
            sparebox_server::ConfigUpdate {
                secrets: Some(BTreeMap::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "agent secrets could not be decrypted");
}
