//! The daemon: the heartbeat loop, feeding commands to the per-agent queues.

use sparebox_core::crypto::ReplayGuard;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use sparebox_core::placement::{HostPolicy, SlotPlan};
use sparebox_core::slots::Hardware;
use sparebox_core::Tier;
use sparebox_protocol::{HeartbeatRequest, HeartbeatResponse, HostHardware, PROTOCOL_VERSION};
use sparebox_runtime::Runtime;
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::client::{ClientError, HttpServerApi, ServerApi};
use crate::config::{running_as_root, DaemonConfig};
use crate::events;
use crate::executor::Executor;
use crate::files;
use crate::hardware;
use crate::health::{HealthProbe, HttpHealthProbe};
use crate::images::{self, ImageWatch};
use crate::journal::{Journal, JournalError};
use crate::queue::{CommandQueue, Job};
use crate::reconcile::Reconciler;
use crate::report;
use crate::state::{Admission, SharedState};

/// The daemon's own version, sent in every heartbeat.
pub const DAEMON_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest wait between heartbeats the daemon accepts from the server.
const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be prepared.
    #[error("data directory: {0}")]
    DataDir(#[from] files::FilesError),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The server refused the host key; the daemon stops instead of retrying forever.
    /// Agents keep running.
    #[error("heartbeat: {0}")]
    Unauthorized(ClientError),
}

/// The host daemon. Build it with [`HostDaemon::new`], then call [`HostDaemon::run`].
pub struct HostDaemon {
    config: Arc<DaemonConfig>,
    runtime: Arc<dyn Runtime>,
    server: Arc<dyn ServerApi>,
    health: Arc<dyn HealthProbe>,
    state: SharedState,
    replay: Arc<std::sync::Mutex<ReplayGuard>>,
    images: ImageWatch,
}

impl std::fmt::Debug for HostDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDaemon")
            .field("config", &self.config)
            .field("isolation", &self.runtime.isolation())
            .finish_non_exhaustive()
    }
}

impl HostDaemon {
    /// A daemon talking to `config.server_url` over `http` and running agents on
    /// `runtime`. Creates the data directory (0700) and loads the journal.
    ///
    /// # Errors
    ///
    /// [`DaemonError`] when the data directory cannot be created or the journal is
    /// unreadable (a corrupt journal is not silently replaced: its executed-command ids
    /// protect against running a command twice).
    pub fn new(
        config: DaemonConfig,
        runtime: Arc<dyn Runtime>,
        http: reqwest::Client,
    ) -> Result<Self, DaemonError> {
        let server = HttpServerApi::new(
            http.clone(),
            &config.server_url,
            config.host_key.clone(),
            config.request_timeout,
        );
        let health = HttpHealthProbe::new(http, Duration::from_secs(5));
        Self::with_parts(config, runtime, Arc::new(server), Arc::new(health))
    }

    /// A daemon with its server and health probe supplied, for tests and embedding.
    ///
    /// # Errors
    ///
    /// As [`HostDaemon::new`].
    pub fn with_parts(
        config: DaemonConfig,
        runtime: Arc<dyn Runtime>,
        server: Arc<dyn ServerApi>,
        health: Arc<dyn HealthProbe>,
    ) -> Result<Self, DaemonError> {
        prepare_data_dir(&config.data_dir)?;
        let journal = Journal::load(&config.journal_path())?;
        let state = SharedState::new(journal, config.journal_path());
        Ok(Self {
            config: Arc::new(config),
            runtime,
            server,
            health,
            state,
            replay: Arc::new(std::sync::Mutex::new(ReplayGuard::default())),
            images: ImageWatch::new(),
        })
    }

