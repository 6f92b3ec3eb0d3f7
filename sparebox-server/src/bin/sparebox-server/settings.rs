//! The server's effective settings: flags, then `SPAREBOX_*` environment variables, then
//! the optional TOML file, then defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use sparebox_core::Secret;
use sparebox_server::{StripeConfig, DEFAULT_AGENT_IMAGE};

/// Environment variable: TOML settings file.
pub const ENV_CONFIG: &str = "SPAREBOX_CONFIG";
/// Environment variable: address to listen on.
pub const ENV_LISTEN: &str = "SPAREBOX_LISTEN";
/// Environment variable: data directory.
pub const ENV_DATA_DIR: &str = "SPAREBOX_DATA_DIR";
/// Environment variable: database (a SQLite file path or a `postgres://` URL).
pub const ENV_DATABASE: &str = "SPAREBOX_DATABASE";
/// Environment variable: agent image.
pub const ENV_AGENT_IMAGE: &str = "SPAREBOX_AGENT_IMAGE";
/// Environment variable: encryption key for secrets at rest (64 hex characters).
pub const ENV_ENCRYPTION_KEY: &str = "SPAREBOX_ENCRYPTION_KEY";
/// Environment variable: retired encryption keys, comma-separated; they still decrypt.
pub const ENV_RETIRED_KEYS: &str = "SPAREBOX_RETIRED_KEYS";
/// Environment variable: allow generating an encryption key into the data directory.
pub const ENV_ALLOW_GENERATED_KEY: &str = "SPAREBOX_ALLOW_GENERATED_KEY";
/// Environment variable: heartbeat interval in seconds.
pub const ENV_HEARTBEAT_INTERVAL: &str = "SPAREBOX_HEARTBEAT_INTERVAL";
/// Environment variable: heartbeats processed at once.
pub const ENV_HEARTBEAT_CONCURRENCY: &str = "SPAREBOX_HEARTBEAT_CONCURRENCY";
/// Environment variable: how long a heartbeat waits for its turn, in milliseconds.
pub const ENV_HEARTBEAT_QUEUE_TIMEOUT_MS: &str = "SPAREBOX_HEARTBEAT_QUEUE_TIMEOUT_MS";
/// Environment variable: log format.
pub const ENV_LOG_FORMAT: &str = "SPAREBOX_LOG_FORMAT";
/// Environment variable: the largest backup archive a host may upload, in MiB.
pub const ENV_BACKUP_MAX_MB: &str = "SPAREBOX_BACKUP_MAX_MB";
/// Environment variable: backups kept per agent.
pub const ENV_BACKUPS_KEPT: &str = "SPAREBOX_BACKUPS_KEPT";
/// Environment variable: email of an existing account to grant the admin role at start.
pub const ENV_ADMIN_EMAIL: &str = "SPAREBOX_ADMIN_EMAIL";
/// Environment variable: mark the session cookie `Secure` (HTTPS only).
pub const ENV_SECURE_COOKIES: &str = "SPAREBOX_SECURE_COOKIES";
/// Environment variable: accept moving image references (`latest`, untagged).
pub const ENV_ALLOW_MOVING_IMAGE_TAGS: &str = "SPAREBOX_ALLOW_MOVING_IMAGE_TAGS";
/// Environment variable: Stripe secret API key; with it, agents are paid for (Stripe mode).
pub const ENV_STRIPE_SECRET_KEY: &str = "SPAREBOX_STRIPE_SECRET_KEY";
/// Environment variable: the Stripe webhook endpoint's signing secret.
pub const ENV_STRIPE_WEBHOOK_SECRET: &str = "SPAREBOX_STRIPE_WEBHOOK_SECRET";
/// Environment variable: Stripe API base URL.
pub const ENV_STRIPE_API_BASE: &str = "SPAREBOX_STRIPE_API_BASE";
/// Environment variable: where Stripe sends a deployer after paying.
pub const ENV_STRIPE_SUCCESS_URL: &str = "SPAREBOX_STRIPE_SUCCESS_URL";
/// Environment variable: where Stripe sends a deployer who gave up.
pub const ENV_STRIPE_CANCEL_URL: &str = "SPAREBOX_STRIPE_CANCEL_URL";
/// Environment variable: currency of host prices (ISO code, such as `usd`).
pub const ENV_STRIPE_CURRENCY: &str = "SPAREBOX_STRIPE_CURRENCY";

