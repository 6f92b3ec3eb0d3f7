//! An agent's state as a backup archive: packing its state directory into a gzip-compressed
//! tar, and reading such an archive back without trusting it.
//!
//! # What a backup holds
//!
//! Everything OpenClaw keeps under the agent's state directory (sessions, memory, the
//! workspace, its own databases), paths relative to that directory, except what the
//! platform writes or can rebuild: [`EXCLUDED`] at the top level (`openclaw.json` and
//! anything named like it, which the deploy bundle writes and which carries the platform's
//! gateway settings, and `.cache`). Secrets never touch the disk (the daemon hands them to
//! the container as environment variables), so no file holds the gateway token or a
//! provider key unless the agent itself wrote one. Symbolic links, devices, sockets and
//! pipes are skipped: only directories and plain files are archived.
//!
//! The directory belongs to a container that may be running, so it is walked through file
//! descriptors ([`rustix::fs::openat`] with `O_NOFOLLOW`): a directory swapped for a symlink
//! mid-walk is skipped, never followed out of the agent's directory. A file the agent is
//! writing meanwhile is archived as it was when read.
//!
//! # Reading an archive
//!
//! [`unpack`] is a pure function over bytes, the piece worth fuzzing: it decompresses with
//! a cap on the decompressed size, and accepts only directories and plain files whose
//! paths pass [`check_entry_path`] (relative, no `..`, no `.`, no empty segment, no
//! backslash or control character, each segment valid as a [`WorkspacePath`], at most
//! [`MAX_DEPTH`] deep), none of them excluded, none twice, none below a file, within
//! [`ArchiveLimits`]. [`write_tree`] then writes the entries into a directory that must not
//! exist yet, creating every file with `O_CREAT | O_EXCL | O_NOFOLLOW`.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use sparebox_core::workspace::WorkspacePath;

use crate::files::Owner;

/// Top-level names of the state directory a backup leaves out and a restore refuses:
/// platform-written configuration (the name and anything starting with it, such as
/// OpenClaw's `openclaw.json.bak`) and the rebuildable cache.
pub const EXCLUDED: [&str; 2] = ["openclaw.json", ".cache"];

/// The deepest path accepted in an archive, in segments.
pub const MAX_DEPTH: usize = 32;
/// The longest path accepted in an archive, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Caps on what an archive may hold; checked while packing and while reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The largest single file, in bytes.
    pub max_file_bytes: u64,
    /// The most file content in total, in bytes (before compression).
    pub max_total_bytes: u64,
    /// The most entries (files and directories).
    pub max_entries: usize,
}

impl ArchiveLimits {
    /// 64 MiB per file, 512 MiB in total, 100 000 entries.
    pub const DEFAULT: ArchiveLimits = ArchiveLimits {
        max_file_bytes: 64 * 1024 * 1024,
        max_total_bytes: 512 * 1024 * 1024,
        max_entries: 100_000,
    };
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an archive could not be made or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry's path breaks a rule.
    #[error("archive path {path:?} refused: {reason}")]
    BadPath {
        /// The path (cut short when long).
        path: String,
        /// The rule it breaks.
        reason: String,
    },
    /// An entry is neither a directory nor a plain file.
    #[error("archive entry {path:?} refused: {kind} entries are not allowed")]
    BadKind {
        /// The entry's path.
        path: String,
        /// What it is (symlink, hard link, device...).
        kind: &'static str,
    },
    /// A cap in [`ArchiveLimits`] was exceeded.
    #[error("archive too large: {0}")]
    TooLarge(String),
    /// The bytes are not a complete gzip-compressed tar.
    #[error("archive is malformed or truncated: {0}")]
    Malformed(String),
    /// Reading the state directory or writing the restored one failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read or written.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

fn io_at(path: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.into();
    move |source| ArchiveError::Io { path, source }
}

/// One directory or plain file read from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path relative to the state directory, `/`-separated, already checked.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
}

/// A directory, or a file with its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A plain file; `executable` keeps the owner's execute bit.
    File {
        /// Its content.
        content: Vec<u8>,
        /// Whether the owner may execute it.
        executable: bool,
    },
}

