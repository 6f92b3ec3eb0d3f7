//! [`ProfileRuntime`]: one plain OpenClaw process per agent, for hosts without a container
//! engine.
//!
//! Each agent runs as `openclaw --profile sparebox-agent-<short id> gateway --port P --bind
//! loopback`, a child of the daemon in its own process group, with:
//!
//! - `HOME` at `<base dir>/sparebox-agent-<short id>/home` (mode 0700), and OpenClaw's state
//!   in the spec's state directory (`OPENCLAW_STATE_DIR`, `OPENCLAW_CONFIG_PATH` =
//!   `<state dir>/openclaw.json`, `XDG_CACHE_HOME` = `<state dir>/.cache`), so the agent never
//!   touches the daemon user's `~/.openclaw`;
//! - standard output and error appended to `<agent dir>/gateway.log`;
//! - the spec's environment, secrets included, passed to the process only: secrets are never
//!   written to disk (the record file holds their names), so an agent started with secrets
//!   that a later daemon finds exited cannot be restarted from its record and must be
//!   created again;
//! - `NODE_OPTIONS=--max-old-space-size` from the tier, and the directory of the OpenClaw
//!   binary first on `PATH` (npm puts `node` there too).
//!
//! A supervisor task per agent restarts a process that exits on its own after an
//! exponential backoff, and gives up (a crash loop, reported as
//! [`RuntimeEventKind::CrashLoop`](crate::RuntimeEventKind::CrashLoop)) after [`ProfileConfig::crash_loop_failures`] quick
//! failures in a row. A watchdog sums the resident memory of the agent's whole process tree
//! from `/proc` and kills the tree when it stays above the tier's RAM for longer than
//! [`ProfileConfig::memory_window`].
//!
//! After a daemon restart, [`ProfileRuntime::new`] finds agents again from their record
//! (`agent.json`: pid and process start time from `/proc/<pid>/stat`, so a reused pid is not
//! mistaken for the agent). Dropping the runtime leaves agents running.
//!
//! # What it does not isolate
//!
//! Nothing beyond what the operating system gives any process of the daemon's user: no
//! memory or CPU limit (the watchdog is after the fact), no filesystem isolation (the agent
//! can read and write whatever the daemon's user can, including other agents' state), no
//! network isolation (it reaches everything the host reaches, loopback included, though its
//! gateway listens on loopback only), no pids limit. Its environment, secrets included, is
//! readable in `/proc/<pid>/environ` by the same user and root. [`Runtime::inspect`]
//! therefore never reports the isolation as verified.
//!
//! # Ports
//!
//! OpenClaw's gateway also listens on ports near its own (base + 2, base + 11 and up), so
//! profile agents' gateway ports must be at least [`PROFILE_PORT_SPACING`] apart; creating
//! an agent closer than that to another one fails. An allocator should hand out
//! `first + k * PROFILE_PORT_SPACING` and check that the whole range `P .. P +
//! PROFILE_PORT_SPACING` is free.

mod logs;
mod procfs;
mod record;
mod supervisor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sparebox_core::{AgentId, Tier};
use sparebox_protocol::{IsolationMode, IsolationReport};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    agent_container_name, AgentSpec, AgentStats, ContainerInfo, ContainerState, Fingerprint,
    Runtime, RuntimeError, RuntimeEvent, RuntimeResult,
};
use record::AgentRecord;
use supervisor::{Control, Settings, Status, Supervisor};

/// The least distance between two profile agents' gateway ports: the gateway also uses
/// ports above its own (base + 2, base + 11 and up).
pub const PROFILE_PORT_SPACING: u16 = 20;

/// The log file, inside the agent's directory, that receives its output.
pub const LOG_FILE: &str = "gateway.log";

/// The mismatch line every profile agent's isolation report carries.
pub const PROFILE_MISMATCH: &str =
    "isolation: plain process, no resource or filesystem isolation != container";

/// Environment variables the runtime sets itself; values from the spec under these names
/// are replaced.
const RESERVED_ENV: [&str; 9] = [
    "HOME",
    "PATH",
    "NODE_OPTIONS",
    "XDG_CACHE_HOME",
    "OPENCLAW_HOME",
    "OPENCLAW_PROFILE",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_GATEWAY_PORT",
];

