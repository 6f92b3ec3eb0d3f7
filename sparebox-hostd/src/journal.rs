//! The journal: what the daemon must remember across restarts, in `<data-dir>/journal.json`.
//!
//! It holds the outcome of recently executed commands (so a re-delivered command is acked
//! again instead of run again), the acks the server has not confirmed yet, and every
//! managed agent with its gateway port. It is written atomically: a temporary file in the
//! same directory, fsync, rename, fsync of the directory.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sparebox_core::{AgentId, CommandId, CommandKind, DeployStage, Tier};
use sparebox_protocol::{AgentEventReport, Command, CommandAck, CommandParams};

/// The journal format version written by this daemon.
pub const JOURNAL_VERSION: u32 = 1;

/// How many executed commands are remembered. The server expires a command five minutes
/// after it was queued, so only recent ids can come back; older ones are forgotten first.
pub const EXECUTED_CAPACITY: usize = 1024;

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a journal this daemon understands.
    #[error("journal {path}: unreadable: {message}")]
    Corrupt {
        /// The journal path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// One agent the daemon manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    /// The agent.
    pub agent_id: AgentId,
    /// Its gateway port on 127.0.0.1.
    pub gateway_port: u16,
    /// Its tier, from the last bundle applied.
    pub tier: Tier,
    /// Whether the deployer stopped it on purpose (so an exited container reads as
    /// stopped, not crashed).
    #[serde(default)]
    pub stopped: bool,
}

/// A command the daemon started but has not finished, so a daemon killed in the middle
/// finishes it after a restart: the server does not deliver a `sent` command again.
///
/// The command's session key is deliberately not kept: it opens the deploy bundle's
/// secrets, which never touch the disk. A deploy interrupted once its container exists is
/// finished without the bundle (start the container, wait for health, ack); one
/// interrupted earlier is acked as failed, and the server sends a new deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlightCommand {
    /// The command.
    pub id: CommandId,
    /// The agent it applies to.
    pub agent_id: AgentId,
    /// What it does.
    pub kind: CommandKind,
    /// The agent's tier as the command gave it.
    pub tier: Tier,
    /// When the platform queued it.
    pub created_at: DateTime<Utc>,
    /// For deploys and configuration updates: the last stage recorded durably.
    #[serde(default)]
    pub stage: Option<DeployStage>,
    /// The command's parameters (they hold nothing secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<CommandParams>,
}

impl InFlightCommand {
    /// The record of `command` before any of it has run.
    pub fn new(command: &Command) -> Self {
        Self {
            id: command.id,
            agent_id: command.agent_id,
            kind: command.kind,
            tier: command.tier,
            created_at: command.created_at,
            stage: None,
            params: command.params.clone(),
        }
    }

    /// The command again, without its session key.
    pub fn command(&self) -> Command {
        Command {
            id: self.id,
            agent_id: self.agent_id,
            kind: self.kind,
            tier: self.tier,
            created_at: self.created_at,
            session_key: None,
            params: self.params.clone(),
        }
    }
}

/// The persisted part of the daemon's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// Format version; see [`JOURNAL_VERSION`].
    pub version: u32,
    /// Managed agents.
    #[serde(default)]
    pub agents: Vec<AgentRecord>,
    /// Outcomes of recently executed commands, oldest first, at most [`EXECUTED_CAPACITY`].
    #[serde(default)]
    pub executed: VecDeque<CommandAck>,
    /// Acks sent (or to be sent) but not yet confirmed by the server.
    #[serde(default)]
    pub pending_acks: Vec<CommandAck>,
    /// Commands started and not finished; see [`InFlightCommand`].
    #[serde(default)]
    pub in_flight: Vec<InFlightCommand>,
    /// Engine events not yet delivered in a heartbeat the server answered, oldest first,
    /// at most [`EVENTS_CAPACITY`].
    #[serde(default)]
    pub pending_events: Vec<AgentEventReport>,
}

/// How many undelivered engine events are kept; the oldest are dropped first while the
/// server is unreachable.
pub const EVENTS_CAPACITY: usize = 256;

impl Journal {
    /// Reads the journal at `path`; a missing file is an empty journal.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when the file exists but cannot be read or parsed, or was written by
    /// a newer daemon.
    pub fn load(path: &Path) -> Result<Self, JournalError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Journal {
                    version: JOURNAL_VERSION,
                    ..Journal::default()
                })
            }
            Err(source) => {
                return Err(JournalError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let journal: Journal =
            serde_json::from_slice(&bytes).map_err(|err| JournalError::Corrupt {
                path: path.to_owned(),
                message: err.to_string(),
            })?;
        if journal.version > JOURNAL_VERSION {
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                message: format!("written by a newer daemon (version {})", journal.version),
            });
        }
        Ok(journal)
    }

    /// Writes the journal to `path` atomically (temp file, fsync, rename, directory fsync),
    /// readable by the owner only.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] when any step fails; the previous journal is then intact.
    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|err| JournalError::Corrupt {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let tmp = path.with_extension("json.tmp");
        write_synced(&tmp, &bytes).map_err(io_err)?;
        fs::rename(&tmp, path).map_err(io_err)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use sparebox_core::CommandId;
    use sparebox_protocol::AckStatus;

    use super::*;

    #[test]
    fn missing_journal_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::load(&dir.path().join("journal.json")).unwrap();
        assert!(journal.agents.is_empty() && journal.pending_acks.is_empty());
    }

    #[test]
    fn saved_journal_loads_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let ack = CommandAck {
            id: CommandId::new_random(),
            status: AckStatus::Acked,
            error: None,
        };
        let journal = Journal {
            version: JOURNAL_VERSION,
            agents: vec![AgentRecord {
                agent_id: AgentId::new_random(),
                gateway_port: 19001,
                tier: Tier::Lite,
                stopped: false,
            }],
            executed: VecDeque::from([ack.clone()]),
            pending_acks: vec![ack],
            in_flight: Vec::new(),
            pending_events: Vec::new(),
        };
        journal.save(&path).unwrap();
        journal.save(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), journal);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn garbage_journal_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        fs::write(&path, "{not json").unwrap();
        let err = Journal::load(&path).unwrap_err();
        assert!(err.to_string().contains("unreadable"), "{err}");
    }
}
