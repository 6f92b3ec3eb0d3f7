//! Reading a profile agent's log file and the secret values its process runs with.
//!
//! The log file carries no timestamps, so [`LogQuery::since`] cannot be honoured here: the
//! last `tail_lines` lines are returned whatever their age.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use sparebox_core::{AgentId, Secret};

use super::ProfileRuntime;
use crate::{last_lines, LogQuery, RuntimeError, RuntimeResult, MAX_RAW_LOG_BYTES};

impl ProfileRuntime {
    /// The last lines of the agent's log file.
    pub(super) async fn read_logs(
        &self,
        agent: AgentId,
        query: LogQuery,
    ) -> RuntimeResult<Vec<u8>> {
        if !self.lock().contains_key(&agent) {
            return Err(RuntimeError::NotFound(agent));
        }
        let path = self.log_path(agent);
        let tail = tokio::task::spawn_blocking(move || read_tail(path))
            .await
            .map_err(|err| logs_error(agent, err.to_string()))?
            .map_err(|err| logs_error(agent, err.to_string()))?;
        Ok(last_lines(&tail, query.tail_lines).to_vec())
    }

    /// The values of the recorded secret names in the running process's environment
    /// (`/proc/<pid>/environ`).
    pub(super) async fn read_secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<Secret>> {
        let (pid, names) = {
            let agents = self.lock();
            let handle = agents.get(&agent).ok_or(RuntimeError::NotFound(agent))?;
            let pid = handle.status.lock().unwrap_or_else(|e| e.into_inner()).pid;
            (pid, handle.record.secret_names.clone())
        };
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let pid = pid.ok_or_else(|| {
            logs_error(
                agent,
                "the agent is not running, so its secret values cannot be read to redact its logs"
                    .to_owned(),
            )
        })?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .map_err(|err| logs_error(agent, format!("reading /proc/{pid}/environ: {err}")))?;
        Ok(environ
            .split(|b| *b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok()?.split_once('='))
            .filter(|(key, value)| !value.is_empty() && names.iter().any(|n| n == key))
            .map(|(_, value)| Secret::new(value))
            .collect())
    }
}

/// The last [`MAX_RAW_LOG_BYTES`] of the file at `path`; an absent file is empty.
fn read_tail(path: PathBuf) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(
        len.saturating_sub(MAX_RAW_LOG_BYTES as u64),
    ))?;
    let mut tail = Vec::new();
    file.take(MAX_RAW_LOG_BYTES as u64).read_to_end(&mut tail)?;
    Ok(tail)
}

fn logs_error(agent: AgentId, message: String) -> RuntimeError {
    RuntimeError::Engine {
        operation: "logs",
        agent,
        message,
    }
}