/// Checks one archive path: the rules in the [module docs](self), plus no excluded
/// top-level name.
///
/// # Errors
///
/// [`ArchiveError::BadPath`] naming the first rule broken.
pub fn check_entry_path(path: &str) -> Result<(), ArchiveError> {
    let refuse = |reason: String| {
        Err(ArchiveError::BadPath {
            path: path.chars().take(96).collect(),
            reason,
        })
    };
    if path.len() > MAX_PATH_BYTES {
        return refuse(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return refuse("absolute".to_owned());
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > MAX_DEPTH {
        return refuse(format!("deeper than {MAX_DEPTH} segments"));
    }
    for segment in &segments {
        if let Err(err) = WorkspacePath::parse(segment) {
            return refuse(err.to_string());
        }
    }
    let top = segments[0];
    if EXCLUDED
        .iter()
        .any(|excluded| top == *excluded || top.starts_with(excluded))
    {
        return refuse(format!(
            "{top} is platform-owned and never part of a backup"
        ));
    }
    Ok(())
}

/// Packs `state_dir` into a gzip-compressed tar: see the [module docs](self) for what is
/// included. Entries are sorted, so the same directory packs the same way.
///
/// # Errors
///
/// [`ArchiveError::TooLarge`] past `limits`; [`ArchiveError::BadPath`] for a name a
/// restore would refuse (so no backup is taken that cannot be restored);
/// [`ArchiveError::Io`] when the directory cannot be read.
pub fn pack(state_dir: &Path, limits: &ArchiveLimits) -> Result<Vec<u8>, ArchiveError> {
    let shown = state_dir.display().to_string();
    let root = rustix::fs::open(
        state_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io_at(shown.clone())(errno.into()))?;
    let mut packer = Packer {
        builder: tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default())),
        limits: *limits,
        entries: 0,
        total: 0,
    };
    packer.walk(root, "")?;
    let encoder = packer.builder.into_inner().map_err(io_at(shown.clone()))?;
    encoder.finish().map_err(io_at(shown))
}

struct Packer {
    builder: tar::Builder<GzEncoder<Vec<u8>>>,
    limits: ArchiveLimits,
    entries: usize,
    total: u64,
}

impl Packer {
    /// Archives the directory open at `dir`, whose path in the archive is `prefix`.
    fn walk(&mut self, dir: OwnedFd, prefix: &str) -> Result<(), ArchiveError> {
        let errno = |path: &str| {
            let path = path.to_owned();
            move |e: rustix::io::Errno| io_at(path)(e.into())
        };
        let mut names = Vec::new();
        for entry in Dir::read_from(&dir).map_err(errno(prefix))? {
            let entry = entry.map_err(errno(prefix))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return Err(ArchiveError::BadPath {
                    path: format!("{prefix}{}", String::from_utf8_lossy(name)),
                    reason: "not UTF-8".to_owned(),
                });
            };
            let path = format!("{prefix}{name}");
            if prefix.is_empty() && EXCLUDED.iter().any(|x| name.starts_with(x)) {
                continue;
            }
            names.push((name.to_owned(), path));
        }
        names.sort();
        for (name, path) in names {
            let Ok(stat) = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue; // removed by the agent meanwhile
            };
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    let flags =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let Ok(child) = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty())
                    else {
                        continue; // replaced by something else meanwhile
                    };
                    self.append_dir(&path)?;
                    self.walk(child, &format!("{path}/"))?;
                }
                FileType::RegularFile => {
                    let flags =
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
                    let Ok(fd) = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty())
                    else {
                        continue;
                    };
                    self.append_file(&path, File::from(fd))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn count_entry(&mut self, path: &str) -> Result<(), ArchiveError> {
        check_entry_path(path)?;
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooLarge(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        Ok(())
    }

    fn append_dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        self.count_entry(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o700);
        header.set_size(0);
        self.builder
            .append_data(&mut header, format!("{path}/"), io::empty())
            .map_err(io_at(path))
    }

    fn append_file(&mut self, path: &str, file: File) -> Result<(), ArchiveError> {
        self.count_entry(path)?;
        let meta = file.metadata().map_err(io_at(path))?;
        if !meta.is_file() {
            return Ok(());
        }
        let mut content = Vec::new();
        (&file)
            .take(self.limits.max_file_bytes + 1)
            .read_to_end(&mut content)
            .map_err(io_at(path))?;
        let len = content.len() as u64;
        if len > self.limits.max_file_bytes {
            return Err(ArchiveError::TooLarge(format!(
                "{path} is over {} bytes",
                self.limits.max_file_bytes
            )));
        }
        self.total += len;
        if self.total > self.limits.max_total_bytes {
            return Err(ArchiveError::TooLarge(format!(
                "state is over {} bytes",
                self.limits.max_total_bytes
            )));
        }
        let executable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o100 != 0;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(if executable { 0o700 } else { 0o600 });
        header.set_size(len);
        header.set_mtime(
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        );
        self.builder
            .append_data(&mut header, path, content.as_slice())
            .map_err(io_at(path))
    }
}

/// A reader that fails once more than `left` bytes have come through it.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => {
                self.exceeded = true;
                Err(io::Error::other("decompressed size limit exceeded"))
            }
        }
    }
}

/// Room for tar headers and padding on top of the content cap: 1.5 KiB per entry.
fn decompressed_cap(limits: &ArchiveLimits) -> u64 {
    limits
        .max_total_bytes
        .saturating_add((limits.max_entries as u64).saturating_mul(1536))
        .saturating_add(1024 * 1024)
}