/// The Sparebox platform server: accounts, hosts, agents and the command queue.
///
/// Every option can also come from a `SPAREBOX_*` environment variable or from the TOML
/// file given with `--config` (keys are the long option names with `_` for `-`).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// What to do; without one, the server serves.
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// TOML settings file.
    #[arg(long, env = ENV_CONFIG)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = ENV_LISTEN)]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite database and the generated key file [default: ./sparebox-data].
    #[arg(long, env = ENV_DATA_DIR)]
    data_dir: Option<PathBuf>,
    /// Database: a SQLite file path, or a `postgres://` URL (needs the `postgres` feature)
    /// [default: <data-dir>/sparebox.db].
    #[arg(long, env = ENV_DATABASE)]
    database: Option<String>,
    /// Container image every agent runs [default: the pinned OpenClaw image].
    #[arg(long, env = ENV_AGENT_IMAGE)]
    agent_image: Option<String>,
    /// Key for deployer secrets at rest: 64 hexadecimal characters.
    #[arg(long, env = ENV_ENCRYPTION_KEY, hide_env_values = true)]
    encryption_key: Option<String>,
    /// Retired keys (comma-separated, 64 hexadecimal characters each): values sealed under
    /// them still open; `rotate-keys` re-seals them under the active key.
    #[arg(long, env = ENV_RETIRED_KEYS, hide_env_values = true, value_delimiter = ',')]
    retired_keys: Vec<String>,
    /// Without an encryption key, generate one into `<data-dir>/encryption.key` (mode 0600).
    /// For trying Sparebox out only: production must set the key explicitly.
    #[arg(long, env = ENV_ALLOW_GENERATED_KEY)]
    allow_generated_key: bool,
    /// Seconds between heartbeats that daemons are told to use [default: 60].
    #[arg(long, env = ENV_HEARTBEAT_INTERVAL)]
    heartbeat_interval: Option<u64>,
    /// Heartbeats processed at once; a held heartbeat waiting for a command does not count
    /// [default: 64].
    #[arg(long, env = ENV_HEARTBEAT_CONCURRENCY)]
    heartbeat_concurrency: Option<usize>,
    /// How long a heartbeat waits for its turn before it is refused with 503 and
    /// Retry-After, in milliseconds [default: 2000].
    #[arg(long, env = ENV_HEARTBEAT_QUEUE_TIMEOUT_MS)]
    heartbeat_queue_timeout_ms: Option<u64>,
    /// The largest backup archive a host may upload, in MiB [default: 256].
    #[arg(long, env = ENV_BACKUP_MAX_MB)]
    backup_max_mb: Option<u64>,
    /// Backups kept per agent; older ones are deleted [default: 7].
    #[arg(long, env = ENV_BACKUPS_KEPT)]
    backups_kept: Option<u32>,
    /// Log format: text or json [default: text].
    #[arg(long, env = ENV_LOG_FORMAT, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Grant the admin role (read every agent) to the existing account with this email at
    /// start. Sign the account up first; nobody can choose admin at sign-up.
    #[arg(long, env = ENV_ADMIN_EMAIL)]
    admin_email: Option<String>,
    /// Mark the session cookie `Secure`, so browsers send it over HTTPS only. Set it
    /// whenever the server is reached over HTTPS.
    #[arg(long, env = ENV_SECURE_COOKIES)]
    secure_cookies: bool,
    /// Accept a moving image reference (the `latest` tag or no tag) as the agent image and
    /// in rollouts. For local development only: a moving tag changes what agents run
    /// without a rollout.
    #[arg(long, env = ENV_ALLOW_MOVING_IMAGE_TAGS)]
    allow_moving_image_tags: bool,
    /// Stripe secret API key. With it (and the webhook secret and redirect URLs) the
    /// server runs in Stripe mode: deployers pay through Stripe Checkout. Without it,
    /// agents are free.
    #[arg(long, env = ENV_STRIPE_SECRET_KEY, hide_env_values = true)]
    stripe_secret_key: Option<String>,
    /// Signing secret of the Stripe webhook endpoint (`/api/v1/billing/stripe/webhook`).
    #[arg(long, env = ENV_STRIPE_WEBHOOK_SECRET, hide_env_values = true)]
    stripe_webhook_secret: Option<String>,
    /// Stripe API base URL [default: https://api.stripe.com].
    #[arg(long, env = ENV_STRIPE_API_BASE)]
    stripe_api_base: Option<String>,
    /// Where Stripe sends a deployer after paying.
    #[arg(long, env = ENV_STRIPE_SUCCESS_URL)]
    stripe_success_url: Option<String>,
    /// Where Stripe sends a deployer who gave up paying.
    #[arg(long, env = ENV_STRIPE_CANCEL_URL)]
    stripe_cancel_url: Option<String>,
    /// Currency of host prices, an ISO code [default: usd].
    #[arg(long, env = ENV_STRIPE_CURRENCY)]
    stripe_currency: Option<String>,
}

