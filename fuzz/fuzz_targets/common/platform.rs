//! A real platform over an in-memory SQLite store, set up once per fuzzing process: one
//! account (host owner and deployer), one host that reported its hardware, two agents whose
//! deploys were handed over, and a stop command queued for the first one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sparebox_core::crypto::{EncryptionKey, Keyring};
use sparebox_core::{AgentId, CommandId, Secret};
use sparebox_protocol::{HeartbeatRequest, HostHardware, IsolationMode, PROTOCOL_VERSION};
use sparebox_server::{AccountRecord, AgentRequest, Platform, PlatformConfig, SignUp};
use sparebox_store::sqlite::SqliteStore;
use sparebox_store::HostRecord;

/// The platform and the ids the fuzz targets aim at.
pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub platform: Platform,
    pub owner: AccountRecord,
    pub host: HostRecord,
    pub agents: Vec<AgentId>,
    pub commands: Vec<CommandId>,
}

/// A heartbeat with nothing to report.
pub fn empty_heartbeat() -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: "fuzz".into(),
        hardware: HostHardware {
            ram_mb: 16384,
            cpu_cores: 8,
            disk_gb: 100,
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

/// Builds the harness with `config` (free mode unless it carries a Stripe configuration).
pub fn harness(config: PlatformConfig) -> Harness {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let billing = config.stripe.is_some();
    let (platform, owner, host, agents, commands) = runtime.block_on(async move {
        let store = SqliteStore::open_in_memory()
            .await
            .expect("in-memory store");
        let keyring = Keyring::new(EncryptionKey::from_bytes([7; 32]));
        let platform = Platform::new(Arc::new(store), config, keyring);
        let (owner, _, _) = platform
            .sign_up(SignUp {
                email: "fuzz@example.com".into(),
                password: Secret::new("fuzzing password"),
                roles: vec!["host_owner".into(), "deployer".into()],
                name: None,
            })
            .await
            .expect("sign up");
        let (_, key) = platform
            .register_host(&owner, "fuzz host")
            .await
            .expect("host");
        let host = platform.authenticate_host(&key).await.expect("host key");
        platform
            .heartbeat(&host, empty_heartbeat())
            .await
            .expect("first heartbeat");
        let (mut agents, mut commands) = (Vec::new(), Vec::new());
        if !billing {
            for name in ["first", "second"] {
                let request = AgentRequest {
                    host_id: host.id,
                    tier: "lite".into(),
                    name: name.into(),
                    openclaw_config: None,
                    workspace_files: Vec::new(),
                    secrets: BTreeMap::new(),
                };
                let (agent, _) = platform.create_agent(&owner, request).await.expect("agent");
                agents.push(agent.id);
            }
            let delivered = platform
                .heartbeat(&host, empty_heartbeat())
                .await
                .expect("deploys");
            commands.extend(delivered.response.commands.iter().map(|c| c.id));
            let stop = platform.queue_command(&owner, agents[0], "stop").await;
            if let Ok(stop) = stop {
                commands.push(stop.id);
            }
        }
        (platform, owner, host, agents, commands)
    });
    Harness {
        runtime,
        platform,
        owner,
        host,
        agents,
        commands,
    }
}

/// `id` itself, or when it is one of the sixteen smallest UUIDs (`...000` to `...00f`), the
/// harness id it stands for: that lets short fuzz inputs name real agents and commands.
pub fn aim<T: Copy>(id: uuid::Uuid, known: &[T]) -> Option<T> {
    let small = id.as_u128();
    (small < 16 && !known.is_empty()).then(|| known[small as usize % known.len()])
}
