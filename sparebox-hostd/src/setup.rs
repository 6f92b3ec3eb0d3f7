//! What the binary's subcommands need besides the daemon: the config file, choosing and
//! connecting a runtime, enrolling with the server, and the local status table.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sparebox_core::Secret;
use sparebox_protocol::{HeartbeatRequest, IsolationMode, PROTOCOL_VERSION};
use sparebox_runtime::docker::DockerRuntime;
use sparebox_runtime::profile::{ProfileConfig, ProfileRuntime, PROFILE_PORT_SPACING};
use sparebox_runtime::{ContainerState, Runtime};
use tracing::{info, warn};

use crate::client::{ClientError, HttpServerApi, ServerApi};
use crate::config::running_as_root;
use crate::journal::{Journal, JournalError};
use crate::{hardware, DAEMON_VERSION};

/// Where Podman's rootful API socket usually is.
pub const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Errors of the setup steps.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The config file could not be read or written.
    #[error("config file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No runtime could be had.
    #[error("runtime {kind}: {message}")]
    Runtime {
        /// The runtime asked for.
        kind: RuntimeKind,
        /// What is missing.
        message: String,
    },
    /// The server refused or could not check the key.
    #[error("enroll: {0}")]
    Enroll(ClientError),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How agents are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum RuntimeKind {
    /// Docker if its socket answers, else Podman if its socket answers, else plain
    /// OpenClaw processes when an `openclaw` binary is found.
    #[default]
    Auto,
    /// One hardened Docker container per agent.
    Docker,
    /// One hardened Podman container per agent (through Podman's Docker-compatible API).
    Podman,
    /// One plain OpenClaw process per agent: limited isolation.
    Profile,
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeKind::Auto => "auto",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
            RuntimeKind::Profile => "profile",
        })
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(RuntimeKind::Auto),
            "docker" => Ok(RuntimeKind::Docker),
            "podman" => Ok(RuntimeKind::Podman),
            "profile" => Ok(RuntimeKind::Profile),
            other => Err(format!(
                "unknown runtime {other:?}: expected auto, docker, podman or profile"
            )),
        }
    }
}

/// The config file (`hostd.toml`): every setting of `sparebox-hostd run`, all optional.
/// Flags and `SPAREBOX_*` environment variables override it. `Debug` redacts the key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Server base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// Data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    /// Docker socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_socket: Option<String>,
    /// Podman socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub podman_socket: Option<String>,
    /// OpenClaw binary for profile mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openclaw_bin: Option<PathBuf>,
    /// First gateway port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range_start: Option<u16>,
    /// Seconds between heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<u64>,
    /// Seconds a new agent has to pass its health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<u64>,
    /// Seconds before an agent the server no longer lists is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_grace: Option<u64>,
    /// Seconds between checks for newer agent images; 0 turns them off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_check_interval: Option<u64>,
    /// `text` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

impl FileConfig {
    /// Reads the file at `path`; a missing file is an empty configuration.
    ///
    /// # Errors
    ///
    /// [`SetupError::ConfigFile`] when it exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, SetupError> {
        let error = |message: String| SetupError::ConfigFile {
            path: path.to_owned(),
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|err| error(err.to_string())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(error(err.to_string())),
        }
    }

    /// Writes the file at `path` with mode 0600 (its directory 0700 when created),
    /// replacing it atomically.
    ///
    /// # Errors
    ///
    /// [`SetupError::ConfigFile`] when it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), SetupError> {
        let error = |message: String| SetupError::ConfigFile {
            path: path.to_owned(),
            message,
        };
        let text = toml::to_string(self).map_err(|err| error(err.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| error(err.to_string()))?;
        }
        let tmp = path.with_extension("toml.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(
                b"# sparebox-hostd configuration; flags and SPAREBOX_* variables override it\n",
            )?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|err| error(err.to_string()))
    }
}

