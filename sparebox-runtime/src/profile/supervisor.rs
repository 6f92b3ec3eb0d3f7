//! One task per profile agent: starts its process, watches it, restarts it after a crash
//! with exponential backoff, gives up after repeated quick failures, and kills its process
//! tree when the memory watchdog fires or when asked to stop.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustix::process::{kill_process_group, Pid, Signal};
use sparebox_core::AgentId;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::procfs;
use super::record::{self, AgentRecord, RecordedProcess};
use super::{ProfileConfig, LOG_FILE};
use crate::{
    agent_container_name, AgentSpec, ContainerState, RuntimeError, RuntimeEvent, RuntimeEventKind,
    RuntimeResult,
};

/// How often an adopted process (not this daemon's child) is checked for having exited.
const ADOPTED_POLL: Duration = Duration::from_millis(500);

/// What the runtime asks of a supervisor.
#[derive(Debug)]
pub(crate) enum Control {
    /// Run the agent (again); answered once it runs or failed to start.
    Start(oneshot::Sender<RuntimeResult<()>>),
    /// Stop it: SIGTERM to its process group, SIGKILL after the grace period.
    Stop(Duration, oneshot::Sender<()>),
    /// Stop it and end the supervisor.
    Remove(oneshot::Sender<()>),
}

/// What the runtime reports about an agent, kept current by its supervisor.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    /// The state, in container terms.
    pub state: ContainerState,
    /// The running process (also its process group).
    pub pid: Option<u32>,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// Restarts done by the supervisor since the last requested start.
    pub restart_count: u32,
    /// Exit code of the last exit, when known.
    pub exit_code: Option<i64>,
    /// Whether the watchdog killed it for memory.
    pub oom_killed: bool,
    /// Whether the supervisor gave up after repeated quick failures.
    pub crash_loop: bool,
}

/// Settings every supervisor shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub openclaw_bin: PathBuf,
    pub config: ProfileConfig,
}

/// A process the supervisor watches: its own child, or one found after a daemon restart.
enum Process {
    Child(tokio::process::Child, u32),
    Adopted(u32, u64),
}

impl Process {
    fn pid(&self) -> u32 {
        match self {
            Process::Child(_, pid) | Process::Adopted(pid, _) => *pid,
        }
    }

    /// Waits for the process to end; its exit code (128 + signal when killed by one), or
    /// `None` when it is not this process's child and the code is unknowable. Cancel-safe.
    async fn wait(&mut self) -> Option<i64> {
        match self {
            Process::Child(child, _) => {
                use std::os::unix::process::ExitStatusExt;
                let status = child.wait().await.ok()?;
                status
                    .code()
                    .map(i64::from)
                    .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
            }
            Process::Adopted(pid, start_ticks) => {
                while procfs::is_same_process(*pid, *start_ticks) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                None
            }
        }
    }
}

/// How a watched run ended.
enum Outcome {
    Exited {
        code: Option<i64>,
        oom: bool,
    },
    Stopped {
        code: Option<i64>,
        reply: oneshot::Sender<()>,
    },
    Removed(oneshot::Sender<()>),
    Detached,
}

/// The task behind one agent.
pub(crate) struct Supervisor {
    pub agent: AgentId,
    /// The full spec, secrets included, when this daemon created the agent; `None` for an
    /// adopted agent started with secrets, which cannot be started again from its record.
    pub spec: Option<AgentSpec>,
    pub dir: PathBuf,
    pub record: AgentRecord,
    pub settings: Arc<Settings>,
    pub status: Arc<Mutex<Status>>,
    pub events: broadcast::Sender<RuntimeEvent>,
    pub control: mpsc::Receiver<Control>,
}