    /// Heartbeats and executes commands until `shutdown` completes.
    ///
    /// At start it adopts labelled containers the journal does not know and resumes the
    /// commands an earlier daemon left unfinished. Commands cut short by shutdown are not
    /// acked; they stay in the journal and the next start finishes them.
    ///
    /// # Errors
    ///
    /// [`DaemonError::Unauthorized`] when the server refuses the host key. Network errors
    /// and server errors are retried with backoff and never end the loop.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        info!(config = %self.config, isolation = self.runtime.isolation().as_str(), "host daemon starting");
        self.log_fingerprint().await;
        let gpu = hardware::probe_gpu().await;
        let queue = CommandQueue::new(Arc::new(self.executor()));
        let reconciler = Reconciler::new(
            self.runtime.clone(),
            self.state.clone(),
            self.config.clone(),
        );
        self.start_up(&queue, &reconciler).await;
        let events = tokio::spawn(events::follow(self.runtime.clone(), self.state.clone()));
        let image_checks = tokio::spawn(images::follow(
            self.runtime.clone(),
            self.images.clone(),
            self.config.image_check_interval,
        ));
        let result = self
            .heartbeat_loop(&queue, &reconciler, gpu, shutdown)
            .await;
        events.abort();
        image_checks.abort();
        queue.shutdown();
        info!("host daemon stopped");
        result
    }

    /// Adopts containers the journal does not know and resumes commands an earlier daemon
    /// left unfinished.
    async fn start_up(&self, queue: &CommandQueue, reconciler: &Reconciler) {
        reconciler.reconcile(None).await;
        for interrupted in self.state.in_flight_commands() {
            queue.submit(Job::Resume(interrupted));
        }
    }

    fn executor(&self) -> Executor {
        Executor {
            config: self.config.clone(),
            runtime: self.runtime.clone(),
            server: self.server.clone(),
            health: self.health.clone(),
            state: self.state.clone(),
            owner: running_as_root().then_some(self.config.agent_owner),
            replay: self.replay.clone(),
        }
    }

    async fn log_fingerprint(&self) {
        match self.runtime.fingerprint().await {
            Ok(print) => info!(
                engine = %print.engine,
                engine.version = %print.version,
                cgroup = ?print.cgroup_version,
                rootless = print.rootless,
                "container engine found"
            ),
            Err(err) => warn!(error = %err, "container engine not answering; will keep trying"),
        }
    }

    async fn heartbeat_loop(
        &self,
        queue: &CommandQueue,
        reconciler: &Reconciler,
        gpu: Option<String>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new(Duration::from_secs(1), self.config.max_backoff);
        let mut interval = self.config.heartbeat_interval;
        loop {
            let wait = self.long_poll_wait(interval);
            let request = self.heartbeat_request(gpu.clone(), wait).await;
            let sent = tokio::time::Instant::now();
            let outcome = tokio::select! {
                () = &mut shutdown => return Ok(()),
                outcome = self.server.heartbeat(&request) => outcome,
            };
            let delay = match outcome {
                Ok(response) => {
                    if backoff.failures() > 0 {
                        info!(failures = backoff.failures(), "server reachable again");
                    }
                    backoff.reset();
                    if self.state.confirm_events(&request.agent_events) {
                        self.persist().await;
                    }
                    interval = server_interval(&response, self.config.heartbeat_interval);
                    self.handle_response(queue, reconciler, response).await;
                    self.next_delay(interval, wait, sent.elapsed())
                }
                Err(err @ ClientError::Unauthorized { .. }) => {
                    error!(error = %err, "server refused the host key; stopping (agents keep running)");
                    return Err(DaemonError::Unauthorized(err));
                }
                Err(err) => {
                    let delay = match &err {
                        ClientError::RetryLater { retry_after, .. } => {
                            backoff.next_delay_at_least(*retry_after)
                        }
                        _ => backoff.next_delay(),
                    };
                    if backoff.failures() == 1 {
                        warn!(error = %err, retry_in = ?delay, "heartbeat failed; retrying with backoff");
                    } else {
                        debug!(error = %err, failures = backoff.failures(), retry_in = ?delay, "heartbeat failed again");
                    }
                    delay
                }
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn is_idle(&self) -> bool {
        !self.state.is_busy() && self.state.pending_acks().is_empty()
    }

    /// How long the server may hold the next heartbeat: only when idle, never longer than
    /// the heartbeat interval, so statuses are still reported at least that often.
    fn long_poll_wait(&self, interval: Duration) -> Duration {
        if self.is_idle() {
            // Whole seconds only: that is what the protocol carries.
            Duration::from_secs(self.config.long_poll.min(interval).as_secs())
        } else {
            Duration::ZERO
        }
    }

    /// Quick heartbeats while commands run or acks wait. When idle and long polls are on:
    /// right away after a long poll the server actually held (so a new command is picked
    /// up within about a second), and right away after a heartbeat that did not ask to be
    /// held (the daemon has just become idle: its last acks were confirmed), so the next
    /// command does not wait a whole interval. Otherwise (long polls off, or a server that
    /// answers them early) after the interval.
    fn next_delay(&self, interval: Duration, wait: Duration, held: Duration) -> Duration {
        let long_polls = self.config.long_poll.min(interval).as_secs() > 0;
        if !self.is_idle() {
            self.config.busy_heartbeat_interval.min(interval)
        } else if long_polls && (wait.is_zero() || held >= wait / 2) {
            Duration::ZERO
        } else {
            interval
        }
    }

    async fn heartbeat_request(&self, gpu: Option<String>, wait: Duration) -> HeartbeatRequest {
        let data_dir = self.config.data_dir.clone();
        let hardware = tokio::task::spawn_blocking(move || hardware::measure(&data_dir, gpu))
            .await
            .unwrap_or_else(|_| hardware::measure(std::path::Path::new("/"), None));
        let mut command_acks = self.state.pending_acks();
        command_acks.truncate(sparebox_protocol::MAX_REPORTS_PER_HEARTBEAT);
        let mut agent_events = self.state.pending_events();
        agent_events.truncate(sparebox_protocol::MAX_REPORTS_PER_HEARTBEAT);
        let tiers: Vec<Tier> = self.state.agents().iter().map(|r| r.tier).collect();
        let slots = slot_table(&hardware, tiers);
        HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            daemon_version: DAEMON_VERSION.to_owned(),
            hardware,
            isolation: self.runtime.isolation(),
            agent_statuses: report::agent_reports_with(
                self.runtime.as_ref(),
                &self.state,
                &self.images,
            )
            .await,
            command_acks,
            wait_seconds: (!wait.is_zero())
                .then(|| u32::try_from(wait.as_secs()).unwrap_or(u32::MAX)),
            agent_events,
            slots,
        }
    }

    async fn persist(&self) {
        if let Err(err) = self.state.persist().await {
            error!(error = %err, "could not write the journal");
        }
    }

    /// Forgets confirmed acks, queues new commands and re-acks executed ones, then
    /// reconciles against the desired state when the response carries one.
    ///
    /// New commands are journalled as in flight before any of them starts, so a daemon
    /// killed while running one finishes it after a restart.
    async fn handle_response(
        &self,
        queue: &CommandQueue,
        reconciler: &Reconciler,
        response: HeartbeatResponse,
    ) {
        let mut changed = self.state.confirm(&response.confirmed_acks);
        let mut to_run = Vec::new();
        for command in response.commands {
            match self.state.admit(&command) {
                Admission::Run => {
                    debug!(command.id = %command.id, command.kind = %command.kind, "command received");
                    to_run.push(command);
                    changed = true;
                }
                Admission::Reacked => {
                    debug!(command.id = %command.id, "command already executed; acking again");
                    changed = true;
                }
                Admission::InFlight => {}
            }
        }
        if changed {
            if let Err(err) = self.state.persist().await {
                error!(error = %err, "could not write the journal");
            }
        }
        for command in to_run {
            queue.submit(Job::Command(command));
        }
        if let Some(desired) = response.desired_agents.as_deref() {
            if reconciler.take_turn() {
                let plan = reconciler.reconcile(Some(desired)).await;
                for (agent, step) in plan.steps {
                    if self.state.set_converging(agent, true) {
                        queue.submit(Job::Converge(agent, step));
                    }
                }
            }
        }
    }
}

/// Creates the data directory (and its parents) and makes it private. The operator chose
/// it, so a symlink there is followed (a data directory on another disk is common); what
/// lies below it is checked by [`files`].
fn prepare_data_dir(dir: &std::path::Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let io_err = |source| {
        DaemonError::DataDir(files::FilesError::Io {
            path: dir.to_owned(),
            source,
        })
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err)
}

/// Free slots per tier on this host, from the measured hardware, the default reserve and
/// the tiers of the agents it manages (stopped ones keep their allocation). `None` when the
/// measurement is outside what the slot maths accepts.
fn slot_table(hardware: &HostHardware, tiers: Vec<Tier>) -> Option<BTreeMap<Tier, u64>> {
    let measured = Hardware::new(
        hardware.ram_mb,
        u64::from(hardware.cpu_cores) * 1000,
        hardware.disk_gb,
    );
    let plan = SlotPlan::new(measured, HostPolicy::all_tiers(), tiers).ok()?;
    Some(plan.table().iter().collect())
}

/// The server's wish for the next heartbeat, at most an hour; `0` means no wish, and the
/// configured interval applies.
fn server_interval(response: &HeartbeatResponse, configured: Duration) -> Duration {
    match response.next_heartbeat_seconds {
        0 => configured,
        seconds => Duration::from_secs(u64::from(seconds)).min(MAX_HEARTBEAT_INTERVAL),
    }
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
pub(crate) mod tests;