/// `PATH` after the OpenClaw binary's directory when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a CPU sample for [`Runtime::stats`] lasts.
const CPU_SAMPLE: Duration = Duration::from_millis(250);

/// Capacity of the event channel; a subscriber further behind gets an error item.
const EVENT_CAPACITY: usize = 256;

/// Timing of the supervisor and the watchdog.
#[derive(Clone, Debug)]
pub struct ProfileConfig {
    /// How long the process tree's memory may stay above the tier's RAM before the watchdog
    /// kills it. Default 60 s.
    pub memory_window: Duration,
    /// How often the watchdog measures. Default 5 s.
    pub watchdog_interval: Duration,
    /// The first restart delay after a crash; doubled after each quick failure. Default 1 s.
    pub backoff_initial: Duration,
    /// The longest restart delay. Default 60 s.
    pub backoff_max: Duration,
    /// A run shorter than this counts as a quick failure. Default 30 s.
    pub quick_failure: Duration,
    /// Quick failures in a row after which the agent is left down (crash loop). Default 5.
    pub crash_loop_failures: u32,
    /// The grace period between SIGTERM and SIGKILL when an agent is removed. Default 10 s.
    pub remove_grace: Duration,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            memory_window: Duration::from_secs(60),
            watchdog_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            quick_failure: Duration::from_secs(30),
            crash_loop_failures: 5,
            remove_grace: Duration::from_secs(10),
        }
    }
}

/// One managed agent.
#[derive(Debug)]
struct Handle {
    control: mpsc::Sender<Control>,
    status: Arc<Mutex<Status>>,
    record: AgentRecord,
}