/// Reads a gzip-compressed tar made by [`pack`] (or by anyone: nothing in it is trusted)
/// into its entries, sorted by path. Pure: touches no file system.
///
/// # Errors
///
/// [`ArchiveError::Malformed`] for bytes that are not a complete archive,
/// [`ArchiveError::BadPath`], [`ArchiveError::BadKind`] or [`ArchiveError::TooLarge`] for
/// an entry that breaks a rule; the first problem found, and no entries.
pub fn unpack(bytes: &[u8], limits: &ArchiveLimits) -> Result<Vec<ArchiveEntry>, ArchiveError> {
    let mut reader = Capped {
        inner: GzDecoder::new(bytes),
        left: decompressed_cap(limits),
        exceeded: false,
    };
    let result = read_entries(&mut reader, limits);
    if reader.exceeded {
        return Err(ArchiveError::TooLarge(format!(
            "decompresses to more than {} bytes",
            decompressed_cap(limits)
        )));
    }
    result
}

fn read_entries<R: Read>(
    reader: &mut Capped<R>,
    limits: &ArchiveLimits,
) -> Result<Vec<ArchiveEntry>, ArchiveError> {
    let malformed = |err: io::Error| ArchiveError::Malformed(err.to_string());
    let mut archive = tar::Archive::new(reader);
    let mut entries: BTreeMap<String, ArchiveEntry> = BTreeMap::new();
    let mut total: u64 = 0;
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let text = String::from_utf8(raw).map_err(|e| ArchiveError::BadPath {
            path: String::from_utf8_lossy(e.as_bytes())
                .chars()
                .take(96)
                .collect(),
            reason: "not UTF-8".to_owned(),
        })?;
        let is_dir = kind == tar::EntryType::Directory;
        let path = if is_dir {
            text.strip_suffix('/').unwrap_or(&text).to_owned()
        } else {
            text
        };
        check_entry_path(&path)?;
        let found = match kind {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let declared = entry.header().size().map_err(malformed)?;
                if declared > limits.max_file_bytes {
                    return Err(ArchiveError::TooLarge(format!(
                        "{path} is over {} bytes",
                        limits.max_file_bytes
                    )));
                }
                total = total.saturating_add(declared);
                if total > limits.max_total_bytes {
                    return Err(ArchiveError::TooLarge(format!(
                        "content is over {} bytes",
                        limits.max_total_bytes
                    )));
                }
                let mut content = Vec::with_capacity(declared.min(1 << 20) as usize);
                entry.read_to_end(&mut content).map_err(malformed)?;
                if content.len() as u64 != declared {
                    return Err(ArchiveError::Malformed(format!("{path} is truncated")));
                }
                let executable = entry.header().mode().map_err(malformed)? & 0o100 != 0;
                EntryKind::File {
                    content,
                    executable,
                }
            }
            other => {
                return Err(ArchiveError::BadKind {
                    path,
                    kind: kind_name(other),
                })
            }
        };
        if entries.len() >= limits.max_entries {
            return Err(ArchiveError::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        if entries.contains_key(&path) {
            return Err(ArchiveError::BadPath {
                path,
                reason: "appears twice".to_owned(),
            });
        }
        entries.insert(path.clone(), ArchiveEntry { path, kind: found });
    }
    // The tar reader stops at the end-of-archive marker or at the end of the bytes; read
    // the gzip stream to its end so its trailer (length and checksum) is checked too.
    let inner = archive.into_inner();
    if let Err(err) = io::copy(inner, &mut io::sink()) {
        if inner.exceeded {
            return Err(ArchiveError::TooLarge(err.to_string()));
        }
        return Err(ArchiveError::Malformed(err.to_string()));
    }
    check_tree(&entries)?;
    Ok(entries.into_values().collect())
}

/// Refuses an entry below a file (`a` is a file and `a/b` exists).
fn check_tree(entries: &BTreeMap<String, ArchiveEntry>) -> Result<(), ArchiveError> {
    for path in entries.keys() {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            if let Some(ArchiveEntry {
                kind: EntryKind::File { .. },
                ..
            }) = entries.get(up)
            {
                return Err(ArchiveError::BadPath {
                    path: path.clone(),
                    reason: format!("{up} is a file"),
                });
            }
            parent = up;
        }
    }
    Ok(())
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "unsupported",
    }
}

