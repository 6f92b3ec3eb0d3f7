//! `sparebox-hostd`: the reference host daemon binary. Parses flags and wires the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sparebox_core::Secret;
use sparebox_hostd::config::{self, DaemonConfig};
use sparebox_hostd::setup::{self, FileConfig, RuntimeKind, RuntimeOptions};
use sparebox_hostd::HostDaemon;
use sparebox_protocol::IsolationMode;

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
    Run(Box<RunArgs>),
    /// Check a host key against the server and write it to the config file.
    Enroll(EnrollArgs),
    /// Print the agents this host manages, from the journal and the runtime (no server).
    Status(Settings),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every subcommand; each overrides the config file.
#[derive(clap::Args)]
struct Settings {
    /// Config file [default: /etc/sparebox/hostd.toml as root, else ~/.config/sparebox/hostd.toml].
    #[arg(long, env = config::ENV_CONFIG)]
    config: Option<PathBuf>,
    /// Journal and agent files [default: /var/lib/sparebox as root, else $HOME/.sparebox].
    #[arg(long, env = config::ENV_DATA_DIR)]
    data_dir: Option<PathBuf>,
    /// How agents are run [default: auto: docker, else podman, else profile].
    #[arg(long, env = config::ENV_RUNTIME, value_enum)]
    runtime: Option<RuntimeKind>,
    /// Docker socket path or URL [default: DOCKER_HOST or /var/run/docker.sock].
    #[arg(long, env = config::ENV_DOCKER_SOCKET)]
    docker_socket: Option<String>,
    /// Podman socket path or URL [default: unix:///run/podman/podman.sock].
    #[arg(long, env = config::ENV_PODMAN_SOCKET)]
    podman_socket: Option<String>,
    /// OpenClaw binary for profile mode [default: openclaw on PATH].
    #[arg(long, env = config::ENV_OPENCLAW_BIN)]
    openclaw_bin: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    settings: Settings,
    /// Base URL of the Sparebox server.
    #[arg(long, env = config::ENV_SERVER)]
    server: Option<String>,
    /// This host's key (sent as a bearer token; never printed).
    #[arg(long, env = config::ENV_HOST_KEY, hide_env_values = true)]
    key: Option<String>,
    /// First gateway port on 127.0.0.1 handed to an agent [default: 19001].
    #[arg(long, env = config::ENV_PORT_RANGE_START)]
    port_range_start: Option<u16>,
    /// Seconds between heartbeats until the server says otherwise [default: 60].
    #[arg(long, env = config::ENV_HEARTBEAT_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_interval: Option<u64>,
    /// Seconds a new agent has to pass its health check [default: 180].
    #[arg(long, env = config::ENV_HEALTH_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600))]
    health_timeout: Option<u64>,
    /// Seconds an agent the server no longer lists is kept before removal [default: 600].
    #[arg(long, env = config::ENV_ORPHAN_GRACE)]
    orphan_grace: Option<u64>,
    /// Seconds between checks whether the agents' images have newer versions (each check
    /// pulls the images in use); 0 turns the check off [default: 21600].
    #[arg(long, env = config::ENV_IMAGE_CHECK_INTERVAL)]
    image_check_interval: Option<u64>,
    /// Crash-recovery testing aid, hidden from help: a deploy that reaches this stage
    /// (fetching_config, pulling, creating, starting, health_check) records it and then
    /// makes no more progress, so a test can kill the daemon exactly there.
    #[arg(long, hide = true)]
    halt_after_stage: Option<sparebox_core::DeployStage>,
    /// Log format [default: text].
    #[arg(long, env = config::ENV_LOG_FORMAT, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(clap::Args)]
struct EnrollArgs {
    #[command(flatten)]
    settings: Settings,
    /// Base URL of the Sparebox server.
    #[arg(long, env = config::ENV_SERVER)]
    server: String,
    /// The host key the server showed when the host was registered.
    #[arg(long, env = config::ENV_HOST_KEY, hide_env_values = true)]
    key: String,
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let format = match &command {
        Cmd::Run(args) => args.log_format,
        _ => None,
    };
    let file = match load_file(&command) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let format = format.or(match file.1.log_format.as_deref() {
        Some("json") => Some(LogFormat::Json),
        _ => None,
    });
    init_tracing(format.unwrap_or(LogFormat::Text));
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(dispatch(command, file)));
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(command: &Cmd) -> &Settings {
    match command {
        Cmd::Run(args) => &args.settings,
        Cmd::Enroll(args) => &args.settings,
        Cmd::Status(settings) => settings,
    }
}

fn load_file(command: &Cmd) -> anyhow::Result<(PathBuf, FileConfig)> {
    let path = settings(command)
        .config
        .clone()
        .unwrap_or_else(setup::default_config_path);
    let file = FileConfig::load(&path)?;
    Ok((path, file))
}

fn init_tracing(format: LogFormat) {
    let filter = sparebox_hostd::logging::env_filter("info");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Cmd, (path, file): (PathBuf, FileConfig)) -> anyhow::Result<ExitCode> {
    match command {
        Cmd::Run(args) => run(*args, &path, file).await,
        Cmd::Enroll(args) => enroll(args, &path, file).await,
        Cmd::Status(settings) => status(settings, file).await,
    }
}

fn data_dir(settings: &Settings, file: &FileConfig) -> PathBuf {
    settings
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(config::default_data_dir)
}

fn runtime_options(
    settings: &Settings,
    file: &FileConfig,
    data_dir: &std::path::Path,
) -> RuntimeOptions {
    RuntimeOptions {
        docker_socket: settings
            .docker_socket
            .clone()
            .or(file.docker_socket.clone()),
        podman_socket: settings
            .podman_socket
            .clone()
            .or(file.podman_socket.clone()),
        openclaw_bin: settings.openclaw_bin.clone().or(file.openclaw_bin.clone()),
        profile_dir: data_dir.join("profiles"),
    }
}

fn runtime_kind(settings: &Settings, file: &FileConfig) -> RuntimeKind {
    settings.runtime.or(file.runtime).unwrap_or_default()
}

async fn run(args: RunArgs, path: &std::path::Path, file: FileConfig) -> anyhow::Result<ExitCode> {
    let server = args
        .server
        .clone()
        .or(file.server.clone())
        .with_context(|| {
            format!(
                "no server: pass --server, set SPAREBOX_SERVER or run enroll ({})",
                path.display()
            )
        })?;
    let key = match (&args.key, &file.key) {
        (Some(key), _) => Secret::new(key.as_str()),
        (None, Some(key)) => key.clone(),
        (None, None) => anyhow::bail!(
            "no host key: pass --key, set SPAREBOX_HOST_KEY or run enroll ({})",
            path.display()
        ),
    };
    let data_dir = data_dir(&args.settings, &file);
    let kind = runtime_kind(&args.settings, &file);
    let chosen = setup::connect_runtime(kind, &runtime_options(&args.settings, &file, &data_dir))
        .await
        .context("connecting the runtime")?;

    let mut config = DaemonConfig::new(server, key, data_dir);
    config.port_range_start = args
        .port_range_start
        .or(file.port_range_start)
        .unwrap_or(config::DEFAULT_PORT_RANGE_START);
    let seconds = |flag: Option<u64>, file: Option<u64>, default| {
        Duration::from_secs(flag.or(file).unwrap_or(default))
    };
    config.heartbeat_interval = seconds(
        args.heartbeat_interval,
        file.heartbeat_interval,
        config::DEFAULT_HEARTBEAT_INTERVAL_SECS,
    );
    config.health_timeout = seconds(
        args.health_timeout,
        file.health_timeout,
        config::DEFAULT_HEALTH_TIMEOUT_SECS,
    );
    config.orphan_grace = seconds(
        args.orphan_grace,
        file.orphan_grace,
        config::DEFAULT_ORPHAN_GRACE_SECS,
    );
    config.halt_after_stage = args.halt_after_stage;
    config.image_check_interval = seconds(
        args.image_check_interval,
        file.image_check_interval,
        config::DEFAULT_IMAGE_CHECK_INTERVAL_SECS,
    );
    config.port_spacing = chosen.port_spacing;
    tracing::info!(%config, runtime = %chosen.kind, config_file = %path.display(), "effective configuration");

    let http = reqwest::Client::builder()
        .user_agent(concat!("sparebox-hostd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the http client")?;
    let daemon = HostDaemon::new(config, chosen.runtime, http).context("preparing the daemon")?;
    // The daemon logs why it stopped; only the exit code is left to set here.
    match daemon.run(shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

async fn enroll(
    args: EnrollArgs,
    path: &std::path::Path,
    mut file: FileConfig,
) -> anyhow::Result<ExitCode> {
    let key = Secret::new(args.key.as_str());
    let data_dir = data_dir(&args.settings, &file);
    let kind = runtime_kind(&args.settings, &file);
    let isolation = match setup::connect_runtime(
        kind,
        &runtime_options(&args.settings, &file, &data_dir),
    )
    .await
    {
        Ok(chosen) => chosen.runtime.isolation(),
        Err(err) => {
            tracing::warn!(error = %err, "no runtime found; the host cannot run agents until one is installed");
            IsolationMode::None
        }
    };
    setup::check_key(
        reqwest::Client::new(),
        &args.server,
        &key,
        &data_dir,
        isolation,
    )
    .await
    .context("the key was not saved")?;
    file.server = Some(args.server.trim_end_matches('/').to_owned());
    file.key = Some(key);
    if args.settings.data_dir.is_some() {
        file.data_dir = args.settings.data_dir.clone();
    }
    if args.settings.runtime.is_some() {
        file.runtime = args.settings.runtime;
    }
    file.save(path)?;
    println!("enrolled: configuration written to {}", path.display());
    println!(
        "start the daemon with: sparebox-hostd run --config {}",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(settings: Settings, file: FileConfig) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir(&settings, &file);
    let kind = runtime_kind(&settings, &file);
    // Profile mode's runtime supervises processes as soon as it is built: only the
    // running daemon may do that, so status shows the journal alone there.
    let options = runtime_options(&settings, &file, &data_dir);
    let engines: &[RuntimeKind] = match kind {
        RuntimeKind::Profile => &[],
        RuntimeKind::Auto => &[RuntimeKind::Docker, RuntimeKind::Podman],
        RuntimeKind::Docker => &[RuntimeKind::Docker],
        RuntimeKind::Podman => &[RuntimeKind::Podman],
    };
    let mut runtime = None;
    for engine in engines {
        if let Ok(chosen) = setup::connect_runtime(*engine, &options).await {
            runtime = Some(chosen);
            break;
        }
    }
    let lines = setup::status(&data_dir, runtime.as_ref().map(|c| c.runtime.as_ref())).await?;
    print!("{}", setup::status_table(&lines));
    Ok(ExitCode::SUCCESS)
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
