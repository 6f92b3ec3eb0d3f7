//! How Sparebox runs agents on a host.
//!
//! The [`Runtime`] trait is the contract between the host daemon and whatever actually
//! runs an agent. An agent is addressed by its [`AgentId`]; the runtime derives the
//! container name (`sparebox-agent-<short id>`) and labels every container it creates with
//! the agent id, so it can find its containers again after a daemon restart.
//!
//! | implementation | cargo feature | isolation |
//! |---|---|---|
//! | `docker::DockerRuntime` | `docker` (default) | a hardened container per agent, hard limits (Docker, or Podman with a network per agent) |
//! | [`profile::ProfileRuntime`] | always | a plain OpenClaw process per agent: no resource or filesystem isolation |
//! | `fake::FakeRuntime` | `fake` | none: records calls, for unit tests |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod events;
mod logs;
pub mod profile;
mod spec;

#[cfg(feature = "docker")]
pub mod docker;

#[cfg(feature = "fake")]
pub mod fake;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sparebox_core::AgentId;
use sparebox_protocol::IsolationMode;

pub use events::{RuntimeEvent, RuntimeEventKind};
pub use logs::{last_lines, secret_names, LogQuery, MAX_RAW_LOG_BYTES, SECRET_ENV_LABEL};
pub use spec::*;

/// The label every managed container carries, holding the agent id.
pub const AGENT_LABEL: &str = "dev.sparebox.agent-id";

/// The label holding the agent's tier.
pub const TIER_LABEL: &str = "dev.sparebox.tier";

/// The port OpenClaw's gateway listens on inside a container.
pub const GATEWAY_CONTAINER_PORT: u16 = 18789;

/// The container (or profile) name for an agent.
pub fn agent_container_name(agent: AgentId) -> String {
    format!("sparebox-agent-{}", agent.short())
}

/// Errors from a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be reached at all.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    /// The image is not on the host and could not be pulled.
    #[error("image {image} unavailable: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why it could not be had.
        reason: String,
    },
    /// No container for this agent exists.
    #[error("agent {0} has no container")]
    NotFound(AgentId),
    /// The engine refused or failed an operation.
    #[error("{operation} agent {agent}: {message}")]
    Engine {
        /// What was being done (`create`, `start`, …).
        operation: &'static str,
        /// The agent.
        agent: AgentId,
        /// The engine's message.
        message: String,
    },
}

/// Shorthand for runtime results.
pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// Runs agents on this host.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The isolation this runtime provides.
    fn isolation(&self) -> IsolationMode;

    /// Facts about the engine: version, cgroup version, rootless or not.
    async fn fingerprint(&self) -> RuntimeResult<Fingerprint>;

    /// Makes sure `image` is present, pulling it if needed.
    async fn ensure_image(&self, image: &str) -> RuntimeResult<()>;

    /// The local image `image` refers to, or `None` when it is not on the host. Runtimes
    /// without images (profile mode) return `None`, the default.
    async fn image_info(&self, image: &str) -> RuntimeResult<Option<ImageInfo>> {
        let _ = image;
        Ok(None)
    }

    /// Asks the image's registry for the image `image` refers to now (a pull even when an
    /// image is present), so that [`Runtime::image_info`] afterwards shows whether the
    /// reference has moved to a newer image. Runtimes without images do nothing, the
    /// default.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::ImageUnavailable`] naming the image and the reason when the registry
    /// cannot be asked; the local image stays as it was.
    async fn refresh_image(&self, image: &str) -> RuntimeResult<()> {
        let _ = image;
        Ok(())
    }

    /// Creates the agent's container from `spec` and starts it. Fails if one exists.
    async fn create_and_start(&self, spec: &AgentSpec) -> RuntimeResult<ContainerInfo>;

    /// Starts the agent's existing container; a running one is left alone.
    async fn start(&self, agent: AgentId) -> RuntimeResult<()>;

    /// Stops the agent: SIGTERM, then a kill after `grace`. A stopped one is left alone.
    async fn stop(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()>;

    /// Stops then starts the agent.
    async fn restart(&self, agent: AgentId, grace: Duration) -> RuntimeResult<()>;

    /// Removes the agent's container and anything the runtime created for it. Removing an
    /// agent that has no container succeeds.
    async fn remove(&self, agent: AgentId) -> RuntimeResult<()>;

    /// The agent's container, or `None` when it has none.
    async fn inspect(&self, agent: AgentId) -> RuntimeResult<Option<ContainerInfo>>;

    /// One-shot resource usage of a running agent.
    async fn stats(&self, agent: AgentId) -> RuntimeResult<AgentStats>;

    /// Every container this runtime manages on the host, found by label.
    async fn list(&self) -> RuntimeResult<Vec<ContainerInfo>>;

    /// The agent's recent output (standard output and error as the engine stored them),
    /// raw: the last `query.tail_lines` lines, within `query.since` when set, at most
    /// [`MAX_RAW_LOG_BYTES`]. It holds whatever the agent printed, secrets included: redact
    /// it (see [`Runtime::secret_values`]) before it leaves the host.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotFound`] when the agent has no container (or log).
    async fn logs(&self, agent: AgentId, query: LogQuery) -> RuntimeResult<Vec<u8>>;

    /// The values of the secret environment variables the agent runs with, read back from
    /// the running container (or process), so its logs can be redacted even after a
    /// daemon restart. Redacted in `Debug` and zeroized on drop.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotFound`] when the agent has no container.
    async fn secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<sparebox_core::Secret>>;

    /// Lifecycle events (started, died, OOM-killed, restarted) of every agent this runtime
    /// manages, from now on. The stream ends when the runtime can no longer watch (the
    /// engine went away); an `Err` item reports a problem without ending it. The default
    /// yields nothing, for runtimes that cannot watch.
    fn events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        Box::pin(futures::stream::empty())
    }
}
