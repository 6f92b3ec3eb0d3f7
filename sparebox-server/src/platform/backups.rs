//! Backups of agents' state and restoring them.
//!
//! A backup is a `backup` command: the host archives the agent's state directory, seals
//! the archive under the command's session key ([`sparebox_core::crypto::seal_backup`]) and
//! uploads it to [`Platform::receive_backup`]. The platform opens it, seals it again at rest
//! with its keyring (bound to the agent), writes it to a file under
//! [`crate::BackupConfig::dir`] and records its metadata, keeping the newest
//! [`crate::BackupConfig::keep`] per agent.
//!
//! A restore is a `restore` command naming a backup of any agent the same deployer owns
//! (restoring another agent's backup clones its state). The host downloads it from
//! [`Platform::serve_backup`], sealed under the restore command's session key, and swaps it
//! in. The agent may be running or stopped: the daemon stops a running agent, swaps the
//! state directory, and starts it again, so a restore never runs against live files.
//!
//! Only the host a command was sent to can upload or download through it, and only while
//! the command is `sent`: a host key never reaches a backup that no restore command sent
//! to that host names.

use sha2::{Digest, Sha256};
use sparebox_core::crypto::{open_backup, seal_backup, BACKUP_OVERHEAD};
use sparebox_protocol::CommandParams;
use sparebox_store::{BackupRecord, BackupRetention};

use super::*;
use crate::backup_files::BackupFiles;

/// The longest interval a backup schedule may have: one year, in hours.
pub const MAX_BACKUP_INTERVAL_HOURS: u32 = 24 * 366;

/// An agent's backups and its schedule, as the API shows them.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    /// Stored backups, newest first.
    pub backups: Vec<BackupRecord>,
    /// Hours between scheduled backups; `None` without a schedule.
    pub backup_interval_hours: Option<u32>,
}

fn deployed(record: &AgentRecord, what: &str) -> Result<(), PlatformError> {
    if matches!(record.state, AgentState::Running | AgentState::Stopped) {
        return Ok(());
    }
    Err(PlatformError::new(
        ErrorCode::Conflict,
        format!(
            "agent {} is {}: {what} needs a running or stopped agent",
            record.id, record.state
        ),
    ))
}

impl Platform {
    fn backup_files(&self) -> Result<BackupFiles, PlatformError> {
        match &self.config.backups.dir {
            Some(dir) => Ok(BackupFiles::new(dir.clone())),
            None => Err(PlatformError::new(
                ErrorCode::Conflict,
                "backups are not enabled on this server (no backup directory configured)",
            )),
        }
    }

    /// The largest sealed archive accepted: the configured cap plus the seal's overhead.
    fn max_sealed_backup(&self) -> u64 {
        self.config.backups.max_bytes + BACKUP_OVERHEAD as u64
    }

    /// The largest upload a backup route should read, in bytes.
    pub fn max_backup_upload(&self) -> u64 {
        self.max_sealed_backup()
    }

    /// Queues a backup of an agent its owner controls.
    ///
    /// # Errors
    ///
    /// Not found for someone else's agent; conflict when backups are off or the agent is
    /// not running or stopped.
    pub async fn request_backup(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
    ) -> Result<CommandRecord, PlatformError> {
        let record = self.owned_agent(owner, agent).await?;
        self.backup_files()?;
        deployed(&record, "a backup")?;
        let command = self.enqueue(&record, CommandKind::Backup, None).await?;
        tracing::info!(agent = %agent, command = %command.id, "backup queued");
        Ok(command)
    }

    /// An agent's backups and schedule, for its owner or an admin.
    ///
    /// # Errors
    ///
    /// Not found when the reader may not see the agent.
    pub async fn list_backups(
        &self,
        reader: &AccountRecord,
        agent: AgentId,
    ) -> Result<BackupList, PlatformError> {
        self.readable_agent(reader, agent).await?;
        Ok(BackupList {
            backups: self.store.backups_for_agent(agent).await?,
            backup_interval_hours: self.store.backup_schedule(agent).await?,
        })
    }

