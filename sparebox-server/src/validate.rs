//! Checks on what deployers and owners send, before anything is stored.

use std::collections::BTreeMap;

use sparebox_core::openclaw_config::{DeployerConfig, GATEWAY_PORT};
use sparebox_core::{Secret, Tier};
use sparebox_protocol::WorkspaceFile;

use crate::error::PlatformError;
use crate::secrets::ALLOWED_SECRET_NAMES;

/// The longest display name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// The longest secret value, in bytes.
const MAX_SECRET_BYTES: usize = 4096;

/// A trimmed display name of 1 to 64 printable characters.
pub fn display_name(what: &str, name: &str) -> Result<String, PlatformError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(PlatformError::bad_request(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(PlatformError::bad_request(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(name.to_owned())
}

/// The longest email address, in bytes (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;
/// The longest local part of an email address, in bytes.
const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// The shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The longest region text, in characters.
const MAX_REGION_CHARS: usize = 32;
/// The highest price of a tier, in cents per month.
pub const MAX_PRICE_CENTS: i64 = 1_000_000;
/// The highest manual cap on a host's agents.
pub const MAX_AGENTS_CAP: i64 = 1000;

/// An email address, trimmed and lowercased: one `@`, a non-empty local part of at most 64
/// bytes, a domain with a dot and no empty labels, no spaces or control characters, at
/// most 254 bytes. Deliverability is not checked.
pub fn email(raw: &str) -> Result<String, PlatformError> {
    let email = raw.trim().to_lowercase();
    let bad = || {
        PlatformError::bad_request(format!(
            "email must look like name@example.com (at most {MAX_EMAIL_BYTES} characters)"
        ))
    };
    if email.len() > MAX_EMAIL_BYTES
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
    {
        return Err(bad());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad());
    };
    let domain_ok = domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
        && !domain.contains('@');
    if local.is_empty() || local.len() > MAX_EMAIL_LOCAL_BYTES || !domain_ok {
        return Err(bad());
    }
    Ok(email)
}

/// A password of 10 to 1024 characters. The message never repeats the password.
pub fn password(password: &Secret) -> Result<(), PlatformError> {
    let chars = password.expose().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(PlatformError::bad_request(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A tier name from the API.
pub fn tier(what: &str, name: &str) -> Result<Tier, PlatformError> {
    name.parse().map_err(|e: sparebox_core::tier::UnknownTier| {
        PlatformError::bad_request(format!("{what}: {e}"))
    })
}

/// A host's region: trimmed, 1 to 32 printable characters.
pub fn region(region: &str) -> Result<String, PlatformError> {
    let region = region.trim();
    if region.is_empty() || region.chars().count() > MAX_REGION_CHARS {
        return Err(PlatformError::bad_request(format!(
            "region must be 1 to {MAX_REGION_CHARS} characters"
        )));
    }
    if region.chars().any(char::is_control) {
        return Err(PlatformError::bad_request(
            "region must not contain control characters",
        ));
    }
    Ok(region.to_owned())
}

/// A price in cents per month, 0 to 1,000,000.
pub fn price(tier: Tier, cents: i64) -> Result<u32, PlatformError> {
    if !(0..=MAX_PRICE_CENTS).contains(&cents) {
        return Err(PlatformError::bad_request(format!(
            "price of the {tier} tier must be 0 to {MAX_PRICE_CENTS} cents per month"
        )));
    }
    Ok(u32::try_from(cents).expect("checked range"))
}

/// A manual cap on a host's agents, 1 to 1000.
pub fn max_agents(cap: i64) -> Result<u32, PlatformError> {
    if !(1..=MAX_AGENTS_CAP).contains(&cap) {
        return Err(PlatformError::bad_request(format!(
            "maxAgents must be 1 to {MAX_AGENTS_CAP}"
        )));
    }
    Ok(u32::try_from(cap).expect("checked range"))
}

/// The deployer's `openclaw.json`, given either as a JSON object or as a string holding
/// JSON5 text (comments, trailing commas and unquoted keys allowed; syntax errors name the
/// line and column). Checked by [`sparebox_core::openclaw_config::DeployerConfig`]: size and
/// nesting limits, known top-level keys, OpenClaw's configuration schema, and none of the
/// platform-owned gateway keys. Absent means `{}`.
pub fn openclaw_config(
    config: Option<serde_json::Value>,
) -> Result<serde_json::Value, PlatformError> {
    let parsed = match config {
        None => DeployerConfig::from_value(serde_json::json!({})),
        Some(serde_json::Value::String(text)) => DeployerConfig::parse(&text),
        Some(value) => DeployerConfig::from_value(value),
    };
    parsed
        .map(DeployerConfig::into_value)
        .map_err(|err| PlatformError::bad_request(format!("{err}")))
}

/// The config with the platform's gateway settings merged in: local mode, bound to the
/// container's network, the fixed port, token auth (the token comes from the environment).
pub fn with_platform_keys(config: serde_json::Value) -> serde_json::Value {
    match DeployerConfig::from_value(config.clone()) {
        Ok(parsed) => parsed.with_platform_keys(),
        // Stored configs were validated on the way in; one that no longer passes (a newer
        // schema, say) still gets the platform's keys rather than being dropped.
        Err(_) => merge_platform_keys(config),
    }
}

fn merge_platform_keys(mut config: serde_json::Value) -> serde_json::Value {
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let root = config.as_object_mut().expect("checked above");
    let gateway = root
        .entry("gateway")
        .or_insert_with(|| serde_json::json!({}));
    if !gateway.is_object() {
        *gateway = serde_json::json!({});
    }
    let gateway = gateway.as_object_mut().expect("checked above");
    gateway.insert("mode".into(), "local".into());
    gateway.insert("bind".into(), "lan".into());
    gateway.insert("port".into(), GATEWAY_PORT.into());
    gateway.insert("auth".into(), serde_json::json!({ "mode": "token" }));
    config
}

/// Workspace files: safe relative paths, no duplicates, within the size limits of
/// [`sparebox_core::workspace`].
pub fn workspace_files(files: &[WorkspaceFile]) -> Result<(), PlatformError> {
    let sizes: Vec<(&str, u64)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.len() as u64))
        .collect();
    sparebox_core::workspace::validate_workspace(&sizes)
        .map(|_| ())
        .map_err(|e| PlatformError::bad_request(e.to_string()))
}

/// Deployer secrets: only the allowed variable names, non-empty values within bounds.
pub fn secrets(
    secrets: BTreeMap<String, Secret>,
) -> Result<BTreeMap<String, Secret>, PlatformError> {
    for (name, value) in &secrets {
        if !ALLOWED_SECRET_NAMES.contains(&name.as_str()) {
            return Err(PlatformError::bad_request(format!(
                "secret {name:?} is not accepted: expected one of {}",
                ALLOWED_SECRET_NAMES.join(", ")
            )));
        }
        if value.expose().is_empty() || value.expose().len() > MAX_SECRET_BYTES {
            return Err(PlatformError::bad_request(format!(
                "secret {name} must be 1 to {MAX_SECRET_BYTES} bytes"
            )));
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparebox_core::openclaw_config::PLATFORM_OWNED_KEYS;

    #[test]
    fn platform_owned_gateway_keys_are_refused_by_name() {
        for owned in PLATFORM_OWNED_KEYS {
            let key = owned.strip_prefix("gateway.").unwrap();
            let config = serde_json::json!({ "gateway": { key: "x" } });
            let err = openclaw_config(Some(config)).unwrap_err();
            assert!(err.message.contains(owned), "{}", err.message);
            assert!(err.message.contains("platform"), "{}", err.message);
        }
    }

    #[test]
    fn json5_text_is_accepted_and_syntax_errors_name_line_and_column() {
        let text = "{\n  // a comment\n  agents: { defaults: {} },\n}\n";
        let config = openclaw_config(Some(serde_json::Value::String(text.into()))).unwrap();
        assert!(config["agents"].is_object());

        let broken = "{\n  agents: {\n    defaults: [1, 2\n}\n";
        let err = openclaw_config(Some(serde_json::Value::String(broken.into()))).unwrap_err();
        assert!(
            err.message.starts_with("openclaw.json is not valid json5"),
            "{}",
            err.message
        );
        assert!(err.message.contains("line"), "{}", err.message);
    }

    #[test]
    fn unknown_top_level_keys_are_refused_by_name() {
        let err = openclaw_config(Some(serde_json::json!({ "agentz": {} }))).unwrap_err();
        assert!(err.message.contains("agentz"), "{}", err.message);
    }

    #[test]
    fn hostile_workspace_paths_are_refused() {
        for path in [
            "../etc/passwd",
            "/abs",
            "a/../b",
            "a\\b",
            "a//b",
            "a\0b",
            "",
            "./a",
        ] {
            let files = [WorkspaceFile {
                path: path.to_owned(),
                content: String::new(),
            }];
            assert!(workspace_files(&files).is_err(), "{path:?} accepted");
        }
    }

    #[test]
    fn platform_keys_override_a_deployer_config() {
        let merged = with_platform_keys(serde_json::json!({ "agents": { "x": 1 } }));
        assert_eq!(merged["gateway"]["mode"], "local");
        assert_eq!(merged["gateway"]["port"], 18789);
        assert_eq!(merged["agents"]["x"], 1);
    }

    #[test]
    fn emails_are_normalised_and_malformed_ones_refused() {
        assert_eq!(email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@example..com",
            "alice@-example.com",
            "a<b>@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(email(&long).is_err());
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(password(&Secret::new("short")).is_err());
        assert!(password(&Secret::new("ten chars!")).is_ok());
        assert!(password(&Secret::new("é".repeat(1024))).is_ok());
        let err = password(&Secret::new("x".repeat(1025))).unwrap_err();
        assert_eq!(err.message, "password must be 10 to 1024 characters");
    }

    #[test]
    fn unknown_secret_names_are_refused() {
        let input = BTreeMap::from([("LD_PRELOAD".to_owned(), Secret::new("/evil.so"))]);
        let err = secrets(input).unwrap_err();
        assert!(err
            .message
            .starts_with("secret \"LD_PRELOAD\" is not accepted"));
        assert!(!err.message.contains("evil"));
    }
}
