//! Checking a deployer's `openclaw.json` and adding the keys the platform owns.
//!
//! OpenClaw reads its configuration as JSON5. A deployer may set almost anything in it,
//! but not how the gateway listens and authenticates: the platform runs every agent's
//! gateway as `mode: "local"`, `bind: "lan"`, port [`GATEWAY_PORT`] and token
//! authentication, with the token passed as the `OPENCLAW_GATEWAY_TOKEN` environment
//! variable. [`DeployerConfig::parse`] checks, in order:
//!
//! 1. size ([`MAX_CONFIG_BYTES`]) and nesting ([`MAX_NESTING`]), before parsing;
//! 2. JSON5 syntax, with line and column in the error;
//! 3. that the top level is an object whose keys OpenClaw knows ([`TOP_LEVEL_KEYS`]);
//! 4. that no platform-owned key is set ([`PLATFORM_OWNED_KEYS`], and environment
//!    overrides that would reach the gateway's own settings, see below);
//! 5. with the `schema` feature (on by default), the OpenClaw schema of
//!    [`OPENCLAW_VERSION`], see [`schema`].
//!
//! Besides the four gateway keys, `env.vars` may not name `NODE_OPTIONS` or any variable
//! starting with `OPENCLAW_` (compared ignoring case): OpenClaw merges `env.vars` into its
//! own process environment, and those variables carry the platform's token, state
//! directory and memory settings.
//!
//! Error messages name keys and rules but never repeat the deployer's values, which may
//! hold credentials.

mod scan;
#[cfg(feature = "schema")]
pub mod schema;

use serde_json::{Map, Value};
use thiserror::Error;

/// The OpenClaw release whose configuration this module knows.
pub const OPENCLAW_VERSION: &str = "2026.9.6";
/// The largest accepted `openclaw.json`, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// The deepest accepted nesting of objects and arrays.
pub const MAX_NESTING: usize = 64;
/// The port every agent's gateway listens on inside its container.
pub const GATEWAY_PORT: u16 = 18789;
/// The keys the platform sets and deployers may not (`gateway.auth` with any sub-key).
pub const PLATFORM_OWNED_KEYS: &[&str] = &[
    "gateway.mode",
    "gateway.bind",
    "gateway.port",
    "gateway.auth",
];
/// Every top-level key OpenClaw 2026.9.6 accepts, from its schema.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "$schema",
    "meta",
    "env",
    "wizard",
    "diagnostics",
    "logging",
    "update",
    "telemetry",
    "browser",
    "ui",
    "secrets",
    "auth",
    "accessGroups",
    "acp",
    "models",
    "nodeHost",
    "agents",
    "worktreeRoot",
    "worktreeAcceleration",
    "tools",
    "security",
    "bindings",
    "broadcast",
    "attachments",
    "messages",
    "tts",
    "commands",
    "approvals",
    "session",
    "cron",
    "transcripts",
    "hooks",
    "channels",
    "discovery",
    "talk",
    "gateway",
    "cloudWorkers",
    "desktop",
    "memory",
    "mcp",
    "skills",
    "plugins",
    "surfaces",
    "proxy",
];

/// How many characters of a deployer's key an error quotes.
const QUOTED_KEY_CHARS: usize = 64;

/// A deployer's `openclaw.json` that passed every check, without platform-owned keys.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployerConfig(Map<String, Value>);

impl DeployerConfig {
    /// Parses and checks JSON5 text.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first failed step in the [module docs](self).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { bytes: text.len() });
        }
        scan::check_nesting(text, MAX_NESTING)?;
        let value: Value = json5::from_str(text).map_err(syntax_error)?;
        Self::from_value(value)
    }

    /// Checks an already parsed value (for example one stored as JSON).
    ///
    /// # Errors
    ///
    /// As [`DeployerConfig::parse`], except for syntax.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        if scan::value_depth(&value) > MAX_NESTING {
            return Err(ConfigError::TooDeep {
                line: None,
                column: None,
            });
        }
        let Value::Object(map) = value else {
            return Err(ConfigError::NotAnObject);
        };
        check_top_level(&map)?;
        check_platform_owned(&map)?;
        #[cfg(feature = "schema")]
        schema::check(&map)?;
        Ok(Self(map))
    }

    /// The checked configuration.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The checked configuration as a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The configuration with the platform-owned gateway keys added: what the agent's
    /// container gets as its `openclaw.json`.
    pub fn with_platform_keys(&self) -> Value {
        let mut config = self.0.clone();
        let gateway = config
            .entry("gateway")
            .or_insert_with(|| Value::Object(Map::new()));
        if !gateway.is_object() {
            *gateway = Value::Object(Map::new());
        }
        if let Value::Object(gateway) = gateway {
            gateway.insert("mode".to_owned(), "local".into());
            gateway.insert("bind".to_owned(), "lan".into());
            gateway.insert("port".to_owned(), GATEWAY_PORT.into());
            gateway.insert("auth".to_owned(), serde_json::json!({ "mode": "token" }));
        }
        Value::Object(config)
    }
}

