//! Sealing an agent's backup archive for the trip between a host and the platform.
//!
//! A backup travels under the session key of the command that moves it (a `backup`
//! command uploads one, a `restore` command downloads one), so each transfer has its own
//! key that the platform derives again from the command id and the host learns only from
//! that command.
//!
//! # Sealed layout (version 1)
//!
//! | bytes | content |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 12 | random nonce |
//! | rest | AES-256-GCM ciphertext of the archive, then its 16-byte tag |
//!
//! The AES key is derived from the session key with HKDF-SHA256 (`info`
//! `sparebox/backup/v1/archive`), so it never equals the key that seals deploy-bundle
//! secrets. The associated data is the domain string `sparebox/backup/v1`, the version
//! byte, the agent id and the command id (16 bytes each): an archive sealed for one agent
//! or command does not open for another.
//!
//! The whole archive is one AEAD message, so it is held in memory on both sides; callers
//! cap its size ([`open_backup`] refuses anything longer than the cap before decrypting).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use rand::rngs::OsRng;
use rand::RngCore;
use thiserror::Error;

use super::bundle::SessionKey;
use crate::{AgentId, CommandId};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"sparebox/backup/v1";

/// Bytes a sealed backup adds to its archive: version, nonce and tag.
pub const BACKUP_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a sealed backup could not be made or opened. Never quotes key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackupSealError {
    /// Shorter than the version, nonce and tag.
    #[error("sealed backup is truncated: {len} bytes")]
    Truncated {
        /// The length received.
        len: usize,
    },
    /// Longer than the caller's cap.
    #[error("sealed backup is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// The length received.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A layout this version does not know.
    #[error("sealed backup has unknown version {0}")]
    UnknownVersion(u8),
    /// The tag did not verify: wrong key, agent or command, or altered bytes.
    #[error("sealed backup does not verify for agent {agent} and command {command}")]
    Forged {
        /// The agent it was opened for.
        agent: AgentId,
        /// The command it was opened for.
        command: CommandId,
    },
    /// The archive is beyond what AES-GCM can seal (64 GiB).
    #[error("archive too large to seal")]
    Unsealable,
}

fn associated_data(agent: AgentId, command: CommandId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 1 + 32);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.push(VERSION);
    aad.extend_from_slice(agent.0.as_bytes());
    aad.extend_from_slice(command.0.as_bytes());
    aad
}

/// Seals `archive` for `agent` and `command` under `key` with a fresh random nonce.
///
/// # Errors
///
/// [`BackupSealError::Unsealable`] for an archive beyond AES-GCM's limit.
pub fn seal_backup(
    key: &SessionKey,
    agent: AgentId,
    command: CommandId,
    archive: &[u8],
) -> Result<Vec<u8>, BackupSealError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(agent, command);
    let ciphertext = key
        .backup_cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: archive,
                aad: &aad,
            },
        )
        .map_err(|_| BackupSealError::Unsealable)?;
    let mut out = Vec::with_capacity(BACKUP_OVERHEAD + archive.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens what [`seal_backup`] sealed for `agent` and `command`, refusing anything longer
/// than `max_len` bytes before decrypting.
///
/// # Errors
///
/// [`BackupSealError::TooLarge`], [`BackupSealError::Truncated`],
/// [`BackupSealError::UnknownVersion`] or [`BackupSealError::Forged`]; never unverified
/// plaintext.
pub fn open_backup(
    key: &SessionKey,
    agent: AgentId,
    command: CommandId,
    sealed: &[u8],
    max_len: usize,
) -> Result<Vec<u8>, BackupSealError> {
    if sealed.len() > max_len {
        return Err(BackupSealError::TooLarge {
            len: sealed.len(),
            max: max_len,
        });
    }
    if sealed.len() < BACKUP_OVERHEAD {
        return Err(BackupSealError::Truncated { len: sealed.len() });
    }
    if sealed[0] != VERSION {
        return Err(BackupSealError::UnknownVersion(sealed[0]));
    }
    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
    let aad = associated_data(agent, command);
    key.backup_cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| BackupSealError::Forged { agent, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 1 << 20;

    fn ids() -> (AgentId, CommandId) {
        (AgentId::new_random(), CommandId::new_random())
    }

    #[test]
    fn sealed_backup_opens_for_its_agent_and_command() {
        let key = SessionKey::generate();
        let (agent, command) = ids();
        let sealed = seal_backup(&key, agent, command, b"archive bytes").unwrap();
        assert_eq!(sealed.len(), BACKUP_OVERHEAD + 13);
        let opened = open_backup(&key, agent, command, &sealed, CAP).unwrap();
        assert_eq!(opened, b"archive bytes");
    }

    #[test]
    fn another_agent_command_or_key_does_not_open_it() {
        let key = SessionKey::generate();
        let (agent, command) = ids();
        let sealed = seal_backup(&key, agent, command, b"x").unwrap();
        let (other_agent, other_command) = ids();
        assert!(open_backup(&key, other_agent, command, &sealed, CAP).is_err());
        assert!(open_backup(&key, agent, other_command, &sealed, CAP).is_err());
        let other_key = SessionKey::generate();
        assert!(open_backup(&other_key, agent, command, &sealed, CAP).is_err());
    }

    #[test]
    fn altered_truncated_oversized_and_unknown_versions_are_refused() {
        let key = SessionKey::generate();
        let (agent, command) = ids();
        let sealed = seal_backup(&key, agent, command, b"hello world").unwrap();
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open_backup(&key, agent, command, &flipped, CAP),
            Err(BackupSealError::Forged { .. })
        ));
        assert!(matches!(
            open_backup(&key, agent, command, &sealed[..10], CAP),
            Err(BackupSealError::Truncated { len: 10 })
        ));
        assert!(matches!(
            open_backup(&key, agent, command, &sealed, 8),
            Err(BackupSealError::TooLarge { .. })
        ));
        let mut versioned = sealed;
        versioned[0] = 9;
        assert_eq!(
            open_backup(&key, agent, command, &versioned, CAP),
            Err(BackupSealError::UnknownVersion(9))
        );
    }
}
