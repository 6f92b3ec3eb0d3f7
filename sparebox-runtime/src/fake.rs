//! An in-memory [`Runtime`] that records every call, for other crates' unit tests.
//!
//! [`FakeRuntime`] keeps a table of containers, one per agent, and changes it the way a
//! real engine would: `create_and_start` adds a running container (and fails when one
//! exists), `stop` marks it exited, `remove` deletes it. A test can make the next call of
//! an operation fail with [`FakeRuntime::fail_next`], set the numbers `stats` returns with
//! [`FakeRuntime::set_stats`], and read back what was asked with [`FakeRuntime::calls`].
//!
//! Nothing here touches the host: no engine, no files, no network.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use sparebox_runtime::fake::{FakeCall, FakeOp, FakeRuntime};
//! use sparebox_runtime::Runtime;
//!
//! let runtime = FakeRuntime::new();
//! runtime.fail_next(FakeOp::EnsureImage, "registry unreachable");
//! assert!(runtime.ensure_image("openclaw:test").await.is_err());
//! assert!(runtime.ensure_image("openclaw:test").await.is_ok());
//! assert_eq!(runtime.calls().len(), 2);
//! assert!(matches!(&runtime.calls()[0], FakeCall::EnsureImage(image) if image == "openclaw:test"));
//! # });
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sparebox_core::{AgentId, Secret};
use sparebox_protocol::{IsolationMode, IsolationReport};

use futures::stream::BoxStream;

use crate::{
    last_lines, AgentSpec, AgentStats, ContainerInfo, ContainerState, Fingerprint, ImageInfo,
    LogQuery, Runtime, RuntimeError, RuntimeEvent, RuntimeResult,
};

/// One operation of the [`Runtime`] trait, used to choose which call [`FakeRuntime::fail_next`]
/// makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FakeOp {
    /// [`Runtime::fingerprint`].
    Fingerprint,
    /// [`Runtime::ensure_image`].
    EnsureImage,
    /// [`Runtime::create_and_start`].
    CreateAndStart,
    /// [`Runtime::start`].
    Start,
    /// [`Runtime::stop`].
    Stop,
    /// [`Runtime::restart`].
    Restart,
    /// [`Runtime::remove`].
    Remove,
    /// [`Runtime::inspect`].
    Inspect,
    /// [`Runtime::stats`].
    Stats,
    /// [`Runtime::list`].
    List,
    /// [`Runtime::logs`].
    Logs,
}

impl FakeOp {
    /// The operation name used in [`RuntimeError::Engine`].
    pub const fn as_str(self) -> &'static str {
        match self {
            FakeOp::Fingerprint => "fingerprint",
            FakeOp::EnsureImage => "pull",
            FakeOp::CreateAndStart => "create",
            FakeOp::Start => "start",
            FakeOp::Stop => "stop",
            FakeOp::Restart => "restart",
            FakeOp::Remove => "remove",
            FakeOp::Inspect => "inspect",
            FakeOp::Stats => "stats",
            FakeOp::List => "list",
            FakeOp::Logs => "logs",
        }
    }
}

/// One recorded call, with its arguments.
#[derive(Clone, Debug)]
pub enum FakeCall {
    /// `fingerprint()`.
    Fingerprint,
    /// `ensure_image(image)`.
    EnsureImage(String),
    /// `create_and_start(spec)`; the spec's secrets stay redacted in `Debug`.
    CreateAndStart(Box<AgentSpec>),
    /// `start(agent)`.
    Start(AgentId),
    /// `stop(agent, grace)`.
    Stop(AgentId, Duration),
    /// `restart(agent, grace)`.
    Restart(AgentId, Duration),
    /// `remove(agent)`.
    Remove(AgentId),
    /// `inspect(agent)`.
    Inspect(AgentId),
    /// `stats(agent)`.
    Stats(AgentId),
    /// `list()`.
    List,
    /// `logs(agent, query)`.
    Logs(AgentId, LogQuery),
}

