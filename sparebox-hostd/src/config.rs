//! The daemon's configuration, and the environment variables the binary reads it from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sparebox_core::{DeployStage, Secret};

/// Environment variable for the server's base URL (`--server`).
pub const ENV_SERVER: &str = "SPAREBOX_SERVER";
/// Environment variable for the host key (`--key`).
pub const ENV_HOST_KEY: &str = "SPAREBOX_HOST_KEY";
/// Environment variable for the data directory (`--data-dir`).
pub const ENV_DATA_DIR: &str = "SPAREBOX_DATA_DIR";
/// Environment variable for the runtime (`--runtime`).
pub const ENV_RUNTIME: &str = "SPAREBOX_RUNTIME";
/// Environment variable for the Docker socket (`--docker-socket`).
pub const ENV_DOCKER_SOCKET: &str = "SPAREBOX_DOCKER_SOCKET";
/// Environment variable for the first gateway port (`--port-range-start`).
pub const ENV_PORT_RANGE_START: &str = "SPAREBOX_PORT_RANGE_START";
/// Environment variable for the heartbeat interval in seconds (`--heartbeat-interval`).
pub const ENV_HEARTBEAT_INTERVAL: &str = "SPAREBOX_HEARTBEAT_INTERVAL";
/// Environment variable for the health-check timeout in seconds (`--health-timeout`).
pub const ENV_HEALTH_TIMEOUT: &str = "SPAREBOX_HEALTH_TIMEOUT";
/// Environment variable for the log format, `text` or `json` (`--log-format`).
pub const ENV_LOG_FORMAT: &str = "SPAREBOX_LOG_FORMAT";
/// Environment variable for the config file (`--config`).
pub const ENV_CONFIG: &str = "SPAREBOX_CONFIG";
/// Environment variable for the Podman socket (`--podman-socket`).
pub const ENV_PODMAN_SOCKET: &str = "SPAREBOX_PODMAN_SOCKET";
/// Environment variable for the OpenClaw binary used in profile mode (`--openclaw-bin`).
pub const ENV_OPENCLAW_BIN: &str = "SPAREBOX_OPENCLAW_BIN";
/// Environment variable for the orphan grace period in seconds (`--orphan-grace`).
pub const ENV_ORPHAN_GRACE: &str = "SPAREBOX_ORPHAN_GRACE";
/// Environment variable for the seconds between checks for newer agent images
/// (`--image-check-interval`).
pub const ENV_IMAGE_CHECK_INTERVAL: &str = "SPAREBOX_IMAGE_CHECK_INTERVAL";

/// The first gateway port handed to an agent unless configured otherwise.
pub const DEFAULT_PORT_RANGE_START: u16 = 19001;
/// How many ports, from the start of the range, the daemon may hand out.
pub const DEFAULT_PORT_RANGE_LEN: u16 = 1000;
/// Seconds between heartbeats until the server says otherwise.
pub const DEFAULT_HEARTBEAT_INTERVAL_SECS: u64 = 60;
/// Seconds an idle daemon lets the server hold a heartbeat open.
pub const DEFAULT_LONG_POLL_SECS: u64 = 30;
/// Seconds a new container has to answer its health check.
pub const DEFAULT_HEALTH_TIMEOUT_SECS: u64 = 180;
/// Seconds an agent upgraded to a new image has to become healthy before it goes back to
/// its previous image.
pub const DEFAULT_UPGRADE_HEALTH_TIMEOUT_SECS: u64 = 120;
/// Seconds a stopping container gets between SIGTERM and a kill.
pub const DEFAULT_STOP_GRACE_SECS: u64 = 10;
/// Seconds a managed container the server no longer lists is kept before it is removed.
pub const DEFAULT_ORPHAN_GRACE_SECS: u64 = 600;
/// Least seconds between two reconciliations against the server's desired state.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: u64 = 30;
/// Seconds after a command on an agent during which the reconciler leaves it alone.
pub const DEFAULT_SETTLE_SECS: u64 = 60;
/// Seconds between two checks for newer versions of the agents' images (six hours).
pub const DEFAULT_IMAGE_CHECK_INTERVAL_SECS: u64 = 6 * 60 * 60;

