//! Rolling a new OpenClaw image out to running agents.
//!
//! Every agent is pinned to an image: its record keeps the reference it runs, set to
//! [`PlatformConfig::agent_image`] when it is created. An admin moves a share of the running
//! agents to a new image with [`Platform::rollout`]. The share is chosen by a hash of each
//! agent's id, so the same agents are picked every time and raising the percentage only
//! adds agents to the set. Each picked agent gets an `upgrade` command whose signed bundle
//! names the new image; the host keeps the new image only if the agent becomes healthy on
//! it, and otherwise goes back to the previous image and fails the command. The agent's
//! record takes the new image only when the upgrade is acked, so a failed upgrade leaves
//! it pinned where it was.
//!
//! References must be pinned: a version tag or a digest. `latest` and untagged references
//! are refused unless [`PlatformConfig::allow_moving_image_tags`] is set.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sparebox_store::Role;

use super::*;

/// The longest image reference accepted, in bytes (the registry limit is 255 for the
/// name; a digest adds 71).
pub const MAX_IMAGE_REFERENCE_BYTES: usize = 330;

/// An admin's request to move running agents to `image`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutRequest {
    /// The image reference, pinned by tag or digest.
    pub image: String,
    /// The share of running agents to upgrade, 1 to 100.
    pub percent: u8,
}

/// What a rollout did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    /// The image rolled out.
    pub image: String,
    /// The share asked for.
    pub percent: u8,
    /// Upgrade commands queued now.
    pub queued: Vec<CommandRecord>,
    /// Picked agents already pinned to the image.
    pub already_on_image: usize,
    /// Picked agents that already have an upgrade under way.
    pub in_progress: usize,
    /// Running agents outside the share.
    pub not_selected: usize,
}

/// Why an image reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    /// Empty, too long, or with characters a reference cannot have.
    #[error("image reference {0:?} is not a valid image reference")]
    Malformed(String),
    /// The `latest` tag or no tag: the image could change without a rollout.
    #[error(
        "image reference {0:?} is not pinned: name a version tag or a digest (latest and untagged references move)"
    )]
    Moving(String),
}

/// Checks that `image` is a well-formed reference and, unless `allow_moving`, pinned to a
/// tag other than `latest` or to a digest.
///
/// # Errors
///
/// [`ImageReferenceError`] saying which rule it breaks.
pub fn check_image_reference(image: &str, allow_moving: bool) -> Result<(), ImageReferenceError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    let malformed = image.is_empty()
        || image.len() > MAX_IMAGE_REFERENCE_BYTES
        || !image.chars().all(allowed)
        || image.starts_with(['/', ':', '@', '-', '.']);
    if malformed {
        return Err(ImageReferenceError::Malformed(image.to_owned()));
    }
    if image.contains('@') || allow_moving {
        return Ok(());
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once(':') {
        Some((_, tag)) if !tag.is_empty() && tag != "latest" => Ok(()),
        _ => Err(ImageReferenceError::Moving(image.to_owned())),
    }
}

/// Where `agent` falls in 0..100: the first 8 bytes of SHA-256 of its id, modulo 100.
fn bucket(agent: AgentId) -> u8 {
    let digest = Sha256::digest(agent.0.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

impl Platform {
    /// Queues an `upgrade` to `request.image` for the running agents whose id hash falls in
    /// the first `request.percent` of 100 buckets, skipping those already pinned to the
    /// image or with an upgrade under way.
    ///
    /// # Errors
    ///
    /// Forbidden without the `admin` role; bad request for a percentage outside 1..=100
    /// or a malformed or moving image reference.
    pub async fn rollout(
        &self,
        admin: &AccountRecord,
        request: RolloutRequest,
    ) -> Result<RolloutReport, PlatformError> {
        self.require_role(admin, Role::Admin, "rolling out an image")?;
        if !(1..=100).contains(&request.percent) {
            return Err(PlatformError::bad_request(format!(
                "percent: {} is outside 1..=100",
                request.percent
            )));
        }
        check_image_reference(&request.image, self.config.allow_moving_image_tags)
            .map_err(|err| PlatformError::bad_request(err.to_string()))?;
        let mut report = RolloutReport {
            image: request.image.clone(),
            percent: request.percent,
            queued: Vec::new(),
            already_on_image: 0,
            in_progress: 0,
            not_selected: 0,
        };
        for host in self.store.list_hosts().await? {
            for agent in self.store.agents_for_host(host.id).await? {
                if agent.state != AgentState::Running {
                    continue;
                }
                if bucket(agent.id) >= request.percent {
                    report.not_selected += 1;
                } else if agent.image == request.image {
                    report.already_on_image += 1;
                } else if self.upgrade_in_flight(agent.id).await? {
                    report.in_progress += 1;
                } else {
                    report
                        .queued
                        .push(self.queue_upgrade(&agent, &request.image).await?);
                }
            }
        }
        tracing::info!(image = %request.image, percent = request.percent, queued = report.queued.len(), "rollout queued");
        Ok(report)
    }

    async fn upgrade_in_flight(&self, agent: AgentId) -> Result<bool, PlatformError> {
        Ok(self
            .store
            .commands_for_agent(agent, 100)
            .await?
            .iter()
            .any(|c| {
                c.kind == CommandKind::Upgrade
                    && matches!(c.status, CommandStatus::Pending | CommandStatus::Sent)
            }))
    }

    async fn queue_upgrade(
        &self,
        agent: &AgentRecord,
        image: &str,
    ) -> Result<CommandRecord, PlatformError> {
        let command = self
            .store
            .enqueue_command(NewCommand {
                id: CommandId::new_random(),
                agent: agent.id,
                host: agent.host,
                kind: CommandKind::Upgrade,
                created_at: self.clock.now(),
                params: None,
                image: Some(image.to_owned()),
            })
            .await?;
        tracing::info!(agent = %agent.id, command = %command.id, from = %agent.image, to = %image, "upgrade queued");
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_references_pass_and_moving_ones_are_refused() {
        for ok in [
            "ghcr.io/openclaw/openclaw:2026.9.6",
            "localhost:5000/openclaw:v2",
            "openclaw@sha256:0123abcd",
            "sparebox-agent-test:v2",
        ] {
            assert_eq!(check_image_reference(ok, false), Ok(()), "{ok}");
        }
        for moving in ["openclaw", "openclaw:latest", "localhost:5000/openclaw"] {
            assert!(
                matches!(
                    check_image_reference(moving, false),
                    Err(ImageReferenceError::Moving(_))
                ),
                "{moving}"
            );
            assert_eq!(check_image_reference(moving, true), Ok(()));
        }
        for bad in ["", "a b:1", "-x:1", "x:1;rm", &"a".repeat(400)] {
            assert!(
                matches!(
                    check_image_reference(bad, true),
                    Err(ImageReferenceError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_larger_share_extends_the_same_set() {
        let agents: Vec<AgentId> = (0..400).map(|_| AgentId::new_random()).collect();
        let picked = |percent: u8| -> Vec<AgentId> {
            agents
                .iter()
                .copied()
                .filter(|a| bucket(*a) < percent)
                .collect()
        };
        let (ten, fifty) = (picked(10), picked(50));
        assert!(ten.iter().all(|a| fifty.contains(a)));
        assert_eq!(picked(100).len(), agents.len());
        assert!(ten.len() < fifty.len());
    }
}
