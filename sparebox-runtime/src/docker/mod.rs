//! [`DockerRuntime`]: one hardened container per agent on a Docker engine, or on Podman
//! through its Docker-compatible socket.
//!
//! Every agent container gets its tier's memory (with no swap on top), CPU and a pids limit
//! of 512; a read-only root filesystem with tmpfs `/tmp` and `/home/node`; the host's state
//! directory at `/home/node/.openclaw`; uid 1000; no capabilities; `no-new-privileges`; an
//! init process; restart `unless-stopped`; the gateway port published on 127.0.0.1 only; and
//! the bridge network [`AGENT_NETWORK`], on which containers cannot reach each other. After
//! creating a container the runtime inspects it and reports, in
//! [`ContainerInfo::isolation`], every property the engine did not apply as asked.
//!
//! # Secrets and logs
//!
//! Secret environment variables travel to the engine in the create request, and the engine
//! returns them in inspect responses. bollard logs request and response bodies at `debug`
//! level through the `log` crate, so a subscriber that forwards `log` records must keep
//! bollard at `info` or above: add [`SECRET_SAFE_LOG_DIRECTIVE`] to the filter. Anyone with
//! root on the host (or access to the engine socket) can read the environment with
//! `docker inspect`.
//!
//! # Podman
//!
//! Podman's Docker-compatible API (4.3, tried here, rootful) accepts the network option that
//! disables inter-container traffic but does not apply it. So on Podman each agent gets its
//! own network, `sparebox-agent-<short id>`, created through Podman's own API with netavark's
//! `isolate` option (traffic between isolated networks is dropped) and removed with the
//! agent; see [`podman`]. Rootless Podman was not tried: its networking (slirp4netns or
//! pasta) and user-namespace mapping of the state directory's owner differ, and
//! [`Fingerprint::rootless`] tells a caller which one it has.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use sparebox_runtime::docker::DockerRuntime;
//! use sparebox_runtime::{AgentSpec, Runtime};
//!
//! # async fn run(spec: AgentSpec) -> Result<(), sparebox_runtime::RuntimeError> {
//! // Uses DOCKER_HOST, else /var/run/docker.sock.
//! let runtime = DockerRuntime::connect(None).await?;
//! runtime.ensure_image(&spec.image).await?;
//! let info = runtime.create_and_start(&spec).await?;
//! assert!(info.isolation.verified, "{:?}", info.isolation.mismatches);
//! runtime.stop(spec.agent, Duration::from_secs(10)).await?;
//! # Ok(())
//! # }
//! ```

mod create;
mod events;
mod info;
mod input;
mod logs;
mod network;
pub mod podman;
mod stats;
mod verify;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::stream::BoxStream;
use futures::StreamExt;
use sparebox_core::AgentId;
use sparebox_protocol::IsolationMode;

use crate::{
    agent_container_name, openclaw_version_from_labels, AgentSpec, AgentStats, ContainerInfo,
    Fingerprint, ImageInfo, Runtime, RuntimeError, RuntimeEvent, RuntimeResult, AGENT_LABEL,
};

use info::container_info;
use input::{check_spec, invalid_spec, pull_reference};

pub use network::AGENT_NETWORK;

/// The socket used when neither an explicit socket nor `DOCKER_HOST` names one.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The environment variable naming the engine's address, as the `docker` client reads it.
pub const DOCKER_HOST_ENV: &str = "DOCKER_HOST";

/// A `tracing_subscriber::EnvFilter` directive that keeps bollard's request and response
/// bodies, which carry agents' secret environment, out of the logs.
pub const SECRET_SAFE_LOG_DIRECTIVE: &str = "bollard=info";

/// Seconds an ordinary engine request may take.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Extra time a stop request is given beyond the agent's grace period.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// The longest pull of a missing image before it counts as unavailable.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs agents as containers on a Docker (or Podman) engine.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    endpoint: String,
    mode: IsolationMode,
}

impl fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("endpoint", &self.endpoint)
            .field("mode", &self.mode)
            .field("api_version", &self.docker.client_version().to_string())
            .finish()
    }
}

