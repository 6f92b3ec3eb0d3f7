//! What a runtime is asked to run, and what it reports back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sparebox_core::{AgentId, Secret, Tier};
use sparebox_protocol::IsolationReport;

/// Everything needed to create one agent's container.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// The agent.
    pub agent: AgentId,
    /// Its tier: memory, CPU and pids limits come from here.
    pub tier: Tier,
    /// The image to run.
    pub image: String,
    /// Host port on 127.0.0.1 that forwards to the gateway port inside.
    pub gateway_port: u16,
    /// Host directory mounted read-write at `/home/node/.openclaw` (config and workspace).
    pub state_dir: PathBuf,
    /// Plain environment variables.
    pub env: BTreeMap<String, String>,
    /// Secret environment variables (API keys, the gateway token).
    pub secret_env: BTreeMap<String, Secret>,
}

/// Facts about the engine behind a runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Engine name, e.g. `docker` or `podman`.
    pub engine: String,
    /// Engine version.
    pub version: String,
    /// cgroup version (1 or 2), when known.
    pub cgroup_version: Option<u8>,
    /// Whether the engine runs without root.
    pub rootless: bool,
}

/// The state of a container as the engine reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Restarting after a crash.
    Restarting,
    /// Exited (stopped or crashed).
    Exited,
    /// Paused, dead or another state Sparebox does not act on.
    Other,
}

/// One managed container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    /// The agent it belongs to (from its label).
    pub agent: AgentId,
    /// The engine's id.
    pub container_id: String,
    /// Current state.
    pub state: ContainerState,
    /// The image it was created from.
    pub image: String,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// Restarts done by the engine's restart policy.
    pub restart_count: u32,
    /// Whether the engine says the last exit was an out-of-memory kill.
    pub oom_killed: bool,
    /// Exit code of the last exit, when exited.
    pub exit_code: Option<i64>,
    /// Memory limit in bytes, as applied.
    pub memory_limit_bytes: Option<u64>,
    /// Whether the applied limits and hardening match the tier.
    pub isolation: IsolationReport,
    /// The engine's id of the image the container was created from (`sha256:…`); `None`
    /// where there are no images (profile mode).
    pub image_id: Option<String>,
    /// The OpenClaw version it runs, when the image's labels (see
    /// [`OPENCLAW_VERSION_LABELS`]) or the profile binary tell it.
    pub openclaw_version: Option<String>,
}

/// Image labels that name the OpenClaw version an image carries, in order of preference:
/// Sparebox's own (set by its image build script), then the OCI standard version label
/// that release pipelines usually set to the release tag.
pub const OPENCLAW_VERSION_LABELS: [&str; 2] = [
    "dev.sparebox.openclaw-version",
    "org.opencontainers.image.version",
];

/// The OpenClaw version named by an image's or container's `labels`, if any.
pub fn openclaw_version_from_labels<'a>(
    mut label: impl FnMut(&str) -> Option<&'a str>,
) -> Option<String> {
    OPENCLAW_VERSION_LABELS
        .iter()
        .filter_map(|key| label(key))
        .map(str::trim)
        .find(|value| !value.is_empty())
        .map(str::to_owned)
}

/// A local image as the engine knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The engine's id for it (`sha256:…`); two references with the same id are the same
    /// image.
    pub id: String,
    /// The OpenClaw version its labels name.
    pub openclaw_version: Option<String>,
}

/// One-shot resource usage.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentStats {
    /// CPU in percent of one core (may exceed 100).
    pub cpu_percent: f64,
    /// Working set (usage minus inactive file pages) in bytes.
    pub memory_bytes: u64,
    /// Memory limit in bytes.
    pub memory_limit_bytes: u64,
}