/// Tasks other than serving.
#[derive(Debug, clap::Subcommand)]
pub enum ServerCommand {
    /// Serve the API (the default).
    Serve,
    /// Re-seal every stored secret under the active encryption key, after adding a new
    /// key with the old one in `--retired-keys`. Safe to interrupt and run again.
    RotateKeys {
        /// Stop after re-sealing this many agents' secrets.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// The TOML file's shape: the same names as the long options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    agent_image: Option<String>,
    encryption_key: Option<String>,
    retired_keys: Option<Vec<String>>,
    allow_generated_key: Option<bool>,
    heartbeat_interval: Option<u64>,
    heartbeat_concurrency: Option<usize>,
    heartbeat_queue_timeout_ms: Option<u64>,
    backup_max_mb: Option<u64>,
    backups_kept: Option<u32>,
    log_format: Option<String>,
    admin_email: Option<String>,
    secure_cookies: Option<bool>,
    allow_moving_image_tags: Option<bool>,
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_api_base: Option<String>,
    stripe_success_url: Option<String>,
    stripe_cancel_url: Option<String>,
    stripe_currency: Option<String>,
}

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (redacted when printed).
    Postgres(Secret),
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Database::Postgres(_) => f.write_str("postgres:[REDACTED]"),
        }
    }
}

/// The settings the server runs with.
#[derive(Debug)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database.
    pub database: Database,
    /// Agent image.
    pub agent_image: String,
    /// Encryption key, when given.
    pub encryption_key: Option<Secret>,
    /// Retired keys.
    pub retired_keys: Vec<Secret>,
    /// Whether a key may be generated.
    pub allow_generated_key: bool,
    /// Heartbeat interval in seconds (at least 1).
    pub heartbeat_interval: u64,
    /// Heartbeats processed at once (at least 1).
    pub heartbeat_concurrency: usize,
    /// How long a heartbeat waits for its turn, in milliseconds (at least 1).
    pub heartbeat_queue_timeout_ms: u64,
    /// The backup size cap in MiB (at least 1).
    pub backup_max_mb: u64,
    /// Backups kept per agent (at least 1).
    pub backups_kept: u32,
    /// `text` or `json`.
    pub log_format: String,
    /// The account to make an admin at start.
    pub admin_email: Option<String>,
    /// Whether the session cookie is `Secure`.
    pub secure_cookies: bool,
    /// Whether moving image references are accepted.
    pub allow_moving_image_tags: bool,
    /// Stripe mode's settings (keys redacted when printed); `None` is free mode.
    pub stripe: Option<StripeConfig>,
}

impl Settings {
    /// Merges flags and environment (already in `args`) over the TOML file over defaults.
    pub fn resolve(args: Args) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let stripe = stripe_config(&args, &file)?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./sparebox-data"));
        let database = match args.database.or(file.database) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(Secret::new(url))
            }
            Some(path) => Database::Sqlite(PathBuf::from(path)),
            None => Database::Sqlite(data_dir.join("sparebox.db")),
        };
        let log_format = args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".to_owned());
        anyhow::ensure!(
            log_format == "text" || log_format == "json",
            "log_format must be text or json, not {log_format:?}"
        );
        let allow_moving_image_tags =
            args.allow_moving_image_tags || file.allow_moving_image_tags.unwrap_or(false);
        let agent_image = args
            .agent_image
            .or(file.agent_image)
            .unwrap_or_else(|| DEFAULT_AGENT_IMAGE.to_owned());
        sparebox_server::check_image_reference(&agent_image, allow_moving_image_tags)
            .map_err(|err| anyhow::anyhow!("agent_image: {err}"))?;
        Ok(Self {
            stripe,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            database,
            agent_image,
            allow_moving_image_tags,
            encryption_key: args.encryption_key.or(file.encryption_key).map(Secret::new),
            retired_keys: if args.retired_keys.is_empty() {
                file.retired_keys.unwrap_or_default()
            } else {
                args.retired_keys
            }
            .into_iter()
            .map(Secret::new)
            .collect(),
            allow_generated_key: args.allow_generated_key
                || file.allow_generated_key.unwrap_or(false),
            heartbeat_interval: args
                .heartbeat_interval
                .or(file.heartbeat_interval)
                .unwrap_or(60)
                .max(1),
            heartbeat_concurrency: args
                .heartbeat_concurrency
                .or(file.heartbeat_concurrency)
                .unwrap_or(64)
                .max(1),
            heartbeat_queue_timeout_ms: args
                .heartbeat_queue_timeout_ms
                .or(file.heartbeat_queue_timeout_ms)
                .unwrap_or(2000)
                .max(1),
            backup_max_mb: args
                .backup_max_mb
                .or(file.backup_max_mb)
                .unwrap_or(256)
                .clamp(1, 64 * 1024),
            backups_kept: args.backups_kept.or(file.backups_kept).unwrap_or(7).max(1),
            log_format,
            admin_email: args.admin_email.or(file.admin_email),
            secure_cookies: args.secure_cookies || file.secure_cookies.unwrap_or(false),
        })
    }
}

