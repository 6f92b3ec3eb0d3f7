//! Reading an agent's logs for its deployer, with its secrets taken out.
//!
//! A `logs` command names how many lines, how far back and how many bytes. The daemon reads
//! that much of the agent's output from the runtime, replaces every secret value the agent
//! runs with by [`REDACTED`], keeps the newest lines that fit the byte cap, uploads the text
//! and only then acks.
//!
//! The secret values come from the running container itself
//! ([`Runtime::secret_values`](sparebox_runtime::Runtime::secret_values)): the values of
//! the environment variables its deploy bundle marked secret (model provider keys and the
//! platform's gateway token), as the engine reports them. Reading them back from the
//! container rather than remembering them means the daemon never keeps secrets beyond a
//! deploy, and a daemon restarted since the deploy still redacts correctly. A value is
//! also replaced when it appears split by the line ends the engine adds, since redaction
//! runs over the whole text before it is cut. Secrets shorter than [`MIN_SECRET_CHARS`]
//! characters are not searched for: replacing every occurrence of a two-letter value
//! would destroy the logs and hide nothing.

use sparebox_core::Secret;
use sparebox_protocol::{Command, CommandParams, MAX_LOG_BYTES};
use sparebox_runtime::LogQuery;
use tracing::debug;

use crate::executor::{plain, Executor, Failure};

/// What replaces each secret value in uploaded logs.
pub const REDACTED: &str = "[redacted]";

/// The shortest secret value searched for in logs, in characters.
pub const MIN_SECRET_CHARS: usize = 4;

impl Executor {
    /// Carries out a `logs` command; see the [module docs](self).
    pub(crate) async fn logs(&self, command: &Command) -> Result<(), Failure> {
        let agent = command.agent_id;
        let Some(
            params @ CommandParams::Logs {
                tail_lines,
                since_seconds,
                max_bytes,
            },
        ) = command.params.clone()
        else {
            return Err(plain("the command carries no logs parameters"));
        };
        params.validate().map_err(plain)?;
        let query = LogQuery {
            tail_lines,
            since: since_seconds.map(std::time::Duration::from_secs),
        };
        let secrets = self.runtime.secret_values(agent).await.map_err(plain)?;
        let raw = self.runtime.logs(agent, query).await.map_err(plain)?;
        let text = redact(&String::from_utf8_lossy(&raw), &secrets);
        drop(secrets);
        let (text, truncated) = keep_newest(&text, max_bytes.min(MAX_LOG_BYTES) as usize);
        debug!(agent.id = %agent, bytes = text.len(), truncated, "uploading logs");
        self.server
            .upload_logs(command.id, text.as_bytes().to_vec(), truncated)
            .await
            .map_err(plain)
    }
}

/// `text` with every occurrence of every secret value of at least [`MIN_SECRET_CHARS`]
/// characters replaced by [`REDACTED`]; longer values first, so a secret containing
/// another is replaced whole.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut values: Vec<&str> = secrets
        .iter()
        .map(Secret::expose)
        .filter(|v| v.chars().count() >= MIN_SECRET_CHARS)
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
        .into_iter()
        .fold(text.to_owned(), |text, value| text.replace(value, REDACTED))
}

/// The newest part of `text` within `max_bytes`, starting at a line boundary when one
/// fits (else at a character boundary), and whether anything was cut.
pub fn keep_newest(text: &str, max_bytes: usize) -> (&str, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let from_line = match tail.find('\n') {
        Some(i) if i + 1 < tail.len() => &tail[i + 1..],
        _ => tail,
    };
    (from_line, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_value_is_replaced_and_short_ones_are_ignored() {
        let secrets = [
            Secret::new("sk-ant-canary-123"),
            Secret::new("sk-ant-canary-123-long"),
            Secret::new("ab"),
        ];
        let text = "key=sk-ant-canary-123-long\nagain sk-ant-canary-123 done ab\n";
        assert_eq!(
            redact(text, &secrets),
            "key=[redacted]\nagain [redacted] done ab\n"
        );
    }

    #[test]
    fn the_newest_lines_within_the_cap_are_kept() {
        let text = "first line\nsecond line\nthird\n";
        assert_eq!(keep_newest(text, 100), (text, false));
        assert_eq!(keep_newest(text, 14), ("third\n", true));
        let (cut, truncated) = keep_newest("ééééé", 3);
        assert!(truncated && cut.len() <= 3 && cut == "é");
    }
}
