//! Re-sealing stored secrets under the active key after a key rotation.

use super::*;

/// What a rotation pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Agents whose secrets were re-sealed under the active key.
    pub rotated: usize,
    /// Agents whose secrets were already under the active key (or who have none).
    pub already_current: usize,
    /// Agents whose secrets no key in the keyring opens; they are left untouched.
    pub unreadable: usize,
}

impl Platform {
    /// Re-seals every agent's secrets that are not under the keyring's active key, one
    /// agent at a time. Each agent's update is atomic, so the pass can be interrupted at
    /// any point and run again: it skips what is already done. `limit` stops after that
    /// many re-seals (`None` for all), for operators who want to go in batches.
    ///
    /// # Errors
    ///
    /// Internal on storage failure; agents already re-sealed stay re-sealed.
    pub async fn rotate_secrets(
        &self,
        limit: Option<usize>,
    ) -> Result<RotationReport, PlatformError> {
        let mut report = RotationReport::default();
        for host in self.store.list_hosts().await? {
            for agent in self.store.agents_for_host(host.id).await? {
                if limit.is_some_and(|limit| report.rotated >= limit) {
                    return Ok(report);
                }
                if agent.sealed_secrets.is_empty() {
                    report.already_current += 1;
                    continue;
                }
                match self.keyring.needs_rotation(&agent.sealed_secrets) {
                    Ok(false) => report.already_current += 1,
                    Ok(true) => match self.keyring.reencrypt(agent.id, &agent.sealed_secrets) {
                        Ok(sealed) => {
                            let update = AgentUpdate {
                                sealed_secrets: Some(sealed),
                                ..AgentUpdate::default()
                            };
                            self.store.update_agent(agent.id, update).await?;
                            report.rotated += 1;
                        }
                        Err(err) => {
                            tracing::error!(agent = %agent.id, error = %err, "secrets could not be re-sealed");
                            report.unreadable += 1;
                        }
                    },
                    Err(err) => {
                        tracing::error!(agent = %agent.id, error = %err, "sealed secrets are malformed");
                        report.unreadable += 1;
                    }
                }
            }
        }
        tracing::info!(
            rotated = report.rotated,
            already_current = report.already_current,
            unreadable = report.unreadable,
            "secret rotation pass finished"
        );
        Ok(report)
    }
}
