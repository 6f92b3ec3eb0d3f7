//! Test doubles shared by the unit tests: a scripted server and a health probe.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sparebox_core::crypto::BundleDraft;
use sparebox_core::{AgentId, CommandId, CommandKind, Secret, Tier};
use sparebox_protocol::{
    Command, DeployBundle, HeartbeatRequest, HeartbeatResponse, SessionKey, WorkspaceFile,
};
use sparebox_runtime::fake::FakeRuntime;

use crate::client::{ClientError, ServerApi};
use crate::config::DaemonConfig;
use crate::executor::Executor;
use crate::health::HealthProbe;
use crate::journal::Journal;
use crate::state::SharedState;

pub const IMAGE: &str = "ghcr.io/openclaw/openclaw:test";

/// A server that hands out bundles built from the command, and answers heartbeats from a
/// script (then with nothing to do), recording every heartbeat it gets.
#[derive(Default)]
pub struct FakeServer {
    pub files: Mutex<Vec<WorkspaceFile>>,
    pub bundle_error: Mutex<Option<ClientError>>,
    pub expired: AtomicBool,
    pub responses: Mutex<VecDeque<Result<HeartbeatResponse, ClientError>>>,
    pub heartbeats: Mutex<Vec<HeartbeatRequest>>,
    /// Commands [`ServerApi::command`] hands out again; others get a 409.
    pub redeliverable: Mutex<BTreeMap<CommandId, Command>>,
    /// The image bundles name when set, else [`IMAGE`].
    pub image: Mutex<Option<String>>,
    /// Logs uploaded: command, text, truncated.
    pub uploaded_logs: Mutex<Vec<(CommandId, String, bool)>>,
    /// Sealed backup archives by command: uploads land here, downloads come from here.
    pub backups: Mutex<BTreeMap<CommandId, Vec<u8>>>,
}

impl FakeServer {
    pub fn with_files(files: &[(&str, &str)]) -> Self {
        let server = Self::default();
        *server.files.lock().unwrap() = files
            .iter()
            .map(|(path, content)| WorkspaceFile {
                path: (*path).to_owned(),
                content: (*content).to_owned(),
            })
            .collect();
        server
    }

    pub fn script(&self, response: Result<HeartbeatResponse, ClientError>) {
        self.responses.lock().unwrap().push_back(response);
    }

    pub fn heartbeats(&self) -> Vec<HeartbeatRequest> {
        self.heartbeats.lock().unwrap().clone()
    }

    /// Lets the daemon fetch `command` again, as a real server does while it is sent and
    /// not answered.
    pub fn offer_again(&self, command: &Command) {
        self.redeliverable
            .lock()
            .unwrap()
            .insert(command.id, command.clone());
    }
}

pub fn response(commands: Vec<Command>, confirmed: Vec<CommandId>) -> HeartbeatResponse {
    HeartbeatResponse {
        commands,
        confirmed_acks: confirmed,
        next_heartbeat_seconds: 60,
        server_time: Utc::now(),
        desired_agents: None,
    }
}