impl Supervisor {
    /// Runs until the agent is removed or the runtime is dropped. `adopted` is a running
    /// process found from the record; without one the agent is started when `start` is set.
    pub(crate) async fn run(
        mut self,
        adopted: Option<RecordedProcess>,
        start: Option<oneshot::Sender<RuntimeResult<()>>>,
    ) {
        let mut process = adopted.map(|p| Process::Adopted(p.pid, p.start_ticks));
        let mut want_running = process.is_some() || start.is_some();
        let mut pending_start = start;
        let mut failures = 0u32;
        let mut restarting = false;

        loop {
            let mut running = match process.take() {
                Some(running) => running,
                None if !want_running => match self.control.recv().await {
                    None => return,
                    Some(Control::Start(reply)) => {
                        want_running = true;
                        failures = 0;
                        restarting = false;
                        self.update(|s| {
                            s.crash_loop = false;
                            s.restart_count = 0;
                        });
                        pending_start = Some(reply);
                        continue;
                    }
                    Some(Control::Stop(_, reply)) => {
                        let _ = reply.send(());
                        continue;
                    }
                    Some(Control::Remove(reply)) => {
                        self.cleanup();
                        let _ = reply.send(());
                        return;
                    }
                },
                None => match self.spawn(restarting) {
                    Ok(running) => {
                        if let Some(reply) = pending_start.take() {
                            let _ = reply.send(Ok(()));
                        }
                        running
                    }
                    Err(err) => {
                        if let Some(reply) = pending_start.take() {
                            let _ = reply.send(Err(err));
                            want_running = false;
                            self.update(|s| s.state = ContainerState::Exited);
                            continue;
                        }
                        tracing::warn!(agent.id = %self.agent, error = %err, "profile agent restart failed");
                        failures += 1;
                        match self.after_failure(failures).await {
                            Some(true) => {
                                restarting = true;
                                continue;
                            }
                            Some(false) => {
                                want_running = false;
                                continue;
                            }
                            None => return,
                        }
                    }
                },
            };

            let started = Instant::now();
            let outcome = self.watch(&mut running).await;
            match outcome {
                Outcome::Detached => return,
                Outcome::Removed(reply) => {
                    self.exited(None, false);
                    self.cleanup();
                    let _ = reply.send(());
                    return;
                }
                Outcome::Stopped { code, reply } => {
                    self.exited(code, false);
                    want_running = false;
                    let _ = reply.send(());
                }
                Outcome::Exited { code, oom } => {
                    self.exited(code, oom);
                    if self.spec.is_none() {
                        tracing::warn!(agent.id = %self.agent, "adopted profile agent exited; its secrets are not kept, so it is not restarted");
                        want_running = false;
                        continue;
                    }
                    let quick = started.elapsed() < self.settings.config.quick_failure;
                    failures = if quick { failures + 1 } else { 1 };
                    match self.after_failure(failures).await {
                        Some(true) => restarting = true,
                        Some(false) => want_running = false,
                        None => return,
                    }
                }
            }
        }
    }

    /// After a failure: `Some(true)` to restart once the backoff has passed, `Some(false)`
    /// when the agent should stay down (crash loop, or stopped meanwhile), `None` when it was
    /// removed or the runtime is gone.
    async fn after_failure(&mut self, failures: u32) -> Option<bool> {
        let config = &self.settings.config;
        if failures >= config.crash_loop_failures {
            tracing::warn!(agent.id = %self.agent, failures, "profile agent is crash-looping; not restarting");
            self.update(|s| s.crash_loop = true);
            self.emit(RuntimeEventKind::CrashLoop { failures });
            return Some(false);
        }
        let exponent = failures.saturating_sub(1).min(16);
        let delay = config
            .backoff_initial
            .saturating_mul(1 << exponent)
            .min(config.backoff_max);
        self.update(|s| s.state = ContainerState::Restarting);
        tracing::info!(agent.id = %self.agent, failures, delay.ms = delay.as_millis() as u64, "restarting profile agent after backoff");
        tokio::select! {
            () = tokio::time::sleep(delay) => Some(true),
            control = self.control.recv() => match control {
                None => None,
                Some(Control::Start(reply)) => {
                    let _ = reply.send(Ok(()));
                    Some(true)
                }
                Some(Control::Stop(_, reply)) => {
                    self.update(|s| s.state = ContainerState::Exited);
                    let _ = reply.send(());
                    Some(false)
                }
                Some(Control::Remove(reply)) => {
                    self.cleanup();
                    let _ = reply.send(());
                    None
                }
            },
        }
    }

    /// Watches a running process until it ends, is stopped or removed, or the watchdog
    /// kills it.
    async fn watch(&mut self, running: &mut Process) -> Outcome {
        let config = &self.settings.config;
        let limit = self
            .record
            .tier()
            .map_or(u64::MAX, |t| t.resources().ram_mb * 1024 * 1024);
        let mut tick = tokio::time::interval(config.watchdog_interval);
        let mut over_since: Option<Instant> = None;
        let pid = running.pid();

        loop {
            enum Step {
                Ended(Option<i64>),
                Control(Option<Control>),
                Tick,
            }
            let step = tokio::select! {
                code = running.wait() => Step::Ended(code),
                control = self.control.recv() => Step::Control(control),
                _ = tick.tick() => Step::Tick,
            };
            match step {
                Step::Ended(code) => {
                    kill_group(pid, Signal::KILL);
                    return Outcome::Exited { code, oom: false };
                }
                Step::Control(None) => return Outcome::Detached,
                Step::Control(Some(Control::Start(reply))) => {
                    let _ = reply.send(Ok(()));
                }
                Step::Control(Some(Control::Stop(grace, reply))) => {
                    let code = terminate(running, grace).await;
                    return Outcome::Stopped { code, reply };
                }
                Step::Control(Some(Control::Remove(reply))) => {
                    terminate(running, self.settings.config.remove_grace).await;
                    return Outcome::Removed(reply);
                }
                Step::Tick => {
                    let rss = procfs::tree_rss_bytes(&procfs::process_tree(pid));
                    if rss <= limit {
                        over_since = None;
                        continue;
                    }
                    let since = *over_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < self.settings.config.memory_window {
                        continue;
                    }
                    tracing::warn!(
                        agent.id = %self.agent,
                        rss.bytes = rss,
                        limit.bytes = limit,
                        "profile agent stayed above its tier's memory; killing its process tree"
                    );
                    kill_group(pid, Signal::KILL);
                    self.emit(RuntimeEventKind::OomKilled);
                    let code = running.wait().await;
                    kill_group(pid, Signal::KILL);
                    return Outcome::Exited { code, oom: true };
                }
            }
        }
    }

