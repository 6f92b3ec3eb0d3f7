//! Backup archives on the server's disk: one file per backup, sealed at rest.
//!
//! Layout: `<backup dir>/<agent id>/<backup id>.sbk`, directories 0700 and files 0600. A
//! file holds the archive sealed by the platform's [`Keyring`](sparebox_core::crypto::Keyring)
//! for its agent (the agent id is the associated data), so a copied or swapped file does
//! not open for another agent. Files are written to a temporary name, flushed, and
//! renamed into place, so a crash never leaves a half-written backup under its real name.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sparebox_core::{AgentId, CommandId};

/// The backup files under one directory.
#[derive(Clone, Debug)]
pub(crate) struct BackupFiles {
    dir: PathBuf,
}

impl BackupFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, agent: AgentId, id: CommandId) -> PathBuf {
        self.dir.join(agent.to_string()).join(format!("{id}.sbk"))
    }

    /// Writes `sealed` as backup `id` of `agent`, replacing nothing: the name is new.
    pub(crate) async fn write(
        &self,
        agent: AgentId,
        id: CommandId,
        sealed: Vec<u8>,
    ) -> io::Result<()> {
        let target = self.path(agent, id);
        blocking(move || write_atomically(&target, &sealed)).await
    }

    /// Reads backup `id` of `agent`, refusing a file longer than `max` bytes.
    pub(crate) async fn read(
        &self,
        agent: AgentId,
        id: CommandId,
        max: u64,
    ) -> io::Result<Vec<u8>> {
        let path = self.path(agent, id);
        blocking(move || {
            let mut bytes = Vec::new();
            File::open(&path)?.take(max + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > max {
                return Err(io::Error::other(format!(
                    "{} is larger than {max} bytes",
                    path.display()
                )));
            }
            Ok(bytes)
        })
        .await
    }

    /// Deletes backup `id` of `agent`; a missing file is not an error.
    pub(crate) async fn remove(&self, agent: AgentId, id: CommandId) -> io::Result<()> {
        let path = self.path(agent, id);
        blocking(move || match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

fn write_atomically(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| io::Error::other("backup path has no parent directory"))?;
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let temporary = target.with_extension("sbk.partial");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, target)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_file_is_written_read_capped_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = BackupFiles::new(dir.path().join("backups"));
        let (agent, id) = (AgentId::new_random(), CommandId::new_random());
        files.write(agent, id, vec![1, 2, 3]).await.unwrap();
        assert_eq!(files.read(agent, id, 3).await.unwrap(), [1, 2, 3]);
        assert!(files.read(agent, id, 2).await.is_err());
        let path = files.path(agent, id);
        let mode = |p: &Path| {
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(p).unwrap().permissions()) & 0o777
        };
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        files.remove(agent, id).await.unwrap();
        files.remove(agent, id).await.unwrap();
        assert!(files.read(agent, id, 3).await.is_err());
    }
}