impl FakeCall {
    /// The operation this call was.
    pub fn op(&self) -> FakeOp {
        match self {
            FakeCall::Fingerprint => FakeOp::Fingerprint,
            FakeCall::EnsureImage(_) => FakeOp::EnsureImage,
            FakeCall::CreateAndStart(_) => FakeOp::CreateAndStart,
            FakeCall::Start(_) => FakeOp::Start,
            FakeCall::Stop(..) => FakeOp::Stop,
            FakeCall::Restart(..) => FakeOp::Restart,
            FakeCall::Remove(_) => FakeOp::Remove,
            FakeCall::Inspect(_) => FakeOp::Inspect,
            FakeCall::Stats(_) => FakeOp::Stats,
            FakeCall::List => FakeOp::List,
            FakeCall::Logs(..) => FakeOp::Logs,
        }
    }

    /// Whether the call changes something (everything but inspect, stats, list and
    /// fingerprint).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self.op(),
            FakeOp::Inspect | FakeOp::Stats | FakeOp::List | FakeOp::Fingerprint | FakeOp::Logs
        )
    }
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<FakeCall>,
    containers: BTreeMap<AgentId, ContainerInfo>,
    failures: HashMap<FakeOp, VecDeque<String>>,
    stats: HashMap<AgentId, AgentStats>,
    images: HashMap<String, ImageInfo>,
    logs: HashMap<AgentId, Vec<u8>>,
    secrets: HashMap<AgentId, Vec<Secret>>,
    next_container: u64,
}

/// A recording, in-memory [`Runtime`]. See the [module docs](self).
#[derive(Debug)]
pub struct FakeRuntime {
    isolation: IsolationMode,
    state: Mutex<FakeState>,
    events: tokio::sync::broadcast::Sender<RuntimeEvent>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// An empty fake that claims Docker isolation.
    pub fn new() -> Self {
        Self::with_isolation(IsolationMode::Docker)
    }

    /// An empty fake that claims `isolation`.
    pub fn with_isolation(isolation: IsolationMode) -> Self {
        Self {
            isolation,
            state: Mutex::new(FakeState::default()),
            events: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// Sends `event` to every stream [`Runtime::events`] has returned and that is still
    /// open; nobody listening is not an error.
    pub fn emit(&self, event: RuntimeEvent) {
        let _ = self.events.send(event);
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// The calls so far that change something (see [`FakeCall::is_mutation`]).
    pub fn mutations(&self) -> Vec<FakeCall> {
        self.lock()
            .calls
            .iter()
            .filter(|call| call.is_mutation())
            .cloned()
            .collect()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: FakeOp) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|call| call.op() == op)
            .count()
    }

    /// Makes the next call of `op` fail with `message`. Several failures queue up.
    pub fn fail_next(&self, op: FakeOp, message: impl Into<String>) {
        self.lock()
            .failures
            .entry(op)
            .or_default()
            .push_back(message.into());
    }

    /// Sets what `stats` returns for `agent` (zeros until set).
    pub fn set_stats(&self, agent: AgentId, stats: AgentStats) {
        self.lock().stats.insert(agent, stats);
    }

    /// Makes the image reference `image` point at `info` from now on, as a pull or a local
    /// build of a newer image would. Until set, a reference names an image with id
    /// `sha256:<reference>` and no OpenClaw version, like the fake's containers.
    pub fn set_image(&self, image: &str, info: ImageInfo) {
        self.lock().images.insert(image.to_owned(), info);
    }

    /// Sets the output `logs` returns for `agent` (before its tail and since are applied:
    /// the fake keeps no timestamps, so only the line count is honoured). Empty until set.
    pub fn set_logs(&self, agent: AgentId, output: impl Into<Vec<u8>>) {
        self.lock().logs.insert(agent, output.into());
    }

    /// The agent's container, if it has one.
    pub fn container(&self, agent: AgentId) -> Option<ContainerInfo> {
        self.lock().containers.get(&agent).cloned()
    }

    /// Every container, ordered by agent id.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.lock().containers.values().cloned().collect()
    }

    /// Puts a container in place as if it had been created earlier (say, before a daemon
    /// restart), without recording a call.
    pub fn insert_container(&self, info: ContainerInfo) {
        self.lock().containers.insert(info.agent, info);
    }

    /// Changes the state of the agent's container, to simulate a crash or an OOM kill.
    /// Does nothing when the agent has no container.
    pub fn set_state(&self, agent: AgentId, state: ContainerState, oom_killed: bool) {
        if let Some(info) = self.lock().containers.get_mut(&agent) {
            info.state = state;
            info.oom_killed = oom_killed;
        }
    }

