//! The deploy bundle: everything a daemon needs to run one agent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sparebox_core::{AgentId, CommandId, Secret, Tier};

/// One file of the agent's OpenClaw workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceFile {
    /// Relative path inside the workspace, with `/` separators (`memory/notes.md`).
    pub path: String,
    /// UTF-8 content.
    pub content: String,
}

/// The configuration bundle served to the daemon for a deploy or configuration update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployBundle {
    /// The agent.
    pub agent_id: AgentId,
    /// The command this bundle belongs to.
    pub command_id: CommandId,
    /// The agent's tier; the daemon applies its limits.
    pub tier: Tier,
    /// The container image, chosen by the platform (never by the deployer).
    pub image: String,
    /// The deployer's `openclaw.json`, already merged with the platform-owned keys.
    pub openclaw_config: serde_json::Value,
    /// Workspace files.
    pub workspace_files: Vec<WorkspaceFile>,
    /// Environment variables holding secrets (LLM API keys, the gateway token).
    pub secrets: BTreeMap<String, Secret>,
    /// When the bundle was issued (server clock).
    pub issued_at: DateTime<Utc>,
    /// After this the daemon must not use the bundle.
    pub expires_at: DateTime<Utc>,
}
