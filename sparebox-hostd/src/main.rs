//! `sparebox-hostd`: the reference host daemon binary. Parses flags and wires the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sparebox_core::Secret;
use sparebox_hostd::config::{self, DaemonConfig};
use sparebox_hostd::HostDaemon;
use sparebox_runtime::docker::DockerRuntime;
use sparebox_runtime::Runtime;

#[derive(Parser)]
#[command(
    version,
    about = "Sparebox host daemon: runs OpenClaw agents for the Sparebox platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Heartbeat to the server and run the agents it assigns, until SIGINT or SIGTERM.
    Run(RunArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RuntimeKind {
    /// One hardened Docker container per agent.
    Docker,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Base URL of the Sparebox server.
    #[arg(long, env = config::ENV_SERVER)]
    server: String,
    /// This host's key (sent as a bearer token; never printed).
    #[arg(long, env = config::ENV_HOST_KEY, hide_env_values = true)]
    key: String,
    /// Journal and agent files [default: /var/lib/sparebox as root, else $HOME/.sparebox].
    #[arg(long, env = config::ENV_DATA_DIR)]
    data_dir: Option<PathBuf>,
    /// How agents are isolated. Only docker for now; podman and profile come later.
    #[arg(long, env = config::ENV_RUNTIME, value_enum, default_value = "docker")]
    runtime: RuntimeKind,
    /// Docker socket path or URL [default: the engine's usual socket or DOCKER_HOST].
    #[arg(long, env = config::ENV_DOCKER_SOCKET)]
    docker_socket: Option<String>,
    /// First gateway port on 127.0.0.1 handed to an agent.
    #[arg(long, env = config::ENV_PORT_RANGE_START, default_value_t = config::DEFAULT_PORT_RANGE_START)]
    port_range_start: u16,
    /// Seconds between heartbeats until the server says otherwise.
    #[arg(long, env = config::ENV_HEARTBEAT_INTERVAL, default_value_t = config::DEFAULT_HEARTBEAT_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_interval: u64,
    /// Seconds a new agent has to pass its health check.
    #[arg(long, env = config::ENV_HEALTH_TIMEOUT, default_value_t = config::DEFAULT_HEALTH_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    health_timeout: u64,
    /// Log format.
    #[arg(long, env = config::ENV_LOG_FORMAT, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let Cmd::Run(args) = Cli::parse().command;
    init_tracing(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.unwrap_or_else(config::default_data_dir);
    let mut config = DaemonConfig::new(args.server, Secret::new(args.key), data_dir);
    config.port_range_start = args.port_range_start;
    config.heartbeat_interval = Duration::from_secs(args.heartbeat_interval);
    config.health_timeout = Duration::from_secs(args.health_timeout);

    let runtime: Arc<dyn Runtime> = match args.runtime {
        RuntimeKind::Docker => Arc::new(
            DockerRuntime::connect(args.docker_socket.as_deref())
                .await
                .context("connecting to docker")?,
        ),
    };
    let http = reqwest::Client::builder()
        .user_agent(concat!("sparebox-hostd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the http client")?;
    let daemon = HostDaemon::new(config, runtime, http).context("preparing the daemon")?;
    // The daemon logs why it stopped; only the exit code is left to set here.
    match daemon.run(shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the daemon");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
