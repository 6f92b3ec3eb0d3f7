//! `sparebox-server`: the reference Sparebox platform server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use sparebox_server::{MasterKey, Platform, PlatformConfig, DEFAULT_AGENT_IMAGE};
use sparebox_store::sqlite::SqliteStore;
use tracing_subscriber::EnvFilter;

/// Environment variable: address to listen on.
const ENV_LISTEN: &str = "SPAREBOX_LISTEN";
/// Environment variable: data directory.
const ENV_DATA_DIR: &str = "SPAREBOX_DATA_DIR";
/// Environment variable: database file or URL.
const ENV_DATABASE: &str = "SPAREBOX_DATABASE";
/// Environment variable: agent image.
const ENV_AGENT_IMAGE: &str = "SPAREBOX_AGENT_IMAGE";
/// Environment variable: encryption key for secrets at rest (64 hex characters).
const ENV_ENCRYPTION_KEY: &str = "SPAREBOX_ENCRYPTION_KEY";
/// Environment variable: allow generating an encryption key into the data directory.
const ENV_ALLOW_GENERATED_KEY: &str = "SPAREBOX_ALLOW_GENERATED_KEY";
/// Environment variable: heartbeat interval in seconds.
const ENV_HEARTBEAT_INTERVAL: &str = "SPAREBOX_HEARTBEAT_INTERVAL";

/// The Sparebox platform server: accounts, hosts, agents and the command queue.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = ENV_LISTEN, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the SQLite database and the generated key file.
    #[arg(long, env = ENV_DATA_DIR, default_value = "./sparebox-data")]
    data_dir: PathBuf,
    /// SQLite database file (default: `<data-dir>/sparebox.db`).
    #[arg(long, env = ENV_DATABASE)]
    database: Option<PathBuf>,
    /// Container image every agent runs.
    #[arg(long, env = ENV_AGENT_IMAGE, default_value = DEFAULT_AGENT_IMAGE)]
    agent_image: String,
    /// Key for deployer secrets at rest: 64 hexadecimal characters.
    #[arg(long, env = ENV_ENCRYPTION_KEY, hide_env_values = true)]
    encryption_key: Option<String>,
    /// Without an encryption key, generate one into `<data-dir>/encryption.key` (mode 0600).
    /// For trying Sparebox out only: production must set the key explicitly.
    #[arg(long, env = ENV_ALLOW_GENERATED_KEY)]
    allow_generated_key: bool,
    /// Seconds between heartbeats that daemons are told to use.
    #[arg(long, env = ENV_HEARTBEAT_INTERVAL, default_value_t = 60)]
    heartbeat_interval: u64,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create data directory {}", args.data_dir.display()))?;
    let master_key = master_key(&args)?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| args.data_dir.join("sparebox.db"));
    let store = SqliteStore::open(&database)
        .await
        .with_context(|| format!("open database {}", database.display()))?;
    let config = PlatformConfig {
        agent_image: args.agent_image.clone(),
        heartbeat_interval: Duration::from_secs(args.heartbeat_interval.max(1)),
        ..PlatformConfig::default()
    };
    tracing::info!(
        listen = %args.listen,
        database = %database.display(),
        agent_image = %config.agent_image,
        heartbeat_interval_s = config.heartbeat_interval.as_secs(),
        encryption_key = "[REDACTED]",
        "starting sparebox-server"
    );
    let platform = Platform::new(Arc::new(store), config, master_key);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    sparebox_server::http::serve(listener, platform, shutdown_signal())
        .await
        .context("serve")?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn master_key(args: &Args) -> anyhow::Result<MasterKey> {
    if let Some(hex) = &args.encryption_key {
        return MasterKey::from_hex(hex).context(ENV_ENCRYPTION_KEY);
    }
    if !args.allow_generated_key {
        bail!(
            "no encryption key: set {ENV_ENCRYPTION_KEY} to 64 hexadecimal characters \
             (e.g. `openssl rand -hex 32`), or pass --allow-generated-key to try Sparebox out"
        );
    }
    let path = args.data_dir.join("encryption.key");
    load_or_generate_key(&path)
}

fn load_or_generate_key(path: &Path) -> anyhow::Result<MasterKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    if path.exists() {
        let hex = std::fs::read_to_string(path)
            .with_context(|| format!("read key file {}", path.display()))?;
        return MasterKey::from_hex(&hex).with_context(|| format!("key file {}", path.display()));
    }
    let key = MasterKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create key file {}", path.display()))?;
    file.write_all(key.to_hex().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write key file {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "GENERATED A NEW ENCRYPTION KEY: fine for trying Sparebox out; for production set \
         SPAREBOX_ENCRYPTION_KEY and keep the key safe, losing it loses every stored secret"
    );
    Ok(key)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