#[async_trait]
impl ServerApi for FakeServer {
    async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.heartbeats.lock().unwrap().push(request.clone());
        let next = self.responses.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Ok(response(Vec::new(), Vec::new())))
    }

    async fn deploy_bundle(
        &self,
        agent: AgentId,
        command: CommandId,
    ) -> Result<DeployBundle, ClientError> {
        if let Some(err) = self.bundle_error.lock().unwrap().take() {
            return Err(err);
        }
        let expires_in = if self.expired.load(Ordering::SeqCst) {
            chrono::Duration::seconds(-1)
        } else {
            chrono::Duration::minutes(5)
        };
        // An expired bundle is one issued long enough ago that it ran out.
        let issued_at = Utc::now() + expires_in - chrono::Duration::minutes(5);
        let draft = BundleDraft {
            agent_id: agent,
            command_id: command,
            tier: Tier::Standard,
            image: self
                .image
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| IMAGE.to_owned()),
            openclaw_config: serde_json::json!({"gateway": {"mode": "local"}}),
            workspace_files: self.files.lock().unwrap().clone(),
            secrets: BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new("sk-ant-test"))]),
            issued_at,
            expires_at: issued_at + chrono::Duration::minutes(5),
        };
        Ok(draft
            .seal(&session_key(command))
            .expect("a small bundle seals"))
    }

    async fn command(&self, command: CommandId) -> Result<Command, ClientError> {
        self.redeliverable
            .lock()
            .unwrap()
            .get(&command)
            .cloned()
            .ok_or_else(|| ClientError::Status {
                status: 409,
                message: format!("conflict: command {command} is expired, not sent"),
            })
    }

    async fn upload_logs(
        &self,
        command: CommandId,
        text: Vec<u8>,
        truncated: bool,
    ) -> Result<(), ClientError> {
        let text = String::from_utf8(text).expect("uploaded logs are UTF-8");
        self.uploaded_logs
            .lock()
            .unwrap()
            .push((command, text, truncated));
        Ok(())
    }

    async fn upload_backup(&self, command: CommandId, sealed: Vec<u8>) -> Result<(), ClientError> {
        self.backups.lock().unwrap().insert(command, sealed);
        Ok(())
    }

    async fn download_backup(
        &self,
        command: CommandId,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let found = self.backups.lock().unwrap().get(&command).cloned();
        match found {
            Some(sealed) if sealed.len() <= limit => Ok(sealed),
            Some(_) => Err(ClientError::Decode(format!(
                "response larger than {limit} bytes"
            ))),
            None => Err(ClientError::Status {
                status: 404,
                message: format!("no backup for command {command}"),
            }),
        }
    }
}

/// A health probe that always answers the same.
pub struct Probe(pub bool);

#[async_trait]
impl HealthProbe for Probe {
    async fn probe(&self, _port: u16) -> Result<(), String> {
        if self.0 {
            Ok(())
        } else {
            Err("connection refused".to_owned())
        }
    }
}

/// The session key the fake server uses for `command`: derived from the id, the way a
/// real server derives it from its own key.
pub fn session_key(command: CommandId) -> SessionKey {
    SessionKey::from_bytes(*command.0.as_bytes().repeat(2).first_chunk::<32>().unwrap())
}

pub fn command(kind: CommandKind, agent: AgentId) -> Command {
    let id = CommandId::new_random();
    Command {
        id,
        agent_id: agent,
        kind,
        tier: Tier::Standard,
        created_at: Utc::now(),
        session_key: kind.needs_session_key().then(|| session_key(id)),
        params: None,
    }
}

pub fn config(data_dir: &std::path::Path) -> DaemonConfig {
    let mut config = DaemonConfig::new(
        "http://unused.invalid",
        Secret::new("host-key"),
        data_dir.to_owned(),
    );
    // Far from the default range and from ephemeral ports, to avoid clashing with a real
    // daemon on the machine running the tests; a range of its own for each test, so tests
    // running at the same time never see each other's port checks.
    static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);
    let range = NEXT_RANGE.fetch_add(1, Ordering::SeqCst) % 200;
    config.port_range_start = 41000 + range * 10;
    config.health_timeout = Duration::from_secs(30);
    config
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub runtime: Arc<FakeRuntime>,
    pub server: Arc<FakeServer>,
    pub executor: Executor,
}

impl Harness {
    pub fn new(server: FakeServer, healthy: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let runtime = Arc::new(FakeRuntime::new());
        let server = Arc::new(server);
        let state = SharedState::new(Journal::default(), config.journal_path());
        let executor = Executor {
            config: Arc::new(config),
            runtime: runtime.clone(),
            server: server.clone(),
            health: Arc::new(Probe(healthy)),
            state,
            owner: None,
            replay: Default::default(),
        };
        Self {
            dir,
            runtime,
            server,
            executor,
        }
    }

    pub fn first_port(&self) -> u16 {
        self.executor.config.port_range_start
    }

    pub fn state_dir(&self, agent: AgentId) -> std::path::PathBuf {
        self.dir
            .path()
            .join("agents")
            .join(agent.to_string())
            .join("state")
    }
}
