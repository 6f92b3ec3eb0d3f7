//! The `backup` and `restore` commands: archiving an agent's state for the platform, and
//! replacing it with an archive the platform sends.
//!
//! Both travel sealed under the command's session key
//! ([`sparebox_core::crypto::seal_backup`]), bound to the agent and the command. What an
//! archive holds and how it is read back is in [`crate::archive`].
//!
//! A restore stops the agent's container if it runs, swaps the state directory in one
//! rename ([`archive::replace_state`]), and starts the container again unless the deployer
//! had stopped the agent, acknowledging only once the agent answers its health check. A
//! backup is taken from the live directory: OpenClaw keeps writing meanwhile, so a file
//! being written at that moment is archived as it was when read.

use std::time::Instant;

use sparebox_core::crypto::{open_backup, seal_backup, SessionKey, BACKUP_OVERHEAD};
use sparebox_protocol::{Command, CommandParams};
use tracing::info;

use super::{plain, Executor, Failure};
use crate::archive::{self, ArchiveLimits, MAX_ARCHIVE_BYTES};

fn session_key(command: &Command) -> Result<&SessionKey, Failure> {
    command
        .session_key
        .as_ref()
        .ok_or_else(|| plain("the command carries no session key"))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, archive::ArchiveError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(plain)?
        .map_err(plain)
}

impl Executor {
    /// Archives the agent's state directory, seals it under the command's session key and
    /// uploads it.
    pub(super) async fn backup(&self, command: &Command) -> Result<(), Failure> {
        let agent = command.agent_id;
        let key = session_key(command)?;
        if self.state.agent(agent).is_none() {
            return Err(plain("agent is not deployed on this host"));
        }
        let started = Instant::now();
        let state_dir = self.agent_dir(agent).join("state");
        let limits = ArchiveLimits::DEFAULT;
        let archive = blocking(move || archive::pack(&state_dir, &limits)).await?;
        if archive.len() as u64 > MAX_ARCHIVE_BYTES {
            return Err(plain(format!(
                "the archive is {} bytes, over the limit of {MAX_ARCHIVE_BYTES}",
                archive.len()
            )));
        }
        let packed = started.elapsed();
        let bytes = archive.len();
        let sealed = seal_backup(key, agent, command.id, &archive).map_err(plain)?;
        drop(archive);
        self.server
            .upload_backup(command.id, sealed)
            .await
            .map_err(|err| plain(format!("uploading the backup: {err}")))?;
        info!(agent.id = %agent, command.id = %command.id, backup.bytes = bytes,
              backup.pack_ms = packed.as_millis() as u64,
              backup.total_ms = started.elapsed().as_millis() as u64, "backup uploaded");
        Ok(())
    }

    /// Downloads the backup the command names, checks it, and swaps it in as the agent's
    /// state; see the [module docs](self).
    pub(super) async fn restore(&self, command: &Command) -> Result<(), Failure> {
        let agent = command.agent_id;
        let key = session_key(command)?;
        let Some(record) = self.state.agent(agent) else {
            return Err(plain("agent is not deployed on this host"));
        };
        let Some(CommandParams::Restore { backup_id }) = &command.params else {
            return Err(plain("the command names no backup"));
        };
        let started = Instant::now();
        let limit = MAX_ARCHIVE_BYTES as usize + BACKUP_OVERHEAD;
        let sealed = self
            .server
            .download_backup(command.id, limit)
            .await
            .map_err(|err| plain(format!("downloading backup {backup_id}: {err}")))?;
        let archive = open_backup(key, agent, command.id, &sealed, limit).map_err(plain)?;
        drop(sealed);
        let limits = ArchiveLimits::DEFAULT;
        let entries = blocking(move || archive::unpack(&archive, &limits)).await?;

        let running = matches!(
            self.runtime.inspect(agent).await.map_err(plain)?,
            Some(info) if info.state == sparebox_runtime::ContainerState::Running
        );
        if running {
            self.runtime
                .stop(agent, self.config.stop_grace)
                .await
                .map_err(plain)?;
        }
        let agent_dir = self.agent_dir(agent);
        let owner = self.owner;
        let count = entries.len();
        let swapped = blocking(move || archive::replace_state(&agent_dir, &entries, owner)).await;
        if !record.stopped {
            self.runtime.start(agent).await.map_err(plain)?;
        }
        swapped?;
        if !record.stopped {
            self.wait_for_health(agent, record.gateway_port).await?;
        }
        info!(agent.id = %agent, command.id = %command.id, backup.id = %backup_id,
              backup.entries = count, backup.total_ms = started.elapsed().as_millis() as u64,
              "backup restored");
        Ok(())
    }
}
