//! Parameters that some commands carry besides their kind.

use serde::{Deserialize, Serialize};

/// The most log lines a `logs` command may ask for.
pub const MAX_LOG_TAIL_LINES: u32 = 5000;

/// The most log bytes a `logs` command may ask for (and a daemon may upload): 1 MiB.
pub const MAX_LOG_BYTES: u32 = 1024 * 1024;

/// The longest look-back a `logs` command may ask for: 7 days.
pub const MAX_LOG_SINCE_SECONDS: u64 = 7 * 24 * 60 * 60;

/// What a command needs to know beyond its kind. Chosen by the platform from a validated
/// request; never carries an image, an environment value or a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CommandParams {
    /// For `logs`: which of the agent's recent log lines to read.
    #[serde(rename_all = "camelCase")]
    Logs {
        /// The last this many lines, 1..=[`MAX_LOG_TAIL_LINES`].
        tail_lines: u32,
        /// Only lines from the last this many seconds, 1..=[`MAX_LOG_SINCE_SECONDS`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_seconds: Option<u64>,
        /// At most this many bytes (the newest kept), 1..=[`MAX_LOG_BYTES`].
        max_bytes: u32,
    },
    /// For `restore`: which backup to restore.
    #[serde(rename_all = "camelCase")]
    Restore {
        /// The backup's id, as the platform issued it.
        backup_id: String,
    },
}

/// Command parameters outside their documented bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidParams {
    /// `tailLines` is zero or above [`MAX_LOG_TAIL_LINES`].
    #[error("tailLines: {0} is outside 1..=5000")]
    TailLines(u32),
    /// `sinceSeconds` is zero or above [`MAX_LOG_SINCE_SECONDS`].
    #[error("sinceSeconds: {0} is outside 1..=604800")]
    SinceSeconds(u64),
    /// `maxBytes` is zero or above [`MAX_LOG_BYTES`].
    #[error("maxBytes: {0} is outside 1..=1048576")]
    MaxBytes(u32),
}

impl CommandParams {
    /// `logs` parameters, checked against their bounds.
    ///
    /// # Errors
    ///
    /// [`InvalidParams`] naming the first field out of bounds.
    pub fn logs(
        tail_lines: u32,
        since_seconds: Option<u64>,
        max_bytes: u32,
    ) -> Result<Self, InvalidParams> {
        let params = CommandParams::Logs {
            tail_lines,
            since_seconds,
            max_bytes,
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks the bounds documented on each field (a daemon calls this on what it
    /// receives, so a bad server cannot make it read unbounded logs).
    ///
    /// # Errors
    ///
    /// [`InvalidParams`] naming the first field out of bounds.
    pub fn validate(&self) -> Result<(), InvalidParams> {
        match *self {
            CommandParams::Logs {
                tail_lines,
                since_seconds,
                max_bytes,
            } => {
                if !(1..=MAX_LOG_TAIL_LINES).contains(&tail_lines) {
                    return Err(InvalidParams::TailLines(tail_lines));
                }
                if let Some(s) = since_seconds.filter(|s| !(1..=MAX_LOG_SINCE_SECONDS).contains(s))
                {
                    return Err(InvalidParams::SinceSeconds(s));
                }
                if !(1..=MAX_LOG_BYTES).contains(&max_bytes) {
                    return Err(InvalidParams::MaxBytes(max_bytes));
                }
                Ok(())
            }
            CommandParams::Restore { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_params_serialise_with_an_op_tag_and_camel_case_fields() {
        let p = CommandParams::logs(200, Some(600), 65536).unwrap();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"op":"logs","tailLines":200,"sinceSeconds":600,"maxBytes":65536}"#
        );
        let back: CommandParams =
            serde_json::from_str(r#"{"op":"restore","backupId":"b1"}"#).unwrap();
        assert_eq!(
            back,
            CommandParams::Restore {
                backup_id: "b1".into()
            }
        );
    }

    #[test]
    fn out_of_bounds_logs_params_are_refused_by_name() {
        assert_eq!(
            CommandParams::logs(0, None, 1),
            Err(InvalidParams::TailLines(0))
        );
        assert_eq!(
            CommandParams::logs(5001, None, 1).unwrap_err().to_string(),
            "tailLines: 5001 is outside 1..=5000"
        );
        assert_eq!(
            CommandParams::logs(1, Some(0), 1),
            Err(InvalidParams::SinceSeconds(0))
        );
        assert_eq!(
            CommandParams::logs(1, None, MAX_LOG_BYTES + 1),
            Err(InvalidParams::MaxBytes(MAX_LOG_BYTES + 1))
        );
        assert!(CommandParams::logs(
            MAX_LOG_TAIL_LINES,
            Some(MAX_LOG_SINCE_SECONDS),
            MAX_LOG_BYTES
        )
        .is_ok());
    }
}
