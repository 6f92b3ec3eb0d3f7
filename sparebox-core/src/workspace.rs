//! Workspace file paths and size limits, checked before anything touches a disk.
//!
//! A deployer uploads files for the agent's OpenClaw workspace. The host daemon later
//! joins each path onto a directory on the host, so every path is untrusted input until
//! [`WorkspacePath::parse`] has accepted it. The rules are deliberately strict: a path
//! that is odd but harmless is still refused, because the deployer can always rename it.
//!
//! # Path rules
//!
//! A [`WorkspacePath`] is relative, uses `/` as its only separator and:
//!
//! - is not empty and is at most [`MAX_PATH_BYTES`] bytes long;
//! - does not start with `/` (absolute) and contains no `\` (which some tools treat as a
//!   separator);
//! - contains no NUL or other control character (Unicode category `Cc`);
//! - has no empty segment (`a//b`, a leading `/` or a trailing `/`), no `.` segment and
//!   no `..` segment;
//! - has at most [`MAX_DEPTH`] segments, each at most [`MAX_SEGMENT_BYTES`] bytes.
//!
//! Because empty and `.` segments are refused rather than removed, every accepted path
//! is already in normal form: `a//b` and `./a/b` never turn into `a/b` silently.
//!
//! # Workspace rules
//!
//! [`validate_workspace`] checks a whole upload with [`WorkspaceLimits::DEFAULT`]: at most
//! 1000 files, 10 MiB per file and 50 MiB in total. Two paths that differ only in letter
//! case (`Notes.md` and `notes.md`) count as duplicates: they would overwrite each other
//! on a case-insensitive file system and confuse a reader on any other. A path may not be
//! both a file and a directory (`a` and `a/b`), which no file system can hold.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest accepted path, in bytes of UTF-8.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest accepted segment (file or directory name), in bytes of UTF-8.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The most segments a path may have (`a/b/c` has three).
pub const MAX_DEPTH: usize = 8;

/// How many bytes of a hostile path an error message quotes before cutting it short.
const QUOTED_PATH_CHARS: usize = 96;

/// A workspace path that passed every rule in the [module docs](self). Serialized as a
/// plain string; deserializing applies [`WorkspacePath::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// Checks `raw` against the path rules.
    ///
    /// # Errors
    ///
    /// [`WorkspacePathError`] naming the path and the first rule it breaks.
    pub fn parse(raw: &str) -> Result<Self, WorkspacePathError> {
        let reject = |rule| {
            Err(WorkspacePathError {
                path: quote(raw),
                rule,
            })
        };

        if raw.is_empty() {
            return reject(PathRule::Empty);
        }
        if raw.len() > MAX_PATH_BYTES {
            return reject(PathRule::TooLong { bytes: raw.len() });
        }
        if raw.chars().any(char::is_control) {
            return reject(PathRule::ControlCharacter);
        }
        if raw.contains('\\') {
            return reject(PathRule::Backslash);
        }
        if raw.starts_with('/') {
            return reject(PathRule::Absolute);
        }

        let mut depth = 0;
        for segment in raw.split('/') {
            depth += 1;
            if let Some(rule) = segment_rule(segment) {
                return reject(rule);
            }
        }
        if depth > MAX_DEPTH {
            return reject(PathRule::TooDeep { depth });
        }

        Ok(Self(raw.to_owned()))
    }

    /// The path, with `/` separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, outermost directory first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The key under which two paths count as the same file: the path in lower case.
    fn fold_key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// The rule a single segment breaks, if any.
fn segment_rule(segment: &str) -> Option<PathRule> {
    match segment {
        "" => Some(PathRule::EmptySegment),
        "." => Some(PathRule::DotSegment),
        ".." => Some(PathRule::DotDotSegment),
        s if s.len() > MAX_SEGMENT_BYTES => Some(PathRule::SegmentTooLong { bytes: s.len() }),
        _ => None,
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkspacePath({:?})", self.0)
    }
}