    /// Starts the agent's process in its own process group.
    fn spawn(&mut self, restarting: bool) -> RuntimeResult<Process> {
        let agent = self.agent;
        let spec = self.spec.as_ref().ok_or_else(|| RuntimeError::Engine {
            operation: "start",
            agent,
            message: "started by an earlier daemon with secret environment, which is not kept on disk; remove the agent and create it again".to_owned(),
        })?;
        let failed = |what: &str, err: std::io::Error| RuntimeError::Engine {
            operation: "start",
            agent,
            message: format!("{what}: {err}"),
        };

        let home = self.dir.join("home");
        create_private_dir(&home).map_err(|e| failed(&format!("home {}", home.display()), e))?;
        let cache = spec.state_dir.join(".cache");
        std::fs::create_dir_all(&cache)
            .map_err(|e| failed(&format!("cache {}", cache.display()), e))?;
        let log_path = self.dir.join(LOG_FILE);
        let log =
            open_log(&log_path).map_err(|e| failed(&format!("log {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| failed(&format!("log {}", log_path.display()), e))?;

        let mut command = tokio::process::Command::new(&self.settings.openclaw_bin);
        command
            .arg("--profile")
            .arg(agent_container_name(agent))
            .args([
                "gateway",
                "--port",
                &spec.gateway_port.to_string(),
                "--bind",
                "loopback",
            ])
            .env_clear()
            .envs(super::environment(spec, &home, &self.settings.openclaw_bin))
            .current_dir(&home)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(false);
        let child = command.spawn().map_err(|e| {
            failed(
                &format!("spawn {}", self.settings.openclaw_bin.display()),
                e,
            )
        })?;
        let pid = child.id().ok_or_else(|| RuntimeError::Engine {
            operation: "start",
            agent,
            message: "process exited before its pid was read".to_owned(),
        })?;
        let start_ticks = procfs::stat(pid).map_or(0, |s| s.start_ticks);

        self.record.process = Some(RecordedProcess { pid, start_ticks });
        if let Err(err) = record::write(&self.dir, &self.record) {
            tracing::warn!(agent.id = %agent, error = %err, "could not write profile agent record");
        }
        let mut restart_count = 0;
        self.update(|s| {
            if restarting {
                s.restart_count += 1;
            }
            restart_count = s.restart_count;
            s.state = ContainerState::Running;
            s.pid = Some(pid);
            s.started_at = Some(Utc::now());
            s.exit_code = None;
            s.oom_killed = false;
        });
        tracing::info!(agent.id = %agent, pid, port = spec.gateway_port, "profile agent started");
        self.emit(if restarting {
            RuntimeEventKind::Restarted { restart_count }
        } else {
            RuntimeEventKind::Started
        });
        Ok(Process::Child(child, pid))
    }

    fn exited(&mut self, code: Option<i64>, oom: bool) {
        self.update(|s| {
            s.state = ContainerState::Exited;
            s.pid = None;
            s.exit_code = code;
            s.oom_killed = oom;
        });
        self.record.process = None;
        if self.dir.exists() {
            if let Err(err) = record::write(&self.dir, &self.record) {
                tracing::warn!(agent.id = %self.agent, error = %err, "could not write profile agent record");
            }
        }
        tracing::info!(agent.id = %self.agent, exit_code = ?code, oom_killed = oom, "profile agent exited");
        self.emit(RuntimeEventKind::Died {
            exit_code: code,
            oom_killed: oom,
        });
    }

    /// Removes the runtime's own directory for the agent (home, log, record); the state
    /// directory from the spec is the caller's and stays.
    fn cleanup(&self) {
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(agent.id = %self.agent, error = %err, "could not remove profile agent directory");
            }
        }
        self.update(|s| s.state = ContainerState::Other);
    }

    fn update(&self, change: impl FnOnce(&mut Status)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }

    fn emit(&self, kind: RuntimeEventKind) {
        // No subscriber is fine.
        let _ = self.events.send(RuntimeEvent {
            agent: self.agent,
            kind,
            at: Utc::now(),
        });
    }
}

/// SIGTERM to the process group, SIGKILL after `grace`; the exit code.
async fn terminate(running: &mut Process, grace: Duration) -> Option<i64> {
    let pid = running.pid();
    kill_group(pid, Signal::TERM);
    let code = match tokio::time::timeout(grace, running.wait()).await {
        Ok(code) => code,
        Err(_) => {
            kill_group(pid, Signal::KILL);
            running.wait().await
        }
    };
    // Anything left in the group (a helper that ignored SIGTERM).
    kill_group(pid, Signal::KILL);
    code
}

/// Signals a process group; one that is already gone is fine.
pub(crate) fn kill_group(pgid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(err) = kill_process_group(pid, signal) {
        if err != rustix::io::Errno::SRCH {
            tracing::warn!(pgid, error = %err, "could not signal profile agent process group");
        }
    }
}

fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