/// Writes `entries` (from [`unpack`]) into `dest`, which must not exist yet: directories
/// 0700, files 0600 (0700 when executable), created with `O_EXCL | O_NOFOLLOW` and owned
/// by `owner` when given. Missing parent directories are created.
///
/// # Errors
///
/// [`ArchiveError::Io`] when `dest` exists or a write fails; what was written stays.
pub fn write_tree(dest: &Path, entries: &[ArchiveEntry], owner: Owner) -> Result<(), ArchiveError> {
    let shown = |p: &Path| p.display().to_string();
    DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(io_at(shown(dest)))?;
    chown(dest, owner)?;
    for entry in entries {
        let target = entry
            .path
            .split('/')
            .fold(dest.to_path_buf(), |dir, segment| dir.join(segment));
        if let Some((parents, _)) = entry.path.rsplit_once('/') {
            make_dirs(dest, parents, owner)?;
        }
        match &entry.kind {
            EntryKind::Dir => make_dirs(dest, &entry.path, owner)?,
            EntryKind::File {
                content,
                executable,
            } => write_tree_file(&target, content, *executable, owner)?,
        }
    }
    Ok(())
}

/// Creates the new file `target` (`O_EXCL | O_NOFOLLOW`) with `content`.
fn write_tree_file(
    target: &Path,
    content: &[u8],
    executable: bool,
    owner: Owner,
) -> Result<(), ArchiveError> {
    let io_err = || io_at(target.display().to_string());
    let nofollow = OFlags::NOFOLLOW.bits() as i32;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o700 } else { 0o600 })
        .custom_flags(nofollow)
        .open(target)
        .map_err(io_err())?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err())?;
    }
    file.write_all(content).map_err(io_err())?;
    file.sync_all().map_err(io_err())
}

/// Creates each directory of `relative` below `base` that is missing, refusing anything
/// on the way that is not a real directory.
fn make_dirs(base: &Path, relative: &str, owner: Owner) -> Result<(), ArchiveError> {
    let mut dir = base.to_path_buf();
    for segment in relative.split('/') {
        dir.push(segment);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {
                return Err(io_at(dir.display().to_string())(io::Error::other(
                    "exists and is not a directory",
                )))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_at(dir.display().to_string())(err)),
        }
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_at(dir.display().to_string()))?;
        chown(&dir, owner)?;
    }
    Ok(())
}

/// The largest archive a backup may produce or a restore may accept: 256 MiB, the
/// server's default cap.
pub const MAX_ARCHIVE_BYTES: u64 = 256 * 1024 * 1024;

/// The largest platform-written file carried over by [`replace_state`]: 1 MiB.
const MAX_CARRIED_BYTES: u64 = 1024 * 1024;

/// Replaces `<agent_dir>/state` with `entries`: writes them into a fresh
/// `<agent_dir>/state.restoring`, copies the platform's `openclaw.json` over from the
/// current state (a backup never carries it), then swaps the two directories in one
/// `renameat2(RENAME_EXCHANGE)` and deletes the old state. A crash before the swap leaves
/// the old state in place (and a leftover `state.restoring` that the next restore
/// removes); after it, the new state. The agent's container must not be running.
///
/// # Errors
///
/// [`ArchiveError::Io`] when a step fails; the old state stays in place unless the swap
/// itself succeeded.
pub fn replace_state(
    agent_dir: &Path,
    entries: &[ArchiveEntry],
    owner: Owner,
) -> Result<(), ArchiveError> {
    let state = agent_dir.join("state");
    let fresh = agent_dir.join("state.restoring");
    let shown = |p: &Path| p.display().to_string();
    match fs::remove_dir_all(&fresh) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(io_at(shown(&fresh))(err)),
        _ => {}
    }
    write_tree(&fresh, entries, owner)?;
    carry_over(&state, &fresh, "openclaw.json", owner)?;
    if fs::symlink_metadata(&state).is_ok() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &fresh,
            rustix::fs::CWD,
            &state,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|errno| io_at(shown(&state))(errno.into()))?;
        fs::remove_dir_all(&fresh).map_err(io_at(shown(&fresh)))?;
    } else {
        fs::rename(&fresh, &state).map_err(io_at(shown(&state)))?;
    }
    File::open(agent_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_at(shown(agent_dir)))
}

/// Copies the plain file `name` from `from` to `to` (where it must not exist yet), without
/// following a symlink; a missing file is skipped.
fn carry_over(from: &Path, to: &Path, name: &str, owner: Owner) -> Result<(), ArchiveError> {
    let source = from.join(name);
    let nofollow = OFlags::NOFOLLOW.bits() as i32;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | OFlags::NONBLOCK.bits() as i32)
        .open(&source)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_at(source.display().to_string())(err)),
    };
    let meta = file
        .metadata()
        .map_err(io_at(source.display().to_string()))?;
    if !meta.is_file() {
        return Ok(());
    }
    let mut content = Vec::new();
    file.take(MAX_CARRIED_BYTES)
        .read_to_end(&mut content)
        .map_err(io_at(source.display().to_string()))?;
    write_tree_file(&to.join(name), &content, false, owner)
}

fn chown(path: &Path, owner: Owner) -> Result<(), ArchiveError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(io_at(path.display().to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