impl TryFrom<String> for WorkspacePath {
    type Error = WorkspacePathError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<WorkspacePath> for String {
    fn from(path: WorkspacePath) -> Self {
        path.0
    }
}

impl AsRef<str> for WorkspacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A path refused by [`WorkspacePath::parse`]: which path, and which rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("workspace path {path}: {rule}")]
pub struct WorkspacePathError {
    /// The offending path, quoted with escapes and cut short if very long.
    pub path: String,
    /// The rule it breaks.
    pub rule: PathRule,
}

/// One path rule from the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathRule {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("path is {bytes} bytes long, the limit is {MAX_PATH_BYTES}")]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// The path contains NUL or another control character.
    #[error("control characters are not allowed")]
    ControlCharacter,
    /// The path contains a backslash.
    #[error("backslashes are not allowed, use `/` as the separator")]
    Backslash,
    /// The path starts with `/`.
    #[error("absolute paths are not allowed")]
    Absolute,
    /// The path has an empty segment (`a//b` or a trailing `/`).
    #[error("empty segments (`//` or a trailing `/`) are not allowed")]
    EmptySegment,
    /// The path has a `.` segment.
    #[error("`.` segments are not allowed")]
    DotSegment,
    /// The path has a `..` segment.
    #[error("`..` segments are not allowed")]
    DotDotSegment,
    /// One segment is longer than [`MAX_SEGMENT_BYTES`].
    #[error("a segment is {bytes} bytes long, the limit is {MAX_SEGMENT_BYTES}")]
    SegmentTooLong {
        /// The segment's length.
        bytes: usize,
    },
    /// The path has more than [`MAX_DEPTH`] segments.
    #[error("path is {depth} segments deep, the limit is {MAX_DEPTH}")]
    TooDeep {
        /// Its number of segments.
        depth: usize,
    },
}

/// Limits on a whole workspace upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkspaceLimits {
    /// The most files an upload may hold.
    pub max_files: usize,
    /// The largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// The largest accepted sum of all file sizes, in bytes.
    pub max_total_bytes: u64,
}

impl WorkspaceLimits {
    /// 1000 files, 10 MiB per file, 50 MiB in total.
    pub const DEFAULT: Self = Self {
        max_files: 1000,
        max_file_bytes: 10 * 1024 * 1024,
        max_total_bytes: 50 * 1024 * 1024,
    };

    /// Checks every path in `files` (path, size in bytes) and the upload as a whole
    /// against these limits. Returns the parsed paths in the order given.
    ///
    /// # Errors
    ///
    /// The first [`WorkspaceError`] found; the file count is checked before any path.
    pub fn validate(&self, files: &[(&str, u64)]) -> Result<Vec<WorkspacePath>, WorkspaceError> {
        if files.len() > self.max_files {
            return Err(WorkspaceError::TooManyFiles {
                count: files.len(),
                limit: self.max_files,
            });
        }

        let mut paths = Vec::with_capacity(files.len());
        let mut total: u64 = 0;
        for &(raw, size) in files {
            let path = WorkspacePath::parse(raw)?;
            if size > self.max_file_bytes {
                return Err(WorkspaceError::FileTooLarge {
                    path,
                    bytes: size,
                    limit: self.max_file_bytes,
                });
            }
            total = total.saturating_add(size);
            if total > self.max_total_bytes {
                return Err(WorkspaceError::TotalTooLarge {
                    limit: self.max_total_bytes,
                });
            }
            paths.push(path);
        }

        check_collisions(&paths)?;
        Ok(paths)
    }
}

impl Default for WorkspaceLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Checks `files` (path, size in bytes) with [`WorkspaceLimits::DEFAULT`].
///
/// # Errors
///
/// See [`WorkspaceLimits::validate`].
pub fn validate_workspace(files: &[(&str, u64)]) -> Result<Vec<WorkspacePath>, WorkspaceError> {
    WorkspaceLimits::DEFAULT.validate(files)
}

