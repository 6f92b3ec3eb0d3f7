//! Deployer secrets at rest: sealed by the platform's [`Keyring`] (AES-256-GCM with key
//! ids), bound to their agent.

use std::collections::BTreeMap;

use sparebox_core::crypto::Keyring;
use sparebox_core::{AgentId, Secret};

use crate::error::{ErrorCode, PlatformError};

/// The environment variable names a deployer may set as secrets. Anything else is refused,
/// so a deployer cannot inject arbitrary environment into a container.
pub const ALLOWED_SECRET_NAMES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
];

/// The environment variable that carries the gateway's auth token (platform-generated).
pub const GATEWAY_TOKEN_ENV: &str = "OPENCLAW_GATEWAY_TOKEN";

/// Seals `secrets` for `agent` under the keyring's active key.
pub(crate) fn seal(
    keyring: &Keyring,
    agent: AgentId,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Vec<u8>, PlatformError> {
    keyring.seal_secrets(agent, secrets).map_err(|err| {
        tracing::error!(agent = %agent, error = %err, "sealing agent secrets failed");
        PlatformError::new(ErrorCode::Internal, "agent secrets could not be encrypted")
    })
}

/// Opens what [`seal`] sealed for `agent`; an empty blob is an empty map.
pub(crate) fn open(
    keyring: &Keyring,
    agent: AgentId,
    sealed: &[u8],
) -> Result<BTreeMap<String, Secret>, PlatformError> {
    if sealed.is_empty() {
        return Ok(BTreeMap::new());
    }
    keyring.open_secrets(agent, sealed).map_err(|err| {
        tracing::error!(agent = %agent, error = %err, "agent secrets could not be opened");
        PlatformError::new(ErrorCode::Internal, "agent secrets could not be decrypted")
    })
}
