//! Reading an agent's recent output.

use std::time::Duration;

/// The label on an agent's container that lists, comma-separated, the names of the
/// environment variables that hold secrets (names only, never values), so the values can
/// be found again in the container's environment and kept out of its logs.
pub const SECRET_ENV_LABEL: &str = "dev.sparebox.secret-env";

/// The most raw log bytes a runtime reads for one request: 16 MiB. Log lines beyond this
/// are dropped from the oldest end before anything else happens to them.
pub const MAX_RAW_LOG_BYTES: usize = 16 * 1024 * 1024;

/// Which of an agent's recent log lines to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogQuery {
    /// The last this many lines (at least 1).
    pub tail_lines: u32,
    /// Only lines written within this long before now, when set. Runtimes whose logs
    /// carry no timestamps (profile mode) cannot honour it and say so in their docs.
    pub since: Option<Duration>,
}

/// The last `lines` lines of `bytes` (a final line without a newline counts as a line),
/// at most [`MAX_RAW_LOG_BYTES`] of them.
pub fn last_lines(bytes: &[u8], lines: u32) -> &[u8] {
    if lines == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines as usize - 1)
        .map_or(0, |(i, _)| i + 1);
    let tail = &bytes[start..];
    &tail[tail.len().saturating_sub(MAX_RAW_LOG_BYTES)..]
}

/// The secret names a [`SECRET_ENV_LABEL`] value lists.
pub fn secret_names(label: &str) -> impl Iterator<Item = &str> {
    label.split(',').map(str::trim).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_newest_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"", 3), b"");
        assert_eq!(last_lines(b"a\n", 0), b"");
    }

    #[test]
    fn secret_names_skip_blanks() {
        assert_eq!(
            secret_names("A, B,,C ").collect::<Vec<_>>(),
            ["A", "B", "C"]
        );
    }
}