/// Refuses duplicates (ignoring case) and paths that are both a file and a directory.
fn check_collisions(paths: &[WorkspacePath]) -> Result<(), WorkspaceError> {
    let mut files: HashMap<String, &WorkspacePath> = HashMap::with_capacity(paths.len());
    for path in paths {
        if let Some(first) = files.insert(path.fold_key(), path) {
            return Err(WorkspaceError::Duplicate {
                path: path.clone(),
                first: first.clone(),
            });
        }
    }

    for path in paths {
        let key = path.fold_key();
        let parents = key.match_indices('/').map(|(at, _)| &key[..at]);
        for parent in parents {
            if let Some(file) = files.get(parent) {
                return Err(WorkspaceError::FileIsDirectory {
                    path: path.clone(),
                    file: (*file).clone(),
                });
            }
        }
    }
    Ok(())
}

/// A workspace upload refused by [`validate_workspace`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// One path breaks a path rule.
    #[error(transparent)]
    Path(#[from] WorkspacePathError),
    /// The upload has too many files.
    #[error("workspace has {count} files, the limit is {limit}")]
    TooManyFiles {
        /// How many files it has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One file is too large.
    #[error("workspace path {:?}: file is {bytes} bytes, the limit is {limit}", .path.as_str())]
    FileTooLarge {
        /// The file.
        path: WorkspacePath,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The files together are too large.
    #[error("workspace files are larger than {limit} bytes in total")]
    TotalTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Two paths name the same file, ignoring letter case.
    #[error(
        "workspace path {:?}: same file as {:?} (paths are compared ignoring case)",
        .path.as_str(),
        .first.as_str()
    )]
    Duplicate {
        /// The later path.
        path: WorkspacePath,
        /// The earlier path it collides with.
        first: WorkspacePath,
    },
    /// A path runs through another path that is a file.
    #[error(
        "workspace path {:?}: {:?} is a file, so it cannot also be a directory",
        .path.as_str(),
        .file.as_str()
    )]
    FileIsDirectory {
        /// The path that needs a directory.
        path: WorkspacePath,
        /// The file in its way.
        file: WorkspacePath,
    },
}