impl DockerRuntime {
    /// Pulls `image` from its registry, waiting at most [`PULL_TIMEOUT`].
    async fn pull(&self, image: &str) -> RuntimeResult<()> {
        let unavailable = |reason: String| RuntimeError::ImageUnavailable {
            image: image.to_owned(),
            reason,
        };
        tracing::info!(image, "pulling image");
        let options = CreateImageOptions {
            from_image: Some(pull_reference(image)),
            ..Default::default()
        };
        let pull = async {
            let mut progress = self.docker.create_image(Some(options), None, None);
            while let Some(step) = progress.next().await {
                step.map_err(|err| err.to_string())?;
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(unavailable(format!("pull failed: {reason}"))),
            Err(_) => Err(unavailable(format!(
                "pull did not finish within {} s",
                PULL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Connects to the engine at `socket` (a path, `unix://` path or `tcp://host:port`), or
    /// else at `DOCKER_HOST`, or else at [`DEFAULT_SOCKET`], and negotiates the API version
    /// with it: Debian's Docker 20.10 speaks API 1.41 at most and refuses newer clients.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unavailable`] when no engine answers there.
    pub async fn connect(socket: Option<&str>) -> RuntimeResult<Self> {
        let endpoint = match socket {
            Some(socket) => socket.to_owned(),
            None => std::env::var(DOCKER_HOST_ENV)
                .ok()
                .filter(|host| !host.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SOCKET.to_owned()),
        };
        let unavailable =
            |err: BollardError| RuntimeError::Unavailable(format!("{endpoint}: {err}"));

        let docker = open(&endpoint).map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        let version = docker.version().await.map_err(unavailable)?;
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let mode = if podman {
            IsolationMode::Podman
        } else {
            IsolationMode::Docker
        };

        tracing::info!(
            engine.endpoint = %endpoint,
            engine.version = version.version.as_deref().unwrap_or("unknown"),
            engine.api_version = %docker.client_version(),
            engine.mode = mode.as_str(),
            "connected to container engine"
        );
        Ok(Self {
            docker,
            endpoint,
            mode,
        })
    }

    /// The bollard client, for callers that need more of the engine API (events, logs).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn inspect_by_name(
        &self,
        agent: AgentId,
    ) -> RuntimeResult<Option<ContainerInspectResponse>> {
        let name = agent_container_name(agent);
        match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(container) => Ok(Some(container)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(engine_error("inspect", agent, err)),
        }
    }

    /// On Podman, restores netavark's isolation jump (see [`podman`]) and marks every given
    /// agent unverified when it cannot.
    async fn check_podman_isolation<'a>(&self, infos: impl Iterator<Item = &'a mut ContainerInfo>) {
        if self.mode != IsolationMode::Podman {
            return;
        }
        if let Err(err) = podman::ensure_isolation_jump().await {
            for info in infos {
                info.isolation
                    .mismatches
                    .push(format!("network isolation: {err} != enforced"));
                info.isolation.verified = false;
            }
        }
    }

    /// Removes a container left half-made by a failed create; failures are only logged,
    /// since the caller is already returning the original error.
    async fn discard(&self, agent: AgentId) {
        if let Err(err) = self.remove(agent).await {
            tracing::warn!(agent.id = %agent, error = %err, "could not remove failed container");
        }
    }
}

fn open(endpoint: &str) -> Result<Docker, BollardError> {
    if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_unix(endpoint, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    }
}

fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_conflict(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// The engine's refusal as [`RuntimeError::Engine`]; transport failures (no socket,
/// timeouts, broken connections) as [`RuntimeError::Unavailable`].
fn engine_error(operation: &'static str, agent: AgentId, err: BollardError) -> RuntimeError {
    match err {
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Engine {
            operation,
            agent,
            message,
        },
        BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => {
            RuntimeError::Engine {
                operation,
                agent,
                message: err.to_string(),
            }
        }
        other => RuntimeError::Unavailable(format!("{operation} agent {agent}: {other}")),
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn isolation(&self) -> IsolationMode {
        self.mode
    }

    async fn fingerprint(&self) -> RuntimeResult<Fingerprint> {
        let unavailable =
            |err: BollardError| RuntimeError::Unavailable(format!("{}: {err}", self.endpoint));
        let version = self.docker.version().await.map_err(unavailable)?;
        let info = self.docker.info().await.map_err(unavailable)?;

        let cgroup_version = info.cgroup_version.and_then(|v| match v.as_ref() {
            "1" => Some(1),
            "2" => Some(2),
            _ => None,
        });
        let rootless = info
            .security_options
            .iter()
            .flatten()
            .any(|o| o.contains("name=rootless"));
        let engine = match self.mode {
            IsolationMode::Podman => "podman",
            _ => "docker",
        };
        Ok(Fingerprint {
            engine: engine.to_owned(),
            version: version.version.unwrap_or_default(),
            cgroup_version,
            rootless,
        })
    }

    async fn ensure_image(&self, image: &str) -> RuntimeResult<()> {
        let unavailable = |reason: String| RuntimeError::ImageUnavailable {
            image: image.to_owned(),
            reason,
        };
        if image.trim().is_empty() {
            return Err(unavailable("empty image reference".to_owned()));
        }
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(unavailable(err.to_string())),
        }
        self.pull(image).await?;
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|err| unavailable(format!("pulled but not present: {err}")))
    }

    async fn image_info(&self, image: &str) -> RuntimeResult<Option<ImageInfo>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => {
                let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
                Ok(inspect.id.map(|id| ImageInfo {
                    id,
                    openclaw_version: openclaw_version_from_labels(|key| {
                        labels.and_then(|l| l.get(key)).map(String::as_str)
                    }),
                }))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: err.to_string(),
            }),
        }
    }

    async fn refresh_image(&self, image: &str) -> RuntimeResult<()> {
        if image.trim().is_empty() {
            return Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: "empty image reference".to_owned(),
            });
        }
        self.pull(image).await
    }

    async fn create_and_start(&self, spec: &AgentSpec) -> RuntimeResult<ContainerInfo> {
        let agent = spec.agent;
        let name = agent_container_name(agent);
        check_spec(spec).await?;
        if self.inspect_by_name(agent).await?.is_some() {
            return Err(invalid_spec(
                agent,
                format!("container {name} already exists"),
            ));
        }

        let network = match self.mode {
            IsolationMode::Podman => podman::ensure_agent_network(&self.endpoint, agent)
                .await
                .map_err(|err| invalid_spec(agent, err.to_string()))?,
            _ => network::ensure_agent_network(&self.docker)
                .await
                .map_err(|err| invalid_spec(agent, err.to_string()))?,
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let mut body = create::container_body(spec, &network);
        if self.mode == IsolationMode::Podman {
            podman::adapt_create_body(&mut body);
        }
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => {
                for warning in created.warnings {
                    tracing::warn!(agent.id = %agent, warning, "engine warning on create");
                }
            }
            Err(err) if is_conflict(&err) => {
                return Err(invalid_spec(
                    agent,
                    format!("container {name} already exists"),
                ))
            }
            Err(err) => {
                let err = engine_error("create", agent, err);
                self.discard(agent).await;
                return Err(err);
            }
        }

        if let Err(err) = self
            .docker
            .start_container(&name, None::<StartContainerOptions>)
            .await
        {
            let err = engine_error("start", agent, err);
            self.discard(agent).await;
            return Err(err);
        }
        let info = self
            .inspect(agent)
            .await?
            .ok_or(RuntimeError::NotFound(agent))?;
        tracing::info!(
            agent.id = %agent,
            agent.tier = spec.tier.as_str(),
            container.id = %info.container_id,
            isolation.verified = info.isolation.verified,
            "agent container started"
        );
        if !info.isolation.verified {
            tracing::warn!(
                agent.id = %agent,
                mismatches = ?info.isolation.mismatches,
                "agent container isolation differs from its tier"
            );
        }
        Ok(info)
    }

    async fn start(&self, agent: AgentId) -> RuntimeResult<()> {
        let name = agent_container_name(agent);
        match self
            .docker
            .start_container(&name, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => {
                tracing::info!(agent.id = %agent, "agent container started");
                Ok(())
            }
            Err(err) if is_not_found(&err) => Err(RuntimeError::NotFound(agent)),
            Err(err) => Err(engine_error("start", agent, err)),
        }
    }

    async fn stop(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        let name = agent_container_name(agent);
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let client = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS).max(grace + STOP_SLACK));
        let options = StopContainerOptions {
            t: Some(seconds),
            signal: None,
        };
        match client.stop_container(&name, Some(options)).await {
            Ok(()) => {
                tracing::info!(agent.id = %agent, grace.secs = seconds, "agent container stopped");
                self.check_podman_isolation(std::iter::empty()).await;
                Ok(())
            }
            Err(err) if is_not_found(&err) => Err(RuntimeError::NotFound(agent)),
            Err(err) => Err(engine_error("stop", agent, err)),
        }
    }

    async fn restart(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()> {
        self.stop(agent, grace).await?;
        self.start(agent).await
    }

    async fn remove(&self, agent: AgentId) -> RuntimeResult<()> {
        let name = agent_container_name(agent);
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(&name, Some(options)).await {
            Ok(()) => tracing::info!(agent.id = %agent, "agent container removed"),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(engine_error("remove", agent, err)),
        }
        if self.mode == IsolationMode::Podman {
            podman::remove_agent_network(&self.endpoint, agent)
                .await
                .map_err(|err| RuntimeError::Engine {
                    operation: "remove",
                    agent,
                    message: err.to_string(),
                })?;
            self.check_podman_isolation(std::iter::empty()).await;
        }
        Ok(())
    }

    async fn inspect(&self, agent: AgentId) -> RuntimeResult<Option<ContainerInfo>> {
        let mut info = self
            .inspect_by_name(agent)
            .await?
            .and_then(|container| container_info(&container, Some(agent), self.mode));
        self.check_podman_isolation(info.iter_mut()).await;
        Ok(info)
    }

    async fn stats(&self, agent: AgentId) -> RuntimeResult<AgentStats> {
        let name = agent_container_name(agent);
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let sample = self.docker.stats(&name, Some(options)).next().await;
        match sample {
            Some(Ok(sample)) => Ok(stats::agent_stats(&sample)),
            Some(Err(err)) if is_not_found(&err) => Err(RuntimeError::NotFound(agent)),
            Some(Err(err)) => Err(engine_error("stats", agent, err)),
            None => Err(RuntimeError::Engine {
                operation: "stats",
                agent,
                message: "engine returned no sample".to_owned(),
            }),
        }
    }

    async fn logs(&self, agent: AgentId, query: crate::LogQuery) -> RuntimeResult<Vec<u8>> {
        self.read_logs(agent, query).await
    }

    async fn secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<sparebox_core::Secret>> {
        self.read_secret_values(agent).await
    }

    fn events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        events::agent_events(self.docker.clone(), self.mode == IsolationMode::Podman)
    }

    async fn list(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some([("label".to_owned(), vec![AGENT_LABEL.to_owned()])].into()),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|err| RuntimeError::Unavailable(format!("list containers: {err}")))?;

        let mut infos = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|s| s.id) {
            let container = match self
                .docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
            {
                Ok(container) => container,
                // Removed between listing and inspecting.
                Err(err) if is_not_found(&err) => continue,
                Err(err) => {
                    return Err(RuntimeError::Unavailable(format!(
                        "inspect container {id}: {err}"
                    )))
                }
            };
            match container_info(&container, None, self.mode) {
                Some(info) => infos.push(info),
                None => {
                    tracing::warn!(container.id = %id, "managed container has an invalid agent label")
                }
            }
        }
        self.check_podman_isolation(infos.iter_mut()).await;
        Ok(infos)
    }
}