/// Everything the daemon needs to know to run.
///
/// Build one with [`DaemonConfig::new`] and adjust the public fields; the binary fills it
/// from flags and `SPAREBOX_*` environment variables. `Debug` and `Display` redact the host
/// key.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The server's base URL, e.g. `https://sparebox.example`; API paths are appended.
    pub server_url: String,
    /// The host key, sent as a bearer token.
    pub host_key: Secret,
    /// Where the journal and each agent's files live.
    pub data_dir: PathBuf,
    /// The first gateway port on 127.0.0.1 handed to an agent.
    pub port_range_start: u16,
    /// How many ports from `port_range_start` may be handed out.
    pub port_range_len: u16,
    /// Time between heartbeats until the server's `nextHeartbeatSeconds` overrides it.
    pub heartbeat_interval: Duration,
    /// Time between heartbeats while a command runs or acks wait for confirmation.
    pub busy_heartbeat_interval: Duration,
    /// How long an idle daemon asks the server to hold a heartbeat open until a command
    /// is queued (the server caps it; 30 s on the reference server). Capped at the
    /// heartbeat interval; zero turns long polling off.
    pub long_poll: Duration,
    /// How long a new container has to answer its health check.
    pub health_timeout: Duration,
    /// How long an agent moved to a new image by an upgrade has to become healthy before
    /// it goes back to its previous image (120 s by default).
    pub upgrade_health_timeout: Duration,
    /// Time between two health probes.
    pub health_poll_interval: Duration,
    /// Grace period between SIGTERM and a kill when stopping an agent.
    pub stop_grace: Duration,
    /// Longest wait after a failed heartbeat (the backoff cap).
    pub max_backoff: Duration,
    /// Time limit of one request to the server.
    pub request_timeout: Duration,
    /// Owner (uid, gid) for agent files when the daemon runs as root; the image's `node`
    /// user is 1000:1000.
    pub agent_owner: (u32, u32),
    /// How long a managed container the server's desired state no longer lists is kept
    /// before it is removed with its files, measured from the first reconciliation that
    /// missed it.
    pub orphan_grace: Duration,
    /// Least time between two reconciliations against the server's desired state.
    pub reconcile_interval: Duration,
    /// How long after a command on an agent the reconciler leaves that agent alone, so a
    /// desired state computed before the command's ack reached the server does not undo it.
    pub settle: Duration,
    /// Test hook for crash-recovery tests: a deploy that durably records this stage then
    /// stops making progress, as if the daemon had been killed there. `None` in
    /// production.
    pub halt_after_stage: Option<DeployStage>,
    /// The gateway ports of two agents are at least this far apart (1 for containers, more
    /// for plain processes, whose gateway also listens on nearby ports).
    pub port_spacing: u16,
    /// Time between two checks whether the agents' image references now point at newer
    /// images (each check pulls every image in use); zero turns the check off.
    pub image_check_interval: Duration,
}

impl DaemonConfig {
    /// A configuration with the documented defaults for everything but the server, the key
    /// and the data directory.
    pub fn new(server_url: impl Into<String>, host_key: Secret, data_dir: PathBuf) -> Self {
        Self {
            server_url: server_url.into().trim_end_matches('/').to_owned(),
            host_key,
            data_dir,
            port_range_start: DEFAULT_PORT_RANGE_START,
            port_range_len: DEFAULT_PORT_RANGE_LEN,
            heartbeat_interval: Duration::from_secs(DEFAULT_HEARTBEAT_INTERVAL_SECS),
            busy_heartbeat_interval: Duration::from_secs(1),
            long_poll: Duration::from_secs(DEFAULT_LONG_POLL_SECS),
            health_timeout: Duration::from_secs(DEFAULT_HEALTH_TIMEOUT_SECS),
            upgrade_health_timeout: Duration::from_secs(DEFAULT_UPGRADE_HEALTH_TIMEOUT_SECS),
            health_poll_interval: Duration::from_secs(1),
            stop_grace: Duration::from_secs(DEFAULT_STOP_GRACE_SECS),
            max_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            agent_owner: (1000, 1000),
            orphan_grace: Duration::from_secs(DEFAULT_ORPHAN_GRACE_SECS),
            reconcile_interval: Duration::from_secs(DEFAULT_RECONCILE_INTERVAL_SECS),
            settle: Duration::from_secs(DEFAULT_SETTLE_SECS),
            halt_after_stage: None,
            port_spacing: 1,
            image_check_interval: Duration::from_secs(DEFAULT_IMAGE_CHECK_INTERVAL_SECS),
        }
    }

    /// The journal file: executed commands, unconfirmed acks, agents and their ports.
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("journal.json")
    }

    /// The directory holding every agent's files.
    pub fn agents_dir(&self) -> PathBuf {
        self.data_dir.join("agents")
    }
}

impl fmt::Display for DaemonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server={} key={} data_dir={} ports={}..{} heartbeat={}s health_timeout={}s orphan_grace={}s",
            self.server_url,
            self.host_key,
            self.data_dir.display(),
            self.port_range_start,
            u32::from(self.port_range_start) + u32::from(self.port_range_len),
            self.heartbeat_interval.as_secs(),
            self.health_timeout.as_secs(),
            self.orphan_grace.as_secs(),
        )
    }
}

/// The default data directory: `/var/lib/sparebox` for root, `$HOME/.sparebox` otherwise
/// (`./.sparebox` when `HOME` is unset).
pub fn default_data_dir() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/var/lib/sparebox");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    home.as_deref()
        .unwrap_or_else(|| Path::new("."))
        .join(".sparebox")
}

/// Whether the daemon runs with effective uid 0.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_config_redacts_the_host_key() {
        let config = DaemonConfig::new(
            "http://server/",
            Secret::new("sbx_host_supersecret"),
            PathBuf::from("/tmp/x"),
        );
        let printed = format!("{config} {config:?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("server=http://server "), "{printed}");
    }
}