/// `raw` quoted with Rust escapes (so control characters show), cut short if long.
fn quote(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(QUOTED_PATH_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(raw: &str) -> PathRule {
        WorkspacePath::parse(raw).unwrap_err().rule
    }

    #[test]
    fn ordinary_relative_paths_are_accepted() {
        for raw in [
            "AGENTS.md",
            "memory/notes.md",
            "a/b/c/d/e/f/g/h",
            ".hidden/..x/x..",
            "ü/日本.md",
        ] {
            assert_eq!(WorkspacePath::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn each_hostile_path_shape_is_refused_with_its_rule() {
        let long_segment = "x".repeat(MAX_SEGMENT_BYTES + 1);
        let long_path = ["y"; 600].join("/");
        let cases = [
            ("", PathRule::Empty),
            ("/etc/passwd", PathRule::Absolute),
            ("../escape", PathRule::DotDotSegment),
            ("a/../../b", PathRule::DotDotSegment),
            ("a/..", PathRule::DotDotSegment),
            ("./a", PathRule::DotSegment),
            ("a/./b", PathRule::DotSegment),
            ("a//b", PathRule::EmptySegment),
            ("a/", PathRule::EmptySegment),
            ("a\\..\\b", PathRule::Backslash),
            ("C:\\x", PathRule::Backslash),
            ("a\0b", PathRule::ControlCharacter),
            ("a\nb", PathRule::ControlCharacter),
            ("a\u{7f}", PathRule::ControlCharacter),
            ("a\u{85}", PathRule::ControlCharacter),
            ("1/2/3/4/5/6/7/8/9", PathRule::TooDeep { depth: 9 }),
            (
                long_segment.as_str(),
                PathRule::SegmentTooLong { bytes: 256 },
            ),
            (long_path.as_str(), PathRule::TooLong { bytes: 1199 }),
        ];
        for (raw, rule) in cases {
            assert_eq!(rule_of(raw), rule, "{raw:?}");
        }
    }

    #[test]
    fn path_error_names_the_path_and_the_rule() {
        let err = WorkspacePath::parse("notes/../../etc/shadow").unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace path \"notes/../../etc/shadow\": `..` segments are not allowed"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_errors() {
        let err = WorkspacePath::parse("a\u{1b}[31mred").unwrap_err();
        assert!(!err.to_string().contains('\u{1b}'));
        assert!(err.to_string().contains("\\u{1b}"));
    }

    #[test]
    fn very_long_paths_are_cut_short_in_errors() {
        let err = WorkspacePath::parse(&"z".repeat(5000)).unwrap_err();
        assert!(err.to_string().len() < 300);
    }

    #[test]
    fn exact_and_case_folded_duplicates_are_refused() {
        let exact = validate_workspace(&[("a/b.md", 1), ("a/b.md", 1)]).unwrap_err();
        assert!(matches!(exact, WorkspaceError::Duplicate { .. }));
        let folded = validate_workspace(&[("Notes.md", 1), ("notes.MD", 1)]).unwrap_err();
        assert_eq!(
            folded.to_string(),
            "workspace path \"notes.MD\": same file as \"Notes.md\" (paths are compared ignoring case)"
        );
    }

    #[test]
    fn un_normalised_spelling_of_a_path_is_refused_not_merged() {
        let err = validate_workspace(&[("a/b", 1), ("a//b", 1)]).unwrap_err();
        assert!(matches!(err, WorkspaceError::Path(e) if e.rule == PathRule::EmptySegment));
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        let err = validate_workspace(&[("docs/a.md", 1), ("docs", 1)]).unwrap_err();
        assert!(matches!(err, WorkspaceError::FileIsDirectory { .. }));
    }

    #[test]
    fn file_and_total_size_limits_are_enforced() {
        let mib = 1024 * 1024;
        assert!(validate_workspace(&[("big", 10 * mib)]).is_ok());
        let err = validate_workspace(&[("big", 10 * mib + 1)]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("workspace path \"big\": file is"));

        let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 9 * mib)).collect();
        let err = validate_workspace(&files).unwrap_err();
        assert!(matches!(err, WorkspaceError::TotalTooLarge { .. }));
    }

    #[test]
    fn sizes_near_u64_max_do_not_overflow() {
        let limits = WorkspaceLimits {
            max_file_bytes: u64::MAX,
            max_total_bytes: u64::MAX - 1,
            ..WorkspaceLimits::DEFAULT
        };
        let err = limits
            .validate(&[("a", u64::MAX), ("b", u64::MAX)])
            .unwrap_err();
        assert!(matches!(err, WorkspaceError::TotalTooLarge { .. }));
    }

    #[test]
    fn deserializing_applies_the_path_rules() {
        let ok: WorkspacePath = serde_json::from_str("\"a/b.md\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"a/b.md\"");
        let err = serde_json::from_str::<WorkspacePath>("\"../x\"").unwrap_err();
        assert!(err.to_string().contains("`..` segments are not allowed"));
    }

    proptest::proptest! {
        #[test]
        fn accepted_paths_never_leave_the_workspace(raw in "[a./\\\\\\x00-]{0,12}") {
            if let Ok(path) = WorkspacePath::parse(&raw) {
                let joined = std::path::Path::new("/workspace").join(path.as_str());
                proptest::prop_assert!(joined.starts_with("/workspace"));
                proptest::prop_assert!(joined
                    .components()
                    .all(|c| c != std::path::Component::ParentDir && c != std::path::Component::CurDir));
                proptest::prop_assert_eq!(joined.components().count(), path.segments().count() + 2);
            }
        }
    }

    #[test]
    fn too_many_files_are_refused() {
        let names: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 0)).collect();
        let err = validate_workspace(&files).unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace has 1001 files, the limit is 1000"
        );
        assert_eq!(validate_workspace(&files[..1000]).unwrap().len(), 1000);
    }
}
