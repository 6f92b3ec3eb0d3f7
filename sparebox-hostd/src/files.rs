//! Writing an agent's `openclaw.json` and workspace files without leaving its directory.
//!
//! Layout: `<agents-dir>/<agent-id>/state/openclaw.json` and
//! `<agents-dir>/<agent-id>/state/workspace/<path>`. Directories are 0700, files 0600, and
//! both belong to the container's user when the daemon runs as root.
//!
//! The agent's container can write to these directories, so nothing in them is trusted:
//! every path from a bundle is checked before anything is written, each directory on the
//! way is checked to be a real directory (not a symlink), and files are opened with
//! `O_NOFOLLOW` and checked to be plain files with a single link before they are truncated.
//! The daemon only rewrites files while the agent's container is removed, so the checks do
//! not race with the agent.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sparebox_core::crypto::VerifiedBundle;
use sparebox_protocol::WorkspaceFile;

/// The longest workspace path accepted, in bytes.
pub const MAX_WORKSPACE_PATH: usize = 512;

/// Errors writing an agent's files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A workspace path from the bundle is not a plain relative path.
    #[error("workspace path {path:?} refused: {reason}")]
    BadPath {
        /// The path as received.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Something on the way is not what it must be (a symlink, a device, a hard link).
    #[error("{path}: refused: {reason}")]
    Unsafe {
        /// The offending path.
        path: PathBuf,
        /// What was found there.
        reason: &'static str,
    },
    /// The file system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Who should own the agent's files: `Some((uid, gid))` when the daemon runs as root.
pub type Owner = Option<(u32, u32)>;

/// Checks that `path` is a plain relative path inside the workspace.
///
/// # Errors
///
/// [`FilesError::BadPath`] for an empty or overlong path, an absolute path, a backslash, a
/// control character (NUL included), an empty segment, or a `.` or `..` segment.
pub fn check_workspace_path(path: &str) -> Result<(), FilesError> {
    let refuse = |reason| {
        Err(FilesError::BadPath {
            path: path.chars().take(MAX_WORKSPACE_PATH).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("empty");
    }
    if path.len() > MAX_WORKSPACE_PATH {
        return refuse("too long");
    }
    if path.starts_with('/') {
        return refuse("absolute");
    }
    if path.contains('\\') {
        return refuse("contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return refuse("contains an empty segment"),
            "." | ".." => return refuse("contains a . or .. segment"),
            _ => {}
        }
    }
    Ok(())
}

/// The files of one agent: a bundle without its secrets, which never touch the disk.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentFiles {
    /// Content of `openclaw.json`.
    pub openclaw_config: serde_json::Value,
    /// Workspace files, paths relative to `workspace/`.
    pub workspace_files: Vec<WorkspaceFile>,
}

impl AgentFiles {
    /// The files of a verified bundle.
    pub fn from_bundle(bundle: &VerifiedBundle) -> Self {
        Self {
            openclaw_config: bundle.openclaw_config.clone(),
            workspace_files: bundle.workspace_files.clone(),
        }
    }
}

/// Writes `openclaw.json` and the workspace files under `state_dir`, creating the
/// directories as needed. Every workspace path is checked before anything is written.
///
/// # Errors
///
/// [`FilesError`] for a refused path, a symlink or other non-plain entry on the way, or an
/// I/O failure. Files written before an I/O failure stay written.
pub fn write_agent_files(
    state_dir: &Path,
    bundle: &AgentFiles,
    owner: Owner,
) -> Result<(), FilesError> {
    for file in &bundle.workspace_files {
        check_workspace_path(&file.path)?;
    }
    let config =
        serde_json::to_vec_pretty(&bundle.openclaw_config).map_err(|err| FilesError::Io {
            path: state_dir.join("openclaw.json"),
            source: io::Error::other(err),
        })?;
    ensure_dir_chain(state_dir, &["workspace"], owner)?;
    write_file(&state_dir.join("openclaw.json"), &config, owner)?;
    let workspace = state_dir.join("workspace");
    for WorkspaceFile { path, content } in &bundle.workspace_files {
        let segments: Vec<&str> = path.split('/').collect();
        let (name, parents) = segments.split_last().unwrap_or((&"", &[]));
        ensure_dir_chain(&workspace, parents, owner)?;
        let target = parents
            .iter()
            .fold(workspace.clone(), |dir, segment| dir.join(segment))
            .join(name);
        write_file(&target, content.as_bytes(), owner)?;
    }
    Ok(())
}

/// Makes `base` (and its missing parents) a private directory, then each of `segments`
/// below it, refusing anything on the way that is not a real directory.
pub fn ensure_dir_chain(base: &Path, segments: &[&str], owner: Owner) -> Result<(), FilesError> {
    ensure_private_dir(base, owner)?;
    let mut dir = base.to_path_buf();
    for segment in segments {
        dir.push(segment);
        ensure_private_dir(&dir, owner)?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700, or checks an existing one is a real
/// directory and makes it 0700 again.
fn ensure_private_dir(dir: &Path, owner: Owner) -> Result<(), FilesError> {
    let io_err = |source| FilesError::Io {
        path: dir.to_owned(),
        source,
    };
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FilesError::Unsafe {
                path: dir.to_owned(),
                reason: "is a symlink",
            })
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(FilesError::Unsafe {
                path: dir.to_owned(),
                reason: "is not a directory",
            })
        }
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        Err(err) => return Err(io_err(err)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(io_err)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` (mode 0600) without following a symlink at `path`, and refuses
/// to overwrite anything but a plain file with a single link.
fn write_file(path: &Path, bytes: &[u8], owner: Owner) -> Result<(), FilesError> {
    let io_err = |source| FilesError::Io {
        path: path.to_owned(),
        source,
    };
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nofollow)
        .open(path)
        .map_err(|err| {
            // ELOOP: the final component is a symlink.
            if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                FilesError::Unsafe {
                    path: path.to_owned(),
                    reason: "is a symlink",
                }
            } else {
                io_err(err)
            }
        })?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(FilesError::Unsafe {
            path: path.to_owned(),
            reason: "is not a plain file with a single link",
        });
    }
    file.set_len(0).map_err(io_err)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err)?;
    }
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> AgentFiles {
        AgentFiles {
            openclaw_config: serde_json::json!({"gateway": {"mode": "local"}}),
            workspace_files: files
                .iter()
                .map(|(path, content)| WorkspaceFile {
                    path: (*path).to_owned(),
                    content: (*content).to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn plain_relative_paths_are_accepted() {
        for path in [
            "SOUL.md",
            "memory/2026-01-01.md",
            "skills/a/b.md",
            "notes..md",
        ] {
            check_workspace_path(path).unwrap();
        }
    }

    #[test]
    fn path_attacks_are_refused() {
        for path in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "a//b",
            "a/",
            "./a",
            "a\0b",
            "a\nb",
        ] {
            assert!(check_workspace_path(path).is_err(), "{path:?} accepted");
        }
        assert!(check_workspace_path(&"a".repeat(MAX_WORKSPACE_PATH + 1)).is_err());
    }

    #[test]
    fn files_are_private_and_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("agent/state");
        write_agent_files(&state, &bundle(&[("memory/a.md", "hello")]), None).unwrap();
        let file = state.join("workspace/memory/a.md");
        assert_eq!(fs::read_to_string(&file).unwrap(), "hello");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&state.join("workspace/memory")), 0o700);
        assert!(fs::read_to_string(state.join("openclaw.json"))
            .unwrap()
            .contains("local"));
    }

    #[test]
    fn one_bad_path_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let bad = bundle(&[("SOUL.md", "ok"), ("../escape.md", "no")]);
        assert!(write_agent_files(&state, &bad, None).is_err());
        assert!(!state.exists());
        assert!(!dir.path().join("escape.md").exists());
    }

    #[test]
    fn symlinked_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, "original").unwrap();
        fs::create_dir_all(state.join("workspace")).unwrap();
        std::os::unix::fs::symlink(&outside, state.join("workspace/SOUL.md")).unwrap();
        let err = write_agent_files(&state, &bundle(&[("SOUL.md", "pwned")]), None).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "original");
    }

    #[test]
    fn symlinked_directory_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(state.join("workspace")).unwrap();
        std::os::unix::fs::symlink(&outside, state.join("workspace/memory")).unwrap();
        let files = bundle(&[("memory/a.md", "pwned")]);
        assert!(write_agent_files(&state, &files, None).is_err());
        assert!(!outside.join("a.md").exists());
    }

    #[test]
    fn hard_linked_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, "original").unwrap();
        fs::create_dir_all(state.join("workspace")).unwrap();
        fs::hard_link(&outside, state.join("workspace/SOUL.md")).unwrap();
        assert!(write_agent_files(&state, &bundle(&[("SOUL.md", "pwned")]), None).is_err());
        assert_eq!(fs::read_to_string(&outside).unwrap(), "original");
    }
}
