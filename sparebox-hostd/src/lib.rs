//! The Sparebox host daemon: heartbeats to the server, runs agents through a
//! [`Runtime`](sparebox_runtime::Runtime), reports back.
//!
//! A [`HostDaemon`] posts a heartbeat (hardware, every agent's status and live metrics,
//! unconfirmed command acks), queues the commands in the answer, and carries them out
//! concurrently across agents and in order for each agent. Deploys and configuration
//! updates fetch a deploy bundle, write the agent's files safely, create a hardened
//! container through the runtime and wait for the agent's health check.
//!
//! | module | what it owns |
//! |---|---|
//! | [`config`] | [`DaemonConfig`], defaults, `SPAREBOX_*` environment variable names |
//! | [`client`] | the two server calls ([`ServerApi`]) and their HTTP implementation |
//! | [`journal`] | what survives a restart: executed commands, unconfirmed acks, agents and ports |
//! | [`archive`] | an agent's state as a backup archive: packing it, reading one back without trusting it |
//! | [`files`] | writing `openclaw.json` and workspace files without leaving the agent's directory |
//! | [`health`] | the agent's `/healthz` probe |
//! | [`images`] | the periodic check for newer agent images |
//! | [`hardware`] | measuring the host |
//! | [`logging`] | the log filter that keeps secrets out of the logs |
//! | [`setup`] | the config file, choosing a runtime, enrolling, the status table |
//!
//! The daemon also reconciles the host against the server's desired state (adopting
//! labelled containers, converging running and stopped agents, removing orphans after a
//! grace period), finishes commands a killed daemon left unfinished, reports the engine's
//! lifecycle events and a slot table. [`setup`] holds what the binary's `enroll`, `run` and
//! `status` need: the config file and the choice of runtime (Docker, Podman or profile).
//!
//! ```no_run
//! use std::sync::Arc;
//! use sparebox_core::Secret;
//! use sparebox_hostd::{DaemonConfig, HostDaemon};
//! # async fn example(runtime: Arc<dyn sparebox_runtime::Runtime>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = DaemonConfig::new(
//!     "https://sparebox.example",
//!     Secret::new("host key"),
//!     "/var/lib/sparebox".into(),
//! );
//! let daemon = HostDaemon::new(config, runtime, reqwest::Client::new())?;
//! daemon.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
mod backoff;
pub mod client;
pub mod config;
mod daemon;
mod events;
mod executor;
pub mod files;
pub mod hardware;
pub mod health;
pub mod images;
pub mod journal;
pub mod logging;
pub mod logs;
mod ports;
mod queue;
mod reconcile;
mod report;
pub mod setup;
mod state;
#[cfg(test)]
mod testing;
mod upgrade;

pub use client::{ClientError, HttpServerApi, ServerApi};
pub use config::DaemonConfig;
pub use daemon::{DaemonError, HostDaemon, DAEMON_VERSION};
pub use executor::{CommandError, AGENT_ENV};
pub use health::{HealthProbe, HttpHealthProbe};