    /// Sets (`Some(hours)`, 1 to [`MAX_BACKUP_INTERVAL_HOURS`]) or clears an agent's backup
    /// schedule. The first scheduled backup is queued at the next sweep.
    ///
    /// # Errors
    ///
    /// Bad request for an interval out of range; not found for someone else's agent;
    /// conflict when backups are off.
    pub async fn set_backup_schedule(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
        interval_hours: Option<u32>,
    ) -> Result<BackupList, PlatformError> {
        if let Some(hours) = interval_hours {
            if !(1..=MAX_BACKUP_INTERVAL_HOURS).contains(&hours) {
                return Err(PlatformError::bad_request(format!(
                    "backupIntervalHours: {hours} is outside 1..={MAX_BACKUP_INTERVAL_HOURS}"
                )));
            }
        }
        self.owned_agent(owner, agent).await?;
        self.backup_files()?;
        self.store
            .set_backup_schedule(agent, interval_hours)
            .await?;
        tracing::info!(agent = %agent, interval_hours = ?interval_hours, "backup schedule set");
        self.list_backups(owner, agent).await
    }

    /// Queues a restore of `backup` (of any agent `owner` owns) into `agent`.
    ///
    /// # Errors
    ///
    /// Bad request for a malformed backup id; not found for someone else's agent or
    /// backup; conflict when the agent is not running or stopped.
    pub async fn request_restore(
        &self,
        owner: &AccountRecord,
        agent: AgentId,
        backup: &str,
    ) -> Result<CommandRecord, PlatformError> {
        let backup_id: CommandId = backup.parse().map_err(|_| {
            PlatformError::bad_request(format!("backupId {backup:?} is not a UUID"))
        })?;
        let record = self.owned_agent(owner, agent).await?;
        self.backup_files()?;
        let found = match self.store.backup(backup_id).await? {
            Some(found) => found,
            None => return Err(PlatformError::not_found(format!("backup {backup_id}"))),
        };
        self.owned_agent(owner, found.agent)
            .await
            .map_err(|_| PlatformError::not_found(format!("backup {backup_id}")))?;
        deployed(&record, "a restore")?;
        let params = CommandParams::Restore {
            backup_id: backup_id.to_string(),
        };
        let command = self
            .enqueue(&record, CommandKind::Restore, Some(params))
            .await?;
        tracing::info!(agent = %agent, command = %command.id, backup = %backup_id, "restore queued");
        Ok(command)
    }

