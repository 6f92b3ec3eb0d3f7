//! Fills a fresh database with hosts and running agents through the platform logic, or
//! (with `--fast`) seeds a few template hosts that way and copies them in SQL.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use sparebox_core::{AgentId, AgentState, HostId, Secret};
use sparebox_protocol::{AckStatus, CommandAck, IsolationMode};
use sparebox_server::{
    AccountRecord, AgentRequest, EncryptionKey, Keyring, Platform, PlatformConfig, SignUp,
};
use sparebox_store::{AgentUpdate, HostHeartbeat, Store};

use crate::payload::{self, SimAgent};
use crate::{fast, Flags};

/// Tasks registering hosts at once; SQLite serialises their writes, PostgreSQL does not.
const WORKERS: u64 = 8;

pub async fn seed(flags: &Flags) {
    let hosts = flags.number("hosts", 1000);
    let keys_path = flags.text("keys", "keys.txt");
    let database = flags.text("database", "sparebox.db");
    let fast_path = match flags.text("fast", "false").as_str() {
        "true" => true,
        "false" => false,
        other => panic!("--fast is true or false, got {other:?}"),
    };
    // The fast path seeds one template host per agent count through the platform.
    let through_platform = if fast_path {
        hosts.min(fast::TEMPLATES)
    } else {
        hosts
    };
    let store = open(&database).await;
    let key = std::env::var("SPAREBOX_ENCRYPTION_KEY").expect("SPAREBOX_ENCRYPTION_KEY is set");
    let key = EncryptionKey::from_hex(&key).expect("SPAREBOX_ENCRYPTION_KEY is 64 hex digits");
    let keyring = Keyring::new(key);
    let platform = Platform::new(store, PlatformConfig::default(), keyring.clone());
    let (account, _, token) = platform
        .sign_up(SignUp {
            email: format!("load-{}@example.com", std::process::id()),
            password: Secret::new("benchmark password"),
            roles: vec!["host_owner".into(), "deployer".into()],
            name: None,
        })
        .await
        .expect("sign up");

    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (platform, account) = (platform.clone(), account.clone());
        workers.push(tokio::spawn(async move {
            let mut lines = Vec::new();
            for i in (worker..through_platform).step_by(WORKERS as usize) {
                lines.push((i, seed_host(&platform, &account, i).await));
            }
            lines
        }));
    }
    let mut seeded = Vec::new();
    for worker in workers {
        seeded.extend(worker.await.expect("seeding task"));
    }
    seeded.sort_by_key(|(i, _)| *i);
    let mut seeded: Vec<SeededHost> = seeded.into_iter().map(|(_, host)| host).collect();
    // Let go of the platform's connections before another client writes to the database.
    drop(platform);
    if fast_path && hosts > through_platform {
        let copies = fast::replicate(&database, &keyring, &seeded, through_platform..hosts);
        seeded.extend(copies);
    }

    let mut file =
        std::io::BufWriter::new(std::fs::File::create(&keys_path).expect("create keys file"));
    writeln!(file, "token {token}").expect("write keys file");
    for host in &seeded {
        writeln!(file, "{}", host.line()).expect("write keys file");
    }
    file.flush().expect("write keys file");
    let agents: u64 = (0..hosts).map(|i| i % 9).sum();
    eprintln!(
        "seeded {hosts} hosts and {agents} running agents in {:.1?}",
        started.elapsed()
    );
}

async fn open(database: &str) -> Arc<dyn Store> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return open_postgres(database).await;
    }
    let store = sparebox_store::sqlite::SqliteStore::open(database)
        .await
        .expect("open SQLite database");
    Arc::new(store)
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Arc<dyn Store> {
    let store = sparebox_store::postgres::PgStore::connect(url)
        .await
        .expect("connect to PostgreSQL");
    Arc::new(store)
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str) -> Arc<dyn Store> {
    panic!("built without PostgreSQL: add --features postgres")
}

/// A seeded host: what the keys file needs and what the fast path copies from.
pub struct SeededHost {
    pub id: HostId,
    pub key: String,
    pub agents: Vec<AgentId>,
}

impl SeededHost {
    /// Its keys file line: `<host key> <agent id>,<agent id>...`.
    pub fn line(&self) -> String {
        let ids: Vec<String> = self.agents.iter().map(ToString::to_string).collect();
        format!("{} {}", self.key, ids.join(","))
    }
}

/// Registers host `i` with `i % 9` agents and brings them to running. Hosts and agents are registered and
/// created through the platform; the daemon's side (hardware report, deploy ack, running
/// report) is written straight to the store, which takes a third of the transactions that
/// three real heartbeats would.
async fn seed_host(platform: &Platform, account: &AccountRecord, i: u64) -> SeededHost {
    let (_, key) = platform
        .register_host(account, &format!("load host {i}"))
        .await
        .expect("register host");
    let host = platform.authenticate_host(&key).await.expect("host key");
    let store = platform.store();
    let now = Utc::now();
    let heartbeat = HostHeartbeat {
        hardware: payload::hardware(),
        isolation: IsolationMode::Docker,
        daemon_version: "0.1.0-load".into(),
    };
    store
        .record_heartbeat(host.id, heartbeat, now)
        .await
        .expect("record heartbeat");

    let mut ids = Vec::new();
    for j in 0..i % 9 {
        let request = AgentRequest {
            host_id: host.id,
            tier: if j % 2 == 0 { "lite" } else { "standard" }.into(),
            name: format!("load agent {i}.{j}"),
            openclaw_config: None,
            workspace_files: Vec::new(),
            secrets: BTreeMap::new(),
        };
        let (agent, deploy) = platform
            .create_agent(account, request)
            .await
            .expect("create agent");
        let ack = CommandAck {
            id: deploy.id,
            status: AckStatus::Acked,
            error: None,
        };
        store.record_ack(host.id, &ack, now).await.expect("ack");
        let sim = SimAgent {
            id: agent.id,
            running: true,
            started_at: now,
            port: 18000 + j as u16,
        };
        let update = AgentUpdate {
            state: Some(AgentState::Running),
            deploy_stage: Some(None),
            report: Some((payload::report(&sim, now), now)),
            ..AgentUpdate::default()
        };
        store.update_agent(agent.id, update).await.expect("running");
        ids.push(agent.id);
    }
    SeededHost {
        id: host.id,
        key,
        agents: ids,
    }
}