/// The default config file: `/etc/sparebox/hostd.toml` as root, else
/// `~/.config/sparebox/hostd.toml`.
pub fn default_config_path() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/etc/sparebox/hostd.toml");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config/sparebox/hostd.toml")
}

/// How to reach each runtime.
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Docker socket; `DOCKER_HOST` or the usual socket when `None`.
    pub docker_socket: Option<String>,
    /// Podman socket; [`DEFAULT_PODMAN_SOCKET`] when `None`.
    pub podman_socket: Option<String>,
    /// OpenClaw binary for profile mode; `openclaw` on `PATH` when `None`.
    pub openclaw_bin: Option<PathBuf>,
    /// Where profile agents keep their home and log (`<data-dir>/profiles`).
    pub profile_dir: PathBuf,
}

/// A connected runtime and the gateway port spacing it needs.
pub struct ChosenRuntime {
    /// The runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Which one it is.
    pub kind: RuntimeKind,
    /// Least distance between two agents' gateway ports.
    pub port_spacing: u16,
}

impl fmt::Debug for ChosenRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChosenRuntime")
            .field("kind", &self.kind)
            .field("port_spacing", &self.port_spacing)
            .finish_non_exhaustive()
    }
}

/// Connects the runtime `kind` asks for; `auto` tries Docker, then Podman, then profile
/// mode, and logs a loud warning when it ends up with plain processes.
///
/// # Errors
///
/// [`SetupError::Runtime`] naming what is missing.
pub async fn connect_runtime(
    kind: RuntimeKind,
    options: &RuntimeOptions,
) -> Result<ChosenRuntime, SetupError> {
    match kind {
        RuntimeKind::Docker => docker(options).await,
        RuntimeKind::Podman => podman(options).await,
        RuntimeKind::Profile => profile(options).await,
        RuntimeKind::Auto => {
            let docker_err = match docker(options).await {
                Ok(chosen) => return Ok(chosen),
                Err(err) => err,
            };
            let podman_err = match podman(options).await {
                Ok(chosen) => return Ok(chosen),
                Err(err) => err,
            };
            profile(options)
                .await
                .map_err(|profile_err| SetupError::Runtime {
                    kind,
                    message: format!(
                        "no way to run agents: {docker_err}; {podman_err}; {profile_err} \
                     (install Docker or Podman, or OpenClaw for the limited profile mode)"
                    ),
                })
        }
    }
}

async fn docker(options: &RuntimeOptions) -> Result<ChosenRuntime, SetupError> {
    let runtime = DockerRuntime::connect(options.docker_socket.as_deref())
        .await
        .map_err(|err| SetupError::Runtime {
            kind: RuntimeKind::Docker,
            message: err.to_string(),
        })?;
    // A Docker socket served by Podman counts as Podman.
    let kind = match runtime.isolation() {
        IsolationMode::Podman => RuntimeKind::Podman,
        _ => RuntimeKind::Docker,
    };
    Ok(ChosenRuntime {
        runtime: Arc::new(runtime),
        kind,
        port_spacing: 1,
    })
}

async fn podman(options: &RuntimeOptions) -> Result<ChosenRuntime, SetupError> {
    let socket = options
        .podman_socket
        .clone()
        .unwrap_or_else(|| format!("unix://{DEFAULT_PODMAN_SOCKET}"));
    let runtime =
        DockerRuntime::connect(Some(&socket))
            .await
            .map_err(|err| SetupError::Runtime {
                kind: RuntimeKind::Podman,
                message: err.to_string(),
            })?;
    Ok(ChosenRuntime {
        runtime: Arc::new(runtime),
        kind: RuntimeKind::Podman,
        port_spacing: 1,
    })
}