    /// The command `id` if it is a `kind` command sent to `host` and not yet answered.
    async fn live_command(
        &self,
        host: &HostRecord,
        id: CommandId,
        kind: CommandKind,
    ) -> Result<CommandRecord, PlatformError> {
        let command = match self.store.command(id).await? {
            Some(c) if c.host == host.id && c.kind == kind => c,
            _ => return Err(PlatformError::not_found(format!("{kind} command {id}"))),
        };
        if command.status != CommandStatus::Sent {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("command {id} is {}, not sent", command.status),
            ));
        }
        Ok(command)
    }

    /// Stores the archive a host uploads for backup command `id`: checks the command,
    /// opens the archive with the command's session key, seals it at rest and records it,
    /// deleting the agent's backups beyond the retention. Uploading the same backup again
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// Not found unless `id` is a backup command sent to `host`; conflict when it is no
    /// longer `sent` or backups are off; payload too large past the cap; bad request when
    /// the archive does not verify.
    pub async fn receive_backup(
        &self,
        host: &HostRecord,
        id: CommandId,
        sealed: &[u8],
    ) -> Result<BackupRecord, PlatformError> {
        let files = self.backup_files()?;
        let command = self.live_command(host, id, CommandKind::Backup).await?;
        if let Some(existing) = self.store.backup(id).await? {
            return Ok(existing);
        }
        let max = self.max_sealed_backup();
        let key = self.keyring.session_key(id);
        let archive = open_backup(&key, command.agent, id, sealed, max as usize).map_err(|err| {
            tracing::warn!(host = %host.id, command = %id, error = %err, "backup upload refused");
            match err {
                sparebox_core::crypto::BackupSealError::TooLarge { .. } => too_large(max),
                other => PlatformError::bad_request(format!("backup archive refused: {other}")),
            }
        })?;
        let at_rest = self.keyring.seal(command.agent, &archive).map_err(|err| {
            tracing::error!(command = %id, error = %err, "sealing a backup at rest failed");
            PlatformError::new(ErrorCode::Internal, "the backup could not be stored")
        })?;
        files
            .write(command.agent, id, at_rest)
            .await
            .map_err(storage_error(id))?;
        let record = BackupRecord {
            id,
            agent: command.agent,
            host: host.id,
            size_bytes: archive.len() as u64,
            sha256: hex::encode(Sha256::digest(&archive)),
            created_at: self.clock.now(),
        };
        let retention = BackupRetention {
            keep: self.config.backups.keep,
        };
        let pruned = self.store.insert_backup(record.clone(), retention).await?;
        for old in pruned {
            if let Err(err) = files.remove(old.agent, old.id).await {
                tracing::warn!(backup = %old.id, error = %err, "an old backup's file could not be deleted");
            }
        }
        tracing::info!(agent = %record.agent, backup = %id, bytes = record.size_bytes, "backup stored");
        Ok(record)
    }

    /// The backup restore command `id` names, sealed under that command's session key for
    /// its agent, for the host the command was sent to.
    ///
    /// # Errors
    ///
    /// Not found unless `id` is a restore command sent to `host` whose backup still
    /// exists; conflict when it is no longer `sent` or backups are off.
    pub async fn serve_backup(
        &self,
        host: &HostRecord,
        id: CommandId,
    ) -> Result<Vec<u8>, PlatformError> {
        let files = self.backup_files()?;
        let command = self.live_command(host, id, CommandKind::Restore).await?;
        let Some(CommandParams::Restore { backup_id }) = &command.params else {
            return Err(PlatformError::not_found(format!("backup for command {id}")));
        };
        let backup = match backup_id.parse::<CommandId>() {
            Ok(backup_id) => self.store.backup(backup_id).await?,
            Err(_) => None,
        }
        .ok_or_else(|| PlatformError::not_found(format!("backup {backup_id}")))?;
        let limit = self.max_sealed_backup() + 64;
        let at_rest = files
            .read(backup.agent, backup.id, limit)
            .await
            .map_err(storage_error(backup.id))?;
        let archive = self.keyring.open(backup.agent, &at_rest).map_err(|err| {
            tracing::error!(backup = %backup.id, error = %err, "a stored backup does not open");
            PlatformError::new(ErrorCode::Internal, "the backup could not be read")
        })?;
        let key = self.keyring.session_key(id);
        seal_backup(&key, command.agent, id, &archive).map_err(|err| {
            tracing::error!(backup = %backup.id, error = %err, "sealing a backup for a host failed");
            PlatformError::new(ErrorCode::Internal, "the backup could not be sealed")
        })
    }

    /// Queues a backup for every agent whose schedule is due at `now` and which is running
    /// or stopped with no backup already on its way. Returns how many were queued.
    pub(super) async fn queue_scheduled_backups(
        &self,
        now: DateTime<Utc>,
    ) -> Result<usize, PlatformError> {
        if self.config.backups.dir.is_none() {
            return Ok(0);
        }
        let mut queued = 0;
        for agent in self.store.claim_due_backups(now).await? {
            let Some(record) = self.store.agent(agent).await? else {
                continue;
            };
            if deployed(&record, "a backup").is_err() {
                continue;
            }
            let recent = self.store.commands_for_agent(agent, 20).await?;
            let in_flight = recent.iter().any(|c| {
                c.kind == CommandKind::Backup
                    && matches!(c.status, CommandStatus::Pending | CommandStatus::Sent)
            });
            if in_flight {
                continue;
            }
            let command = self.enqueue(&record, CommandKind::Backup, None).await?;
            tracing::info!(agent = %agent, command = %command.id, "scheduled backup queued");
            queued += 1;
        }
        Ok(queued)
    }
}

/// The 413 for an upload over `max` bytes.
pub(crate) fn too_large(max: u64) -> PlatformError {
    PlatformError::new(
        ErrorCode::PayloadTooLarge,
        format!("backup upload is larger than the server's limit of {max} bytes"),
    )
}

fn storage_error(id: CommandId) -> impl FnOnce(std::io::Error) -> PlatformError {
    move |err| {
        tracing::error!(backup = %id, error = %err, "backup file storage failed");
        PlatformError::new(ErrorCode::Internal, "backup storage failed")
    }
}
