//! The wire protocol between the Sparebox server and its host daemons.
//!
//! Everything here is plain data with serde derives, encoded as camelCase JSON. The daemon
//! always initiates: it posts a [`HeartbeatRequest`] (hardware, agent statuses,
//! acknowledgements) and receives a [`HeartbeatResponse`] (commands to run, which acks the
//! server has recorded, when to call again). For deploys and configuration updates it then
//! fetches a [`DeployBundle`].
//!
//! | type | direction |
//! |---|---|
//! | [`HeartbeatRequest`] | daemon → server, `POST /api/v1/hosts/heartbeat` |
//! | [`HeartbeatResponse`] | server → daemon |
//! | [`Command`], [`CommandAck`] | inside the two above |
//! | [`CommandParams`] | inside a [`Command`] that needs more than its kind (`logs`, `restore`) |
//! | [`AgentStatusReport`] | daemon → server, one per agent in each heartbeat |
//! | [`DeployBundle`] | server → daemon, `GET /api/v1/agents/{id}/deploy-config`; sealed and signed under the command's [`SessionKey`] |
//!
//! ```no_run
//! use sparebox_protocol::HeartbeatRequest;
//!
//! let body = r#"{"protocolVersion":1,"daemonVersion":"0.1.0","isolation":"docker",
//!   "hardware":{"ramMb":8192,"cpuCores":4,"diskGb":100,"os":"linux","arch":"x86_64","gpu":null},
//!   "agentStatuses":[],"commandAcks":[]}"#;
//! let heartbeat: HeartbeatRequest = serde_json::from_str(body).unwrap();
//! assert!(heartbeat.agent_statuses.is_empty());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod heartbeat;
mod params;

pub use heartbeat::{
    AckStatus, AgentEventKind, AgentEventReport, AgentStatusReport, Command, CommandAck,
    DesiredAgent, DesiredState, HeartbeatRequest, HeartbeatResponse, HostHardware, IsolationMode,
    IsolationReport, RuntimeStatus,
};
pub use params::{
    CommandParams, InvalidParams, MAX_LOG_BYTES, MAX_LOG_SINCE_SECONDS, MAX_LOG_TAIL_LINES,
};
/// One workspace file (a relative path and UTF-8 content), in API requests and bundles.
pub use sparebox_core::crypto::BundleFile as WorkspaceFile;
/// The one-time key that comes with a deploy or update_config [`Command`].
pub use sparebox_core::crypto::SessionKey;
/// The deploy bundle: everything a daemon needs to run one agent, its secrets sealed
/// under the command's one-time session key and every field signed. Verify it with
/// [`DeployBundle::verify`] before using anything in it.
pub use sparebox_core::crypto::SignedBundle as DeployBundle;

/// The protocol version this crate speaks. A server rejects heartbeats with a different
/// major version with a clear error rather than misreading them.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest heartbeat body a server accepts, in bytes.
pub const MAX_HEARTBEAT_BYTES: usize = 256 * 1024;

/// The most agent statuses or command acks one heartbeat may carry.
pub const MAX_REPORTS_PER_HEARTBEAT: usize = 512;