fn syntax_error(err: json5::Error) -> ConfigError {
    let message = match err.code() {
        Some(code) => code.to_string(),
        None => "invalid value".to_owned(),
    };
    let position = err.position();
    ConfigError::Syntax {
        line: position.map(|p| p.line + 1),
        column: position.map(|p| p.column + 1),
        message,
    }
}

fn check_top_level(map: &Map<String, Value>) -> Result<(), ConfigError> {
    match map
        .keys()
        .find(|key| !TOP_LEVEL_KEYS.contains(&key.as_str()))
    {
        Some(key) => Err(ConfigError::UnknownTopLevelKey { key: quote(key) }),
        None => Ok(()),
    }
}

fn check_platform_owned(map: &Map<String, Value>) -> Result<(), ConfigError> {
    let mut keys = Vec::new();
    if let Some(Value::Object(gateway)) = map.get("gateway") {
        for owned in PLATFORM_OWNED_KEYS {
            let field = owned.trim_start_matches("gateway.");
            if gateway.contains_key(field) {
                keys.push((*owned).to_owned());
            }
        }
    }
    let vars = map.get("env").and_then(|env| env.get("vars"));
    if let Some(Value::Object(vars)) = vars {
        keys.extend(
            vars.keys()
                .filter(|name| is_platform_variable(name))
                .map(|name| format!("env.vars.{}", quote(name))),
        );
    }
    if keys.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::PlatformOwned { keys })
    }
}

fn is_platform_variable(name: &str) -> bool {
    let upper = name.trim().to_ascii_uppercase();
    upper.starts_with("OPENCLAW_") || upper == "NODE_OPTIONS"
}

/// `key` as a Rust string literal (so control characters show), cut short if long.
pub(crate) fn quote(key: &str) -> String {
    let mut chars = key.chars();
    let head: String = chars.by_ref().take(QUOTED_KEY_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// One place where a configuration breaks the OpenClaw schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// Where, as a dotted path (`gateway.controlUi.enabled`, `agents.list[0]`); empty for
    /// the top level.
    pub path: String,
    /// What is wrong, without the offending value.
    pub message: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "top level: {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a deployer's `openclaw.json` was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is larger than [`MAX_CONFIG_BYTES`].
    #[error("openclaw.json is {bytes} bytes, the limit is {MAX_CONFIG_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Objects and arrays nest deeper than [`MAX_NESTING`].
    #[error("openclaw.json nests objects and arrays deeper than {MAX_NESTING} levels{}", at(*.line, *.column))]
    TooDeep {
        /// The line (from 1) where the limit is passed, when parsing text.
        line: Option<usize>,
        /// The column (from 1), when parsing text.
        column: Option<usize>,
    },
    /// The text is not valid JSON5.
    #[error("openclaw.json is not valid json5{}: {message}", at(*.line, *.column))]
    Syntax {
        /// The line (from 1), when known.
        line: Option<usize>,
        /// The column (from 1), when known.
        column: Option<usize>,
        /// What the parser expected.
        message: String,
    },
    /// The top level is not an object.
    #[error("openclaw.json must be an object at the top level")]
    NotAnObject,
    /// A top-level key OpenClaw does not know.
    #[error(
        "openclaw.json: unknown top-level key {key} (OpenClaw {OPENCLAW_VERSION} does not know it)"
    )]
    UnknownTopLevelKey {
        /// The key, quoted.
        key: String,
    },
    /// Keys the platform owns were set.
    #[error("openclaw.json: {} owned by the platform and cannot be set by a deployer", owned_list(.keys))]
    PlatformOwned {
        /// The dotted keys.
        keys: Vec<String>,
    },
    /// The configuration breaks the OpenClaw schema.
    #[error("openclaw.json does not match the OpenClaw {OPENCLAW_VERSION} schema: {}", violation_list(.0))]
    Schema(Vec<SchemaViolation>),
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line} column {column}"),
        _ => String::new(),
    }
}

fn owned_list(keys: &[String]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.len() {
        1 => format!("{} is", quoted[0]),
        _ => format!("{} are", quoted.join(", ")),
    }
}

fn violation_list(violations: &[SchemaViolation]) -> String {
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

#[cfg(test)]
mod tests;
