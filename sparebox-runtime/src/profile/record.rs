//! The file that lets a restarted daemon find its profile agents again:
//! `<base dir>/<agent name>/agent.json`, holding what the runtime knows about the agent
//! except its secrets, and the pid and start time of its running process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sparebox_core::{AgentId, Tier};

/// The record's file name inside the agent's directory.
pub(crate) const RECORD_FILE: &str = "agent.json";

/// One agent's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentRecord {
    /// The agent.
    pub agent: AgentId,
    /// Its tier, as its wire name.
    pub tier: String,
    /// The gateway port.
    pub gateway_port: u16,
    /// The state directory OpenClaw uses.
    pub state_dir: PathBuf,
    /// Plain environment (never secrets).
    pub env: BTreeMap<String, String>,
    /// Names of the secret variables it was started with; their values are never written.
    pub secret_names: Vec<String>,
    /// The running process, when there is one.
    pub process: Option<RecordedProcess>,
}

/// A running process, identified by pid and start time so a reused pid is not mistaken
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordedProcess {
    /// The process id, also its process group id.
    pub pid: u32,
    /// Its start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

impl AgentRecord {
    /// The tier, when the recorded name is known.
    pub(crate) fn tier(&self) -> Option<Tier> {
        self.tier.parse().ok()
    }
}

/// Writes the record atomically (a temporary file renamed over the old one), readable by
/// the owner only.
pub(crate) fn write(dir: &Path, record: &AgentRecord) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let temporary = dir.join(format!(".{RECORD_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(RECORD_FILE))
}

/// Reads the record in `dir`.
pub(crate) fn read(dir: &Path) -> std::io::Result<AgentRecord> {
    let bytes = std::fs::read(dir.join(RECORD_FILE))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_without_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let record = AgentRecord {
            agent: AgentId::new_random(),
            tier: "lite".to_owned(),
            gateway_port: 19100,
            state_dir: "/var/lib/a".into(),
            env: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            secret_names: vec!["OPENCLAW_GATEWAY_TOKEN".to_owned()],
            process: Some(RecordedProcess {
                pid: 42,
                start_ticks: 7,
            }),
        };
        write(dir.path(), &record).unwrap();
        assert_eq!(read(dir.path()).unwrap(), record);
        assert_eq!(record.tier(), Some(Tier::Lite));
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECORD_FILE), b"{not json").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