/// Runs agents as plain OpenClaw processes (profiles) on this host.
#[derive(Clone, Debug)]
pub struct ProfileRuntime {
    settings: Arc<Settings>,
    /// The OpenClaw version `openclaw_bin --version` printed, once a fingerprint asked.
    version: Arc<std::sync::OnceLock<String>>,
    base_dir: PathBuf,
    agents: Arc<Mutex<HashMap<AgentId, Handle>>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl ProfileRuntime {
    /// A runtime that starts `openclaw_bin` for each agent, keeping each agent's home, log
    /// and record under `base_dir/sparebox-agent-<short id>`. Agents recorded there by an
    /// earlier daemon are found again: running ones are watched, exited ones are listed as
    /// exited. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unavailable`] when `base_dir` cannot be created or read.
    pub async fn new(
        openclaw_bin: PathBuf,
        base_dir: PathBuf,
        config: ProfileConfig,
    ) -> RuntimeResult<Self> {
        let unavailable = |err: std::io::Error| {
            RuntimeError::Unavailable(format!(
                "profile base directory {}: {err}",
                base_dir.display()
            ))
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&base_dir)
                .map_err(unavailable)?;
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let runtime = Self {
            settings: Arc::new(Settings {
                openclaw_bin,
                config,
            }),
            version: Arc::default(),
            base_dir: base_dir.clone(),
            agents: Arc::new(Mutex::new(HashMap::new())),
            events,
        };
        for entry in std::fs::read_dir(&base_dir).map_err(unavailable)? {
            let dir = entry.map_err(unavailable)?.path();
            if dir.join(record::RECORD_FILE).is_file() {
                runtime.adopt(&dir);
            }
        }
        tracing::info!(
            profile.base_dir = %base_dir.display(),
            profile.openclaw = %runtime.settings.openclaw_bin.display(),
            agents = runtime.lock().len(),
            "profile runtime ready"
        );
        Ok(runtime)
    }

    /// Picks up an agent recorded by an earlier daemon.
    fn adopt(&self, dir: &Path) {
        let record = match record::read(dir) {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "unreadable profile agent record; ignoring it");
                return;
            }
        };
        if dir.file_name().and_then(|n| n.to_str()) != Some(&agent_container_name(record.agent)) {
            tracing::warn!(dir = %dir.display(), "profile agent record in a directory of another name; ignoring it");
            return;
        }
        let alive = record
            .process
            .filter(|p| procfs::is_same_process(p.pid, p.start_ticks));
        // Without secrets the spec can be rebuilt from the record, so it can be restarted.
        let spec = match (record.secret_names.is_empty(), record.tier()) {
            (true, Some(tier)) => Some(AgentSpec {
                agent: record.agent,
                tier,
                image: self.settings.openclaw_bin.display().to_string(),
                gateway_port: record.gateway_port,
                state_dir: record.state_dir.clone(),
                env: record.env.clone(),
                secret_env: Default::default(),
            }),
            _ => None,
        };
        let status = Status {
            state: if alive.is_some() {
                ContainerState::Running
            } else {
                ContainerState::Exited
            },
            pid: alive.map(|p| p.pid),
            started_at: None,
            restart_count: 0,
            exit_code: None,
            oom_killed: false,
            crash_loop: false,
        };
        tracing::info!(agent.id = %record.agent, running = alive.is_some(), "found profile agent from an earlier daemon");
        self.launch(record, spec, dir.to_owned(), status, alive, None);
    }

    /// Registers an agent and starts its supervisor.
    fn launch(
        &self,
        record: AgentRecord,
        spec: Option<AgentSpec>,
        dir: PathBuf,
        status: Status,
        adopted: Option<record::RecordedProcess>,
        start: Option<oneshot::Sender<RuntimeResult<()>>>,
    ) {
        let (control, receiver) = mpsc::channel(8);
        let status = Arc::new(Mutex::new(status));
        let supervisor = Supervisor {
            agent: record.agent,
            spec,
            dir,
            record: record.clone(),
            settings: Arc::clone(&self.settings),
            status: Arc::clone(&status),
            events: self.events.clone(),
            control: receiver,
        };
        self.lock().insert(
            record.agent,
            Handle {
                control,
                status,
                record,
            },
        );
        tokio::spawn(supervisor.run(adopted, start));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Handle>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn agent_dir(&self, agent: AgentId) -> PathBuf {
        self.base_dir.join(agent_container_name(agent))
    }

    fn control(&self, agent: AgentId) -> RuntimeResult<mpsc::Sender<Control>> {
        self.lock()
            .get(&agent)
            .map(|h| h.control.clone())
            .ok_or(RuntimeError::NotFound(agent))
    }

    /// Sends a request to the agent's supervisor and waits for the answer.
    async fn ask<T>(
        &self,
        agent: AgentId,
        operation: &'static str,
        request: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> RuntimeResult<T> {
        let control = self.control(agent)?;
        let (reply, answer) = oneshot::channel();
        let gone = || RuntimeError::Engine {
            operation,
            agent,
            message: "its supervisor has ended".to_owned(),
        };
        control.send(request(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    fn info(&self, agent: AgentId, handle: &Handle) -> ContainerInfo {
        let status = handle
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        ContainerInfo {
            agent,
            container_id: agent_container_name(agent),
            state: status.state,
            image: self.settings.openclaw_bin.display().to_string(),
            started_at: status.started_at,
            restart_count: status.restart_count,
            oom_killed: status.oom_killed,
            exit_code: (status.state == ContainerState::Exited)
                .then_some(status.exit_code)
                .flatten(),
            memory_limit_bytes: handle.record.tier().map(tier_memory_bytes),
            isolation: IsolationReport {
                verified: false,
                mismatches: vec![PROFILE_MISMATCH.to_owned()],
            },
            image_id: None,
            openclaw_version: self.version.get().cloned(),
        }
    }

    /// Whether the agent's supervisor gave up restarting it after repeated quick failures.
    /// A [`Runtime::start`] clears it.
    pub fn is_crash_looping(&self, agent: AgentId) -> bool {
        self.lock().get(&agent).is_some_and(|h| {
            h.status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .crash_loop
        })
    }

    /// The agent's log file (its gateway's output).
    pub fn log_path(&self, agent: AgentId) -> PathBuf {
        self.agent_dir(agent).join(LOG_FILE)
    }

    fn check_spec(&self, spec: &AgentSpec) -> RuntimeResult<()> {
        let invalid = |message: String| RuntimeError::Engine {
            operation: "create",
            agent: spec.agent,
            message,
        };
        if spec.gateway_port == 0 || spec.gateway_port > u16::MAX - PROFILE_PORT_SPACING {
            return Err(invalid(format!(
                "gateway port {} leaves no room for the gateway's nearby ports",
                spec.gateway_port
            )));
        }
        let state_dir = &spec.state_dir;
        if !state_dir.is_absolute() || !state_dir.is_dir() {
            return Err(invalid(format!(
                "state directory {} must be an existing absolute directory",
                state_dir.display()
            )));
        }
        for name in spec.env.keys().chain(spec.secret_env.keys()) {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(format!(
                    "invalid environment variable name {name:?}"
                )));
            }
        }
        let values = spec
            .env
            .values()
            .map(String::as_str)
            .chain(spec.secret_env.values().map(|s| s.expose()));
        if values.into_iter().any(|v| v.contains('\0')) {
            return Err(invalid("environment value contains a NUL byte".to_owned()));
        }
        Ok(())
    }
}

/// The tier's RAM in bytes.
fn tier_memory_bytes(tier: Tier) -> u64 {
    tier.resources().ram_mb.saturating_mul(1024 * 1024)
}

/// The process environment for `spec`: its variables and secrets, then the runtime's own.
/// Holds secrets: never log it.
pub(crate) fn environment(
    spec: &AgentSpec,
    home: &Path,
    openclaw_bin: &Path,
) -> Vec<(String, String)> {
    let mut env: HashMap<String, String> = spec.env.clone().into_iter().collect();
    for (key, value) in &spec.secret_env {
        env.insert(key.clone(), value.expose().to_owned());
    }
    for reserved in RESERVED_ENV {
        env.remove(reserved);
    }
    let inherited_path = std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_owned());
    let path = match openclaw_bin.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => format!("{}:{inherited_path}", dir.display()),
        None => inherited_path,
    };
    let state = &spec.state_dir;
    env.insert("PATH".to_owned(), path);
    env.insert("HOME".to_owned(), home.display().to_string());
    env.insert("OPENCLAW_STATE_DIR".to_owned(), state.display().to_string());
    env.insert(
        "OPENCLAW_CONFIG_PATH".to_owned(),
        state.join("openclaw.json").display().to_string(),
    );
    env.insert(
        "XDG_CACHE_HOME".to_owned(),
        state.join(".cache").display().to_string(),
    );
    env.insert(
        "NODE_OPTIONS".to_owned(),
        format!("--max-old-space-size={}", spec.tier.node_heap_mb()),
    );
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    env.sort();
    env
}