async fn profile(options: &RuntimeOptions) -> Result<ChosenRuntime, SetupError> {
    let missing = |message: String| SetupError::Runtime {
        kind: RuntimeKind::Profile,
        message,
    };
    let bin = match &options.openclaw_bin {
        Some(bin) if bin.is_file() => bin.clone(),
        Some(bin) => return Err(missing(format!("{} is not a file", bin.display()))),
        None => find_on_path("openclaw")
            .ok_or_else(|| missing("no openclaw binary on PATH (--openclaw-bin)".into()))?,
    };
    warn!(
        openclaw = %bin.display(),
        "PROFILE MODE: agents run as plain processes of this user with NO resource, \
         filesystem or network isolation; install Docker or Podman for real isolation"
    );
    let runtime = ProfileRuntime::new(bin, options.profile_dir.clone(), ProfileConfig::default())
        .await
        .map_err(|err| missing(err.to_string()))?;
    Ok(ChosenRuntime {
        runtime: Arc::new(runtime),
        kind: RuntimeKind::Profile,
        port_spacing: PROFILE_PORT_SPACING,
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Checks `key` against the server at `server` with one heartbeat carrying this host's
/// measured hardware and nothing else (the server has no lighter call for hosts).
///
/// # Errors
///
/// [`SetupError::Enroll`] when the server refuses the key (401/403) or cannot be reached.
pub async fn check_key(
    http: reqwest::Client,
    server: &str,
    key: &Secret,
    data_dir: &Path,
    isolation: IsolationMode,
) -> Result<(), SetupError> {
    let api = HttpServerApi::new(
        http,
        server,
        key.clone(),
        std::time::Duration::from_secs(30),
    );
    let probe_dir = if data_dir.exists() {
        data_dir
    } else {
        Path::new("/")
    };
    let request = HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: DAEMON_VERSION.to_owned(),
        hardware: hardware::measure(probe_dir, hardware::probe_gpu().await),
        isolation,
        agent_statuses: Vec::new(),
        command_acks: Vec::new(),
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    };
    api.heartbeat(&request).await.map_err(SetupError::Enroll)?;
    info!(server, "the server accepted the host key");
    Ok(())
}

/// One line of `sparebox-hostd status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusLine {
    /// The agent.
    pub agent: String,
    /// Its tier.
    pub tier: String,
    /// What the runtime says, or why it cannot say.
    pub state: String,
    /// Its gateway port.
    pub port: String,
    /// The container (or process) id.
    pub container: String,
}

/// What the daemon manages, from the journal in `data_dir` and the runtime (when one is
/// given), without contacting the server. Containers the journal does not know are listed
/// too, as `unrecorded`.
///
/// # Errors
///
/// [`SetupError::Journal`] when the journal cannot be read.
pub async fn status(
    data_dir: &Path,
    runtime: Option<&dyn Runtime>,
) -> Result<Vec<StatusLine>, SetupError> {
    let journal = Journal::load(&data_dir.join("journal.json"))?;
    let mut lines = Vec::new();
    let listed = match runtime {
        Some(runtime) => runtime.list().await.map_err(|err| err.to_string()),
        None => Err("no runtime".to_owned()),
    };
    for record in &journal.agents {
        let container = listed
            .as_ref()
            .map(|all| all.iter().find(|c| c.agent == record.agent_id).cloned());
        let (state, id) = match container {
            Ok(Some(c)) => (state_name(c.state, record.stopped), c.container_id),
            Ok(None) => ("missing".to_owned(), "-".to_owned()),
            Err(err) => (format!("unknown ({err})"), "-".to_owned()),
        };
        lines.push(StatusLine {
            agent: record.agent_id.to_string(),
            tier: record.tier.as_str().to_owned(),
            state,
            port: record.gateway_port.to_string(),
            container: short(&id),
        });
    }
    if let Ok(all) = &listed {
        for c in all
            .iter()
            .filter(|c| !journal.agents.iter().any(|r| r.agent_id == c.agent))
        {
            lines.push(StatusLine {
                agent: c.agent.to_string(),
                tier: "-".to_owned(),
                state: format!("{} (unrecorded)", state_name(c.state, false)),
                port: "-".to_owned(),
                container: short(&c.container_id),
            });
        }
    }
    Ok(lines)
}

fn state_name(state: ContainerState, stopped: bool) -> String {
    match state {
        ContainerState::Running => "running",
        ContainerState::Restarting => "restarting",
        ContainerState::Created => "created",
        ContainerState::Exited if stopped => "stopped",
        ContainerState::Exited => "exited",
        ContainerState::Other => "other",
    }
    .to_owned()
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Formats status lines as an aligned table with a header.
pub fn status_table(lines: &[StatusLine]) -> String {
    let header = StatusLine {
        agent: "AGENT".into(),
        tier: "TIER".into(),
        state: "STATE".into(),
        port: "PORT".into(),
        container: "CONTAINER".into(),
    };
    let rows: Vec<&StatusLine> = std::iter::once(&header).chain(lines).collect();
    let width = |f: fn(&StatusLine) -> &str| rows.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let (a, t, s, p) = (
        width(|r| &r.agent),
        width(|r| &r.tier),
        width(|r| &r.state),
        width(|r| &r.port),
    );
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{:a$}  {:t$}  {:s$}  {:p$}  {}\n",
            r.agent, r.tier, r.state, r.port, r.container
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use sparebox_core::{AgentId, Tier};
    use sparebox_runtime::fake::FakeRuntime;

    use super::*;
    use crate::journal::AgentRecord;

    #[test]
    fn config_file_round_trips_private_and_redacted_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/hostd.toml");
        let config = FileConfig {
            server: Some("https://sparebox.example".into()),
            key: Some(Secret::new("sbx_host_supersecret")),
            runtime: Some(RuntimeKind::Docker),
            port_range_start: Some(20000),
            ..FileConfig::default()
        };

        config.save(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(FileConfig::load(&path).unwrap(), config);
        assert!(!format!("{config:?}").contains("supersecret"));
    }

    #[test]
    fn missing_config_file_is_empty_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            FileConfig::load(&dir.path().join("none.toml")).unwrap(),
            FileConfig::default()
        );
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "sever = \"typo\"\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("sever"), "{err}");
    }

    #[tokio::test]
    async fn profile_mode_without_openclaw_is_a_clear_error() {
        let options = RuntimeOptions {
            openclaw_bin: Some(PathBuf::from("/nonexistent/openclaw")),
            ..RuntimeOptions::default()
        };
        let err = connect_runtime(RuntimeKind::Profile, &options)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("runtime profile: /nonexistent/openclaw"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn status_lists_journal_agents_and_unrecorded_containers() {
        let dir = tempfile::tempdir().unwrap();
        let (known, stray) = (AgentId::new_random(), AgentId::new_random());
        let journal = Journal {
            version: crate::journal::JOURNAL_VERSION,
            agents: vec![AgentRecord {
                agent_id: known,
                gateway_port: 19001,
                tier: Tier::Pro,
                stopped: true,
            }],
            ..Journal::default()
        };
        journal.save(&dir.path().join("journal.json")).unwrap();
        let runtime = FakeRuntime::new();
        let mut info = FakeRuntime::running_container(known, "abcdef0123456789".into(), "i");
        info.state = ContainerState::Exited;
        runtime.insert_container(info);
        runtime.insert_container(FakeRuntime::running_container(stray, "ffff".into(), "i"));

        let lines = status(dir.path(), Some(&runtime)).await.unwrap();

        assert_eq!(lines.len(), 2);
        assert_eq!(
            (
                lines[0].state.as_str(),
                lines[0].port.as_str(),
                lines[0].container.as_str()
            ),
            ("stopped", "19001", "abcdef012345")
        );
        assert_eq!(lines[1].state, "running (unrecorded)");
        let table = status_table(&lines);
        assert!(table.starts_with("AGENT"), "{table}");
        assert_eq!(table.lines().count(), 3);
    }
}
