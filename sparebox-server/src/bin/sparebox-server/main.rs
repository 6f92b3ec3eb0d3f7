//! `sparebox-server`: the reference Sparebox platform server.

mod settings;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use sparebox_server::{EncryptionKey, Keyring, Platform, PlatformConfig};
use sparebox_store::Store;
use tracing_subscriber::EnvFilter;

use settings::{Args, Database, ServerCommand, Settings, ENV_ENCRYPTION_KEY, ENV_RETIRED_KEYS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let command = args.command.take().unwrap_or(ServerCommand::Serve);
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("create data directory {}", settings.data_dir.display()))?;
    let keyring = keyring(&settings)?;
    let store = open_store(&settings.database).await?;
    let config = PlatformConfig {
        agent_image: settings.agent_image.clone(),
        heartbeat_interval: Duration::from_secs(settings.heartbeat_interval),
        heartbeat_concurrency: settings.heartbeat_concurrency,
        heartbeat_queue_timeout: Duration::from_millis(settings.heartbeat_queue_timeout_ms),
        secure_cookies: settings.secure_cookies,
        allow_moving_image_tags: settings.allow_moving_image_tags,
        stripe: settings.stripe.clone(),
        backups: sparebox_server::BackupConfig {
            dir: Some(settings.data_dir.join("backups")),
            max_bytes: settings.backup_max_mb * 1024 * 1024,
            keep: settings.backups_kept,
        },
        ..PlatformConfig::default()
    };
    tracing::info!(
        listen = %settings.listen,
        data_dir = %settings.data_dir.display(),
        database = %settings.database,
        agent_image = %config.agent_image,
        heartbeat_interval_s = config.heartbeat_interval.as_secs(),
        command_expiry_s = config.command_expiry.as_secs(),
        heartbeat_concurrency = config.heartbeat_concurrency,
        heartbeat_queue_timeout_ms = settings.heartbeat_queue_timeout_ms,
        secure_cookies = config.secure_cookies,
        backup_max_bytes = config.backups.max_bytes,
        backups_kept = config.backups.keep,
        billing = if config.stripe.is_some() { "stripe" } else { "free" },
        admin_email = settings.admin_email.as_deref().unwrap_or("-"),
        encryption_key = "[REDACTED]",
        "starting sparebox-server"
    );
    let platform = Platform::new(store, config, keyring);
    if let ServerCommand::RotateKeys { limit } = command {
        let report = platform
            .rotate_secrets(limit)
            .await
            .context("rotate keys")?;
        println!(
            "re-sealed {} agents' secrets under the active key; {} already current; {} unreadable",
            report.rotated, report.already_current, report.unreadable
        );
        if report.unreadable > 0 {
            bail!("some secrets could not be opened with any configured key: see the log");
        }
        return Ok(());
    }
    if let Some(email) = &settings.admin_email {
        grant_admin(&platform, email).await?;
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listen on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    sparebox_server::http::serve(listener, platform, shutdown_signal())
        .await
        .context("serve")?;
    tracing::info!("stopped");
    Ok(())
}

async fn open_store(database: &Database) -> anyhow::Result<Arc<dyn Store>> {
    match database {
        Database::Sqlite(path) => {
            let store = sparebox_store::sqlite::SqliteStore::open(path)
                .await
                .with_context(|| format!("open database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        Database::Postgres(url) => {
            let store = sparebox_store::postgres::PgStore::connect(url.expose())
                .await
                .context("connect to PostgreSQL")?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(_) => {
            bail!("this build has no PostgreSQL support: rebuild with `--features postgres`")
        }
    }
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

fn keyring(settings: &Settings) -> anyhow::Result<Keyring> {
    let active = active_key(settings)?;
    let mut keyring = Keyring::new(active);
    for (i, retired) in settings.retired_keys.iter().enumerate() {
        let key = EncryptionKey::from_hex(retired.expose())
            .with_context(|| format!("{ENV_RETIRED_KEYS}: key {}", i + 1))?;
        keyring = keyring
            .with_retired(key)
            .with_context(|| format!("{ENV_RETIRED_KEYS}: key {}", i + 1))?;
    }
    Ok(keyring)
}

fn active_key(settings: &Settings) -> anyhow::Result<EncryptionKey> {
    if let Some(hex) = &settings.encryption_key {
        return EncryptionKey::from_hex(hex.expose()).context(ENV_ENCRYPTION_KEY);
    }
    if !settings.allow_generated_key {
        bail!(
            "no encryption key: set {ENV_ENCRYPTION_KEY} to 64 hexadecimal characters \
             (e.g. `openssl rand -hex 32`), or pass --allow-generated-key to try Sparebox out"
        );
    }
    load_or_generate_key(&settings.data_dir.join("encryption.key"))
}

fn load_or_generate_key(path: &Path) -> anyhow::Result<EncryptionKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    if path.exists() {
        let hex = std::fs::read_to_string(path)
            .with_context(|| format!("read key file {}", path.display()))?;
        return EncryptionKey::from_hex(&hex)
            .with_context(|| format!("key file {}", path.display()));
    }
    let key = EncryptionKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create key file {}", path.display()))?;
    file.write_all(key.to_hex().expose().as_bytes())
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

/// Gives the admin role to the account with `email`; warns when there is none yet.
async fn grant_admin(platform: &Platform, email: &str) -> anyhow::Result<()> {
    match platform.grant_admin(email).await.context("grant admin")? {
        Some(account) => tracing::info!(account = %account.id, "admin role in place"),
        None => tracing::warn!(
            "no account signs in with the --admin-email address yet: sign it up, then restart"
        ),
    }
    Ok(())
}