    /// A running container for `agent` as this fake would create it.
    pub fn running_container(agent: AgentId, container_id: String, image: &str) -> ContainerInfo {
        ContainerInfo {
            agent,
            container_id,
            state: ContainerState::Running,
            image: image.to_owned(),
            started_at: Some(Utc::now()),
            restart_count: 0,
            oom_killed: false,
            exit_code: None,
            memory_limit_bytes: None,
            isolation: IsolationReport {
                verified: true,
                mismatches: Vec::new(),
            },
            image_id: Some(format!("sha256:{image}")),
            openclaw_version: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock must not hide later assertions.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `call` and returns the injected failure for it, if any.
    fn record(&self, call: FakeCall) -> Option<String> {
        let mut state = self.lock();
        let op = call.op();
        state.calls.push(call);
        state.failures.get_mut(&op).and_then(VecDeque::pop_front)
    }

    fn engine_error(op: FakeOp, agent: AgentId, message: String) -> RuntimeError {
        RuntimeError::Engine {
            operation: op.as_str(),
            agent,
            message,
        }
    }

    /// Records an operation on one agent's existing container and applies `change` to it.
    fn on_container(
        &self,
        call: FakeCall,
        agent: AgentId,
        change: impl FnOnce(&mut ContainerInfo),
    ) -> RuntimeResult<()> {
        let op = call.op();
        if let Some(message) = self.record(call) {
            return Err(Self::engine_error(op, agent, message));
        }
        let mut state = self.lock();
        let info = state
            .containers
            .get_mut(&agent)
            .ok_or(RuntimeError::NotFound(agent))?;
        change(info);
        Ok(())
    }
}

fn mark_started(info: &mut ContainerInfo) {
    if info.state != ContainerState::Running {
        info.state = ContainerState::Running;
        info.started_at = Some(Utc::now());
        info.oom_killed = false;
        info.exit_code = None;
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn isolation(&self) -> IsolationMode {
        self.isolation
    }

    async fn fingerprint(&self) -> RuntimeResult<Fingerprint> {
        if let Some(message) = self.record(FakeCall::Fingerprint) {
            return Err(RuntimeError::Unavailable(message));
        }
        Ok(Fingerprint {
            engine: "fake".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cgroup_version: Some(2),
            rootless: false,
        })
    }

    async fn ensure_image(&self, image: &str) -> RuntimeResult<()> {
        match self.record(FakeCall::EnsureImage(image.to_owned())) {
            Some(reason) => Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }

    async fn image_info(&self, image: &str) -> RuntimeResult<Option<ImageInfo>> {
        let known = self.lock().images.get(image).cloned();
        Ok(Some(known.unwrap_or_else(|| ImageInfo {
            id: format!("sha256:{image}"),
            openclaw_version: None,
        })))
    }

    async fn create_and_start(&self, spec: &AgentSpec) -> RuntimeResult<ContainerInfo> {
        let agent = spec.agent;
        if let Some(message) = self.record(FakeCall::CreateAndStart(Box::new(spec.clone()))) {
            return Err(Self::engine_error(FakeOp::CreateAndStart, agent, message));
        }
        let mut state = self.lock();
        if state.containers.contains_key(&agent) {
            let message = "a container for this agent already exists".to_owned();
            return Err(Self::engine_error(FakeOp::CreateAndStart, agent, message));
        }
        state.next_container += 1;
        let id = format!("fake{:012}", state.next_container);
        let mut info = Self::running_container(agent, id, &spec.image);
        info.memory_limit_bytes = Some(spec.tier.resources().ram_mb * 1024 * 1024);
        if let Some(image) = state.images.get(&spec.image) {
            info.image_id = Some(image.id.clone());
            info.openclaw_version = image.openclaw_version.clone();
        }
        state.containers.insert(agent, info.clone());
        state
            .secrets
            .insert(agent, spec.secret_env.values().cloned().collect());
        Ok(info)
    }

    async fn start(&self, agent: AgentId) -> RuntimeResult<()> {
        self.on_container(FakeCall::Start(agent), agent, mark_started)
    }

    async fn stop(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        self.on_container(FakeCall::Stop(agent, grace), agent, |info| {
            info.state = ContainerState::Exited;
            info.exit_code = Some(0);
        })
    }

    async fn restart(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        self.on_container(FakeCall::Restart(agent, grace), agent, |info| {
            info.state = ContainerState::Exited;
            mark_started(info);
        })
    }

    async fn remove(&self, agent: AgentId) -> RuntimeResult<()> {
        if let Some(message) = self.record(FakeCall::Remove(agent)) {
            return Err(Self::engine_error(FakeOp::Remove, agent, message));
        }
        let mut state = self.lock();
        state.containers.remove(&agent);
        state.stats.remove(&agent);
        state.secrets.remove(&agent);
        Ok(())
    }

    async fn inspect(&self, agent: AgentId) -> RuntimeResult<Option<ContainerInfo>> {
        if let Some(message) = self.record(FakeCall::Inspect(agent)) {
            return Err(Self::engine_error(FakeOp::Inspect, agent, message));
        }
        Ok(self.container(agent))
    }

    async fn stats(&self, agent: AgentId) -> RuntimeResult<AgentStats> {
        if let Some(message) = self.record(FakeCall::Stats(agent)) {
            return Err(Self::engine_error(FakeOp::Stats, agent, message));
        }
        let state = self.lock();
        let info = state
            .containers
            .get(&agent)
            .ok_or(RuntimeError::NotFound(agent))?;
        let limit = info.memory_limit_bytes.unwrap_or(0);
        Ok(state.stats.get(&agent).cloned().unwrap_or(AgentStats {
            cpu_percent: 0.0,
            memory_bytes: 0,
            memory_limit_bytes: limit,
        }))
    }

    async fn logs(&self, agent: AgentId, query: LogQuery) -> RuntimeResult<Vec<u8>> {
        if let Some(message) = self.record(FakeCall::Logs(agent, query)) {
            return Err(Self::engine_error(FakeOp::Logs, agent, message));
        }
        let state = self.lock();
        if !state.containers.contains_key(&agent) {
            return Err(RuntimeError::NotFound(agent));
        }
        let output = state.logs.get(&agent).map_or(&[][..], Vec::as_slice);
        Ok(last_lines(output, query.tail_lines).to_vec())
    }

    async fn secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<Secret>> {
        let state = self.lock();
        if !state.containers.contains_key(&agent) {
            return Err(RuntimeError::NotFound(agent));
        }
        Ok(state.secrets.get(&agent).cloned().unwrap_or_default())
    }

    async fn list(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        if let Some(message) = self.record(FakeCall::List) {
            return Err(RuntimeError::Unavailable(message));
        }
        Ok(self.containers())
    }

    fn events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let receiver = self.events.subscribe();
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => return Some((Ok(event), receiver)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use sparebox_core::Tier;

    use super::*;

    fn spec(agent: AgentId) -> AgentSpec {
        AgentSpec {
            agent,
            tier: Tier::Standard,
            image: "openclaw:test".to_owned(),
            gateway_port: 19001,
            state_dir: PathBuf::from("/nonexistent"),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn creating_twice_for_one_agent_fails_like_an_engine() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        runtime.create_and_start(&spec(agent)).await.unwrap();
        assert!(runtime.create_and_start(&spec(agent)).await.is_err());
        assert_eq!(runtime.containers().len(), 1);
    }

    #[tokio::test]
    async fn stop_then_start_changes_the_container_state() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        runtime.create_and_start(&spec(agent)).await.unwrap();
        runtime.stop(agent, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            runtime.container(agent).unwrap().state,
            ContainerState::Exited
        );
        runtime.start(agent).await.unwrap();
        assert_eq!(
            runtime.container(agent).unwrap().state,
            ContainerState::Running
        );
    }

    #[tokio::test]
    async fn injected_failure_hits_only_the_next_call_of_that_operation() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        runtime.fail_next(FakeOp::CreateAndStart, "no space left on device");
        let err = runtime.create_and_start(&spec(agent)).await.unwrap_err();
        assert!(err.to_string().contains("no space left on device"), "{err}");
        runtime.create_and_start(&spec(agent)).await.unwrap();
        assert_eq!(runtime.count(FakeOp::CreateAndStart), 2);
    }

    #[tokio::test]
    async fn removing_an_agent_without_container_succeeds() {
        let runtime = FakeRuntime::new();
        runtime.remove(AgentId::new_random()).await.unwrap();
        assert_eq!(runtime.mutations().len(), 1);
    }
}