fn cgroup_version() -> Option<u8> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Some(2)
    } else if Path::new("/sys/fs/cgroup/memory").exists() {
        Some(1)
    } else {
        None
    }
}

#[async_trait]
impl Runtime for ProfileRuntime {
    fn isolation(&self) -> IsolationMode {
        IsolationMode::Profile
    }

    async fn fingerprint(&self) -> RuntimeResult<Fingerprint> {
        let bin = &self.settings.openclaw_bin;
        let mut command = tokio::process::Command::new(bin);
        command.arg("--version").kill_on_drop(true);
        if let Some(dir) = bin.parent() {
            let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
            command.env("PATH", format!("{}:{path}", dir.display()));
        }
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .map_err(|_| {
                RuntimeError::Unavailable(format!("{} --version: timed out", bin.display()))
            })?
            .map_err(|err| {
                RuntimeError::Unavailable(format!("{} --version: {err}", bin.display()))
            })?;
        let version = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned();
        if let Some(number) = version_number(&version) {
            // The binary is fixed for the runtime's life, so the first answer stands.
            let _ = self.version.set(number.to_owned());
        }
        Ok(Fingerprint {
            engine: IsolationMode::Profile.as_str().to_owned(),
            version,
            cgroup_version: cgroup_version(),
            rootless: !rustix::process::getuid().is_root(),
        })
    }