/// Stripe mode needs the secret key, the webhook secret and both redirect URLs together.
fn stripe_config(args: &Args, file: &FileSettings) -> anyhow::Result<Option<StripeConfig>> {
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or(file.clone());
    let key = pick(&args.stripe_secret_key, &file.stripe_secret_key);
    let webhook = pick(&args.stripe_webhook_secret, &file.stripe_webhook_secret);
    let success = pick(&args.stripe_success_url, &file.stripe_success_url);
    let cancel = pick(&args.stripe_cancel_url, &file.stripe_cancel_url);
    let (key, webhook, success, cancel) = match (key, webhook, success, cancel) {
        (None, None, _, _) => return Ok(None),
        (Some(key), Some(webhook), Some(success), Some(cancel)) => (key, webhook, success, cancel),
        _ => anyhow::bail!(
            "stripe mode needs stripe_secret_key, stripe_webhook_secret, stripe_success_url \
             and stripe_cancel_url together"
        ),
    };
    let mut config = StripeConfig::new(Secret::new(key), Secret::new(webhook), success, cancel);
    if let Some(base) = pick(&args.stripe_api_base, &file.stripe_api_base) {
        config.api_base = base;
    }
    if let Some(currency) = pick(&args.stripe_currency, &file.stripe_currency) {
        config.currency = currency.to_lowercase();
    }
    Ok(Some(config))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("settings file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::parse_from(std::iter::once("sparebox-server").chain(args.iter().copied()))
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nheartbeat_interval = 30\nagent_image = \"img:file\"\n\
             heartbeat_concurrency = 8\nheartbeat_queue_timeout_ms = 500\n",
        )
        .unwrap();
        let settings = Settings::resolve(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--agent-image",
            "img:flag",
            "--heartbeat-concurrency",
            "16",
        ]))
        .unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.heartbeat_interval, 30);
        assert_eq!(settings.heartbeat_concurrency, 16);
        assert_eq!(settings.heartbeat_queue_timeout_ms, 500);
        assert_eq!(settings.agent_image, "img:flag");
        assert_eq!(settings.log_format, "text");
        assert_eq!(
            settings.database,
            Database::Sqlite(PathBuf::from("./sparebox-data/sparebox.db"))
        );
    }

    #[test]
    fn a_moving_agent_image_needs_the_flag() {
        let err = Settings::resolve(parse(&["--agent-image", "openclaw:latest"])).unwrap_err();
        assert!(format!("{err:#}").contains("is not pinned"), "{err:#}");
        let settings = Settings::resolve(parse(&[
            "--agent-image",
            "openclaw",
            "--allow-moving-image-tags",
        ]))
        .unwrap();
        assert!(settings.allow_moving_image_tags);
        assert_eq!(settings.agent_image, "openclaw");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `listne`"),
            "{err:#}"
        );
    }

    #[test]
    fn postgres_urls_are_redacted_when_printed() {
        let settings =
            Settings::resolve(parse(&["--database", "postgres://u:hunter2@db/sparebox"])).unwrap();
        assert_eq!(settings.database.to_string(), "postgres:[REDACTED]");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn stripe_mode_needs_every_setting_and_keys_are_redacted() {
        let settings = Settings::resolve(parse(&[])).unwrap();
        assert!(settings.stripe.is_none(), "free mode by default");

        let err =
            Settings::resolve(parse(&["--stripe-secret-key", "sk_test_hunter2"])).unwrap_err();
        assert!(
            format!("{err:#}").contains("stripe_webhook_secret"),
            "{err:#}"
        );

        let settings = Settings::resolve(parse(&[
            "--stripe-secret-key",
            "sk_test_hunter2",
            "--stripe-webhook-secret",
            "whsec_hunter3",
            "--stripe-success-url",
            "https://example.test/paid",
            "--stripe-cancel-url",
            "https://example.test/cancel",
        ]))
        .unwrap();
        let stripe = settings.stripe.as_ref().unwrap();
        assert_eq!(stripe.api_base, "https://api.stripe.com");
        assert_eq!(stripe.currency, "usd");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("hunter3"));
    }
}
