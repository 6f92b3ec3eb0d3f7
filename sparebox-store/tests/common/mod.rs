//! The backends the conformance suite runs against, and fixtures shared by its cases.

pub mod cases;
#[cfg(feature = "postgres")]
pub mod pg;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::json;
use sparebox_core::{AgentId, CommandId, CommandKind, HostId, Reserve, Tier};
use sparebox_protocol::{HostHardware, IsolationMode, WorkspaceFile};
#[cfg(feature = "sqlite")]
use sparebox_store::sqlite::SqliteStore;
use sparebox_store::{
    AccountRecord, AgentRecord, CommandRecord, HostHeartbeat, HostRecord, NewAccount, NewAgent,
    NewApiToken, NewCommand, NewHost, Role, Store,
};
#[cfg(feature = "sqlite")]
use tempfile::TempDir;
use uuid::Uuid;

/// A database the suite can open several stores on, like several server replicas (or a
/// server restarted) sharing one database.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// The store type.
    type Store: Store + Clone;

    /// A new store on this backend's database, with its own connections.
    async fn open(&self) -> Self::Store;
}

/// A SQLite file in a temporary directory.
#[cfg(feature = "sqlite")]
pub struct SqliteBackend {
    dir: TempDir,
}

#[cfg(feature = "sqlite")]
impl SqliteBackend {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }
}

#[cfg(feature = "sqlite")]
impl Backend for SqliteBackend {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(self.dir.path().join("sparebox.db"))
            .await
            .expect("open sqlite store")
    }
}

/// A fixed instant plus `secs` seconds, so tests never read the wall clock.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid timestamp")
}

/// Hardware with `ram_gb` GiB, `cores` cores and plenty of disk.
pub fn hardware(ram_gb: u64, cores: u32) -> HostHardware {
    HostHardware {
        ram_mb: ram_gb * 1024,
        cpu_cores: cores,
        disk_gb: 1000,
        os: "linux".into(),
        arch: "x86_64".into(),
        gpu: None,
    }
}

/// A heartbeat reporting `hardware`.
pub fn heartbeat(hardware: HostHardware) -> HostHeartbeat {
    HostHeartbeat {
        hardware,
        isolation: IsolationMode::Docker,
        daemon_version: "0.1.0".into(),
    }
}

/// Random bytes standing in for a SHA-256 hash.
pub fn random_hash() -> Vec<u8> {
    let mut hash = Uuid::new_v4().as_bytes().to_vec();
    hash.extend_from_slice(Uuid::new_v4().as_bytes());
    hash
}

/// A new account with a unique email, deployer and host owner.
pub fn new_account(secs: i64) -> NewAccount {
    let id = Uuid::new_v4();
    NewAccount {
        id,
        email: format!("user-{}@example.com", id.simple()),
        name: "user".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        roles: BTreeSet::from([Role::Deployer, Role::HostOwner]),
        created_at: at(secs),
    }
}

/// A first API token for `account`, with a random hash.
pub fn new_token(account: Uuid, secs: i64) -> NewApiToken {
    NewApiToken {
        id: Uuid::new_v4(),
        account,
        name: "first".into(),
        token_hash: random_hash(),
        prefix: "sbx_pat_1234".into(),
        created_at: at(secs),
    }
}

/// Creates an account with a unique email.
pub async fn account(store: &impl Store, secs: i64) -> AccountRecord {
    let new = new_account(secs);
    let token = new_token(new.id, secs);
    store
        .create_account(new, token)
        .await
        .expect("create account")
        .0
}

/// Registers a host for `owner` (without any heartbeat yet).
pub async fn host(store: &impl Store, owner: &AccountRecord, secs: i64) -> HostRecord {
    store
        .create_host(NewHost {
            owner: owner.id,
            name: format!("box-{secs}"),
            key_hash: random_hash(),
            key_prefix: "sbh_1234".into(),
            created_at: at(secs),
        })
        .await
        .expect("create host")
}

/// An agent to create on `host`.
pub fn new_agent(host: HostId, owner: &AccountRecord, tier: Tier, secs: i64) -> NewAgent {
    NewAgent {
        id: AgentId::new_random(),
        host,
        owner: owner.id,
        name: format!("agent-{secs}"),
        tier,
        image: "ghcr.io/openclaw/openclaw:2026.9.6".into(),
        openclaw_config: json!({"agents": {"defaults": {"model": "anthropic/claude"}}, "n": 1.5}),
        workspace_files: vec![WorkspaceFile {
            path: "SOUL.md".into(),
            content: "Be kind.\n".into(),
        }],
        sealed_secrets: vec![1, 2, 3, 0, 255],
        created_at: at(secs),
    }
}

/// A command of `kind` for `agent` on `host`.
pub fn new_command(agent: AgentId, host: HostId, kind: CommandKind, secs: i64) -> NewCommand {
    NewCommand {
        id: CommandId::new_random(),
        agent,
        host,
        kind,
        created_at: at(secs),
        params: None,
        image: None,
    }
}

/// An account with one host that has reported 64 GiB and 16 cores.
pub struct World<S> {
    pub store: S,
    pub owner: AccountRecord,
    pub host: HostRecord,
}

impl<S: Store + Clone> World<S> {
    pub async fn new(store: S) -> Self {
        let owner = account(&store, 0).await;
        let host = host(&store, &owner, 1).await;
        store
            .record_heartbeat(host.id, heartbeat(hardware(64, 16)), at(2))
            .await
            .expect("heartbeat");
        Self { store, owner, host }
    }

    /// Creates a Standard agent at `secs`, with its deploy command.
    pub async fn deploy(&self, secs: i64) -> (AgentRecord, CommandRecord) {
        let agent = new_agent(self.host.id, &self.owner, Tier::Standard, secs);
        let command = new_command(agent.id, agent.host, CommandKind::Deploy, secs);
        self.store
            .create_agent(agent, command, Reserve::default())
            .await
            .expect("create agent")
    }

    /// Records a heartbeat of the host at `secs`.
    pub async fn heartbeat_at(&self, secs: i64) {
        self.store
            .record_heartbeat(self.host.id, heartbeat(hardware(64, 16)), at(secs))
            .await
            .expect("heartbeat");
    }

    /// Queues a command of `kind` for `agent` at `secs`.
    pub async fn enqueue(
        &self,
        agent: &AgentRecord,
        kind: CommandKind,
        secs: i64,
    ) -> CommandRecord {
        self.store
            .enqueue_command(new_command(agent.id, agent.host, kind, secs))
            .await
            .expect("enqueue command")
    }
}