    /// Profile agents run the configured OpenClaw binary whatever the image names; this
    /// checks that the binary is there and executable.
    async fn ensure_image(&self, image: &str) -> RuntimeResult<()> {
        use std::os::unix::fs::PermissionsExt;
        let bin = &self.settings.openclaw_bin;
        match std::fs::metadata(bin) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
            Ok(_) => Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: format!("{} is not an executable file", bin.display()),
            }),
            Err(err) => Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: format!("{}: {err}", bin.display()),
            }),
        }
    }

    async fn create_and_start(&self, spec: &AgentSpec) -> RuntimeResult<ContainerInfo> {
        let agent = spec.agent;
        self.check_spec(spec)?;
        let name = agent_container_name(agent);
        let dir = self.agent_dir(agent);
        let record = AgentRecord {
            agent,
            tier: spec.tier.as_str().to_owned(),
            gateway_port: spec.gateway_port,
            state_dir: spec.state_dir.clone(),
            env: spec.env.clone(),
            secret_names: spec.secret_env.keys().cloned().collect(),
            process: None,
        };
        {
            let agents = self.lock();
            if agents.contains_key(&agent) || dir.exists() {
                return Err(RuntimeError::Engine {
                    operation: "create",
                    agent,
                    message: format!("profile {name} already exists"),
                });
            }
            let near = agents.iter().find(|(_, h)| {
                h.record.gateway_port.abs_diff(spec.gateway_port) < PROFILE_PORT_SPACING
            });
            if let Some((other, h)) = near {
                return Err(RuntimeError::Engine {
                    operation: "create",
                    agent,
                    message: format!(
                        "gateway port {} is within {PROFILE_PORT_SPACING} of agent {other}'s port {}",
                        spec.gateway_port, h.record.gateway_port
                    ),
                });
            }
        }
        let failed = |err: std::io::Error| RuntimeError::Engine {
            operation: "create",
            agent,
            message: format!("agent directory {}: {err}", dir.display()),
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(failed)?;
        }
        record::write(&dir, &record).map_err(failed)?;

        let status = Status {
            state: ContainerState::Created,
            pid: None,
            started_at: None,
            restart_count: 0,
            exit_code: None,
            oom_killed: false,
            crash_loop: false,
        };
        let (reply, answer) = oneshot::channel();
        self.launch(
            record,
            Some(spec.clone()),
            dir.clone(),
            status,
            None,
            Some(reply),
        );
        let started = answer.await.unwrap_or_else(|_| {
            Err(RuntimeError::Engine {
                operation: "create",
                agent,
                message: "its supervisor has ended".to_owned(),
            })
        });
        if let Err(err) = started {
            if let Err(cleanup) = self.remove(agent).await {
                tracing::warn!(agent.id = %agent, error = %cleanup, "could not remove failed profile agent");
            }
            return Err(err);
        }
        let info = self
            .inspect(agent)
            .await?
            .ok_or(RuntimeError::NotFound(agent))?;
        tracing::info!(agent.id = %agent, agent.tier = spec.tier.as_str(), port = spec.gateway_port, "profile agent created");
        Ok(info)
    }

    async fn start(&self, agent: AgentId) -> RuntimeResult<()> {
        self.ask(agent, "start", Control::Start).await?
    }

    async fn stop(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        self.ask(agent, "stop", |reply| Control::Stop(grace, reply))
            .await
    }

    async fn restart(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        self.stop(agent, grace).await?;
        self.start(agent).await
    }

    async fn remove(&self, agent: AgentId) -> RuntimeResult<()> {
        match self.ask(agent, "remove", Control::Remove).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
        self.lock().remove(&agent);
        // A record left without a supervisor (never adopted) goes too.
        let dir = self.agent_dir(agent);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                return Err(RuntimeError::Engine {
                    operation: "remove",
                    agent,
                    message: format!("agent directory {}: {err}", dir.display()),
                });
            }
        }
        Ok(())
    }

    async fn inspect(&self, agent: AgentId) -> RuntimeResult<Option<ContainerInfo>> {
        Ok(self.lock().get(&agent).map(|h| self.info(agent, h)))
    }

    async fn stats(&self, agent: AgentId) -> RuntimeResult<AgentStats> {
        let (pid, limit) = {
            let agents = self.lock();
            let handle = agents.get(&agent).ok_or(RuntimeError::NotFound(agent))?;
            let pid = handle.status.lock().unwrap_or_else(|e| e.into_inner()).pid;
            (pid, handle.record.tier().map_or(0, tier_memory_bytes))
        };
        let pid = pid.ok_or_else(|| RuntimeError::Engine {
            operation: "stats",
            agent,
            message: "agent is not running".to_owned(),
        })?;
        let before = procfs::tree_cpu_ticks(&procfs::process_tree(pid));
        let started = tokio::time::Instant::now();
        tokio::time::sleep(CPU_SAMPLE).await;
        let tree = procfs::process_tree(pid);
        let elapsed = started.elapsed().as_secs_f64();
        let ticks = procfs::tree_cpu_ticks(&tree).saturating_sub(before);
        let cpu_percent = if elapsed > 0.0 {
            ticks as f64 / procfs::ticks_per_second() as f64 / elapsed * 100.0
        } else {
            0.0
        };
        Ok(AgentStats {
            cpu_percent,
            memory_bytes: procfs::tree_rss_bytes(&tree),
            memory_limit_bytes: limit,
        })
    }

    async fn logs(&self, agent: AgentId, query: crate::LogQuery) -> RuntimeResult<Vec<u8>> {
        self.read_logs(agent, query).await
    }

    async fn secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<sparebox_core::Secret>> {
        self.read_secret_values(agent).await
    }

    async fn list(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        let agents = self.lock();
        Ok(agents
            .iter()
            .map(|(agent, handle)| self.info(*agent, handle))
            .collect())
    }

    fn events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let receiver = self.events.subscribe();
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move {
                match receiver.recv().await {
                    Ok(event) => Some((Ok(event), receiver)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Some((
                        Err(RuntimeError::Unavailable(format!(
                            "profile events: subscriber fell behind and missed {missed} events"
                        ))),
                        receiver,
                    )),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            },
        ))
    }
}

