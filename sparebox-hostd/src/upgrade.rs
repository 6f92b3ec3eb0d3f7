//! Moving an agent to a new image, and back when it does not become healthy there.
//!
//! An `upgrade` command's signed bundle names the image the platform chose. The daemon
//! makes sure the image is on the host, then recreates the agent's container on it with
//! the same state directory, gateway port and secrets (from the bundle) and waits up to
//! [`DaemonConfig::upgrade_health_timeout`](crate::DaemonConfig::upgrade_health_timeout)
//! for a healthy `/healthz`. A container that exits or is restarted by the engine while
//! waiting (OpenClaw refusing a configuration it cannot migrate, say) fails at once. On
//! failure the container is recreated on the image it ran before, the daemon waits for it
//! to be healthy again, and the command fails with the reason, so the platform keeps the
//! agent pinned to its previous image. Files in the state directory are not rewritten: the
//! agent keeps everything it wrote.

use std::time::Duration;

use sparebox_core::{AgentId, DeployStage};
use sparebox_protocol::Command;
use sparebox_runtime::{AgentSpec, ContainerState};
use tracing::{info, warn};

use crate::executor::{agent_env, at, plain, Executor, Failure};
use crate::health::wait_healthy;

impl Executor {
    /// Carries out an `upgrade` command; see the [module docs](self).
    pub(crate) async fn upgrade(&self, command: &Command) -> Result<(), Failure> {
        let agent = command.agent_id;
        let record = self
            .state
            .agent(agent)
            .ok_or_else(|| plain("agent is not deployed on this host"))?;
        let current = self
            .runtime
            .inspect(agent)
            .await
            .map_err(plain)?
            .ok_or_else(|| plain("agent has no container on this host"))?;

        self.stage(agent, DeployStage::FetchingConfig);
        let bundle = self.fetch_bundle(command).await?;
        if bundle.image == current.image {
            // A repeated upgrade (a daemon restarted while waiting for health): the image is
            // in place, so only its health is left to check.
            info!(agent.id = %agent, image = %bundle.image, "agent already runs this image");
            let (timeout, poll) = (
                self.config.upgrade_health_timeout,
                self.config.health_poll_interval,
            );
            return wait_healthy(self.health.as_ref(), record.gateway_port, timeout, poll)
                .await
                .map_err(at(DeployStage::HealthCheck));
        }
        self.stage(agent, DeployStage::Pulling);
        self.runtime
            .ensure_image(&bundle.image)
            .await
            .map_err(at(DeployStage::Pulling))?;

        let spec = AgentSpec {
            agent,
            tier: bundle.tier,
            image: bundle.image.clone(),
            gateway_port: record.gateway_port,
            state_dir: self.agent_dir(agent).join("state"),
            env: agent_env(),
            secret_env: bundle.secrets.clone(),
        };
        drop(bundle);
        let (from, to) = (current.image, spec.image.clone());
        info!(agent.id = %agent, from = %from, to = %to, "upgrading agent");
        let timeout = self.config.upgrade_health_timeout;
        let Err(reason) = self.replace_and_wait(&spec, timeout).await else {
            info!(agent.id = %agent, from = %from, to = %to, "agent upgraded");
            return Ok(());
        };
        warn!(agent.id = %agent, to = %to, reason = %reason, "upgrade failed; going back to the previous image");
        let back = AgentSpec {
            image: from.clone(),
            ..spec
        };
        match self
            .replace_and_wait(&back, self.config.health_timeout)
            .await
        {
            Ok(()) => Err(plain(format!(
                "rolled back to {from}: {to} did not become healthy: {reason}"
            ))),
            Err(again) => Err(plain(format!(
                "{to} did not become healthy: {reason}; going back to {from} failed too: {again}"
            ))),
        }
    }

    /// Removes the agent's container, creates and starts one from `spec`, and waits up to
    /// `timeout` for it to be healthy, failing early when the container stops running.
    async fn replace_and_wait(&self, spec: &AgentSpec, timeout: Duration) -> Result<(), String> {
        let agent = spec.agent;
        self.stage(agent, DeployStage::Starting);
        self.runtime
            .remove(agent)
            .await
            .map_err(|e| e.to_string())?;
        let started = self
            .create_container(spec)
            .await
            .map_err(|e| e.to_string())?;
        self.stage(agent, DeployStage::HealthCheck);
        let poll = self.config.health_poll_interval;
        let healthy = wait_healthy(self.health.as_ref(), spec.gateway_port, timeout, poll);
        tokio::select! {
            result = healthy => result,
            exited = self.watch_exit(agent, started.restart_count, poll) => Err(exited),
        }
    }

    /// Returns, with a description, once the agent's container is no longer running or
    /// the engine has restarted it; never returns while it keeps running.
    async fn watch_exit(&self, agent: AgentId, restarts: u32, poll: Duration) -> String {
        loop {
            tokio::time::sleep(poll).await;
            let info = match self.runtime.inspect(agent).await {
                Ok(Some(info)) => info,
                Ok(None) => return "its container disappeared".to_owned(),
                Err(err) => {
                    warn!(agent.id = %agent, error = %err, "inspecting an upgraded agent failed");
                    continue;
                }
            };
            let exited = !matches!(
                info.state,
                ContainerState::Running | ContainerState::Created
            );
            if exited || info.restart_count > restarts {
                let code = info
                    .exit_code
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                return format!("its container exited (exit code {code})");
            }
        }
    }
}

#[cfg(test)]
#[path = "operations_tests.rs"]
mod tests;