/// The first word of `openclaw --version`'s output that looks like a version number
/// (`2026.9.6` in `OpenClaw 2026.9.6 (abc123)`).
fn version_number(output: &str) -> Option<&str> {
    output
        .split_whitespace()
        .map(|word| word.trim_start_matches('v'))
        .find(|word| {
            word.contains('.')
                && word
                    .split('.')
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_number_is_found_in_the_version_line() {
        assert_eq!(
            super::version_number("OpenClaw 2026.9.6 (3f2a1c)"),
            Some("2026.9.6")
        );
        assert_eq!(super::version_number("v2026.10.1"), Some("2026.10.1"));
        assert_eq!(super::version_number("openclaw dev build"), None);
        assert_eq!(super::version_number("1..2"), None);
    }

    use std::collections::BTreeMap;

    use sparebox_core::Secret;

    use super::*;

    #[test]
    fn environment_points_openclaw_at_the_agent_state_and_keeps_secrets_in_memory() {
        let spec = AgentSpec {
            agent: AgentId::new_random(),
            tier: Tier::Standard,
            image: String::new(),
            gateway_port: 19100,
            state_dir: "/srv/agents/a/state".into(),
            env: BTreeMap::from([
                ("HOME".to_owned(), "/root".to_owned()),
                ("OPENCLAW_SKIP_CHANNELS".to_owned(), "1".to_owned()),
            ]),
            secret_env: BTreeMap::from([("OPENCLAW_GATEWAY_TOKEN".to_owned(), Secret::new("t0k"))]),
        };
        let env: HashMap<String, String> = environment(
            &spec,
            Path::new("/srv/agents/a/home"),
            Path::new("/opt/oc/node_modules/.bin/openclaw"),
        )
        .into_iter()
        .collect();
        assert_eq!(env["HOME"], "/srv/agents/a/home");
        assert_eq!(env["OPENCLAW_STATE_DIR"], "/srv/agents/a/state");
        assert_eq!(
            env["OPENCLAW_CONFIG_PATH"],
            "/srv/agents/a/state/openclaw.json"
        );
        assert_eq!(env["XDG_CACHE_HOME"], "/srv/agents/a/state/.cache");
        assert_eq!(env["NODE_OPTIONS"], "--max-old-space-size=1536");
        assert!(env["PATH"].starts_with("/opt/oc/node_modules/.bin:"));
        assert_eq!(env["OPENCLAW_GATEWAY_TOKEN"], "t0k");
        assert_eq!(env["OPENCLAW_SKIP_CHANNELS"], "1");
    }
}
