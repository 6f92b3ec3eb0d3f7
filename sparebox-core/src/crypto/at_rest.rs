//! Secrets at rest: AES-256-GCM under a [`Keyring`] whose keys carry ids, so the server's
//! key can rotate without losing what older keys sealed.
//!
//! # Sealed layout (version 1)
//!
//! | bytes | content |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 8 | [`KeyId`] of the key that sealed it |
//! | 12 | random nonce |
//! | rest | AES-256-GCM ciphertext, then its 16-byte tag |
//!
//! The associated data is the domain string `sparebox/at-rest/v1`, the first nine bytes
//! above and the owning agent's id (16 bytes). So a sealed value copied to another agent's
//! row, or relabelled with another key id, fails to open instead of decrypting.
//!
//! # Rotation
//!
//! A [`Keyring`] has one active key, which seals, and any number of retired keys, which
//! only open. [`Keyring::needs_rotation`] tells whether a value was sealed by a retired key
//! and [`Keyring::reencrypt`] moves it to the active key. Once nothing needs rotation, the
//! retired key can be dropped from the configuration.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use super::bundle::SessionKey;
use super::canonical::{decode_secrets, encode_secrets};
use crate::{AgentId, CommandId, Secret};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// The shortest sealed value: header, nonce and the tag of an empty plaintext.
const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const AAD_DOMAIN: &[u8] = b"sparebox/at-rest/v1";
const KEY_ID_INFO: &[u8] = b"sparebox/at-rest/v1/key-id";

/// HKDF `info` prefix for per-command session keys; the command id's 16 bytes follow.
const SESSION_KEY_INFO: &[u8] = b"sparebox/session-key/v1/";

/// Identifies an [`EncryptionKey`] without revealing it: the first eight bytes of an
/// HKDF-SHA256 output derived from the key. Printed as 16 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The id's raw bytes, as stored in a sealed value.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit AES key for secrets at rest. `Debug` shows only its [`KeyId`]; the bytes
/// are zeroed when dropped.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Zeroizing<[u8; 32]>,
    id: KeyId,
}

impl EncryptionKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        Hkdf::<Sha256>::new(None, &bytes[..])
            .expand(KEY_ID_INFO, &mut id)
            .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 output length"));
        Self {
            bytes,
            id: KeyId(id),
        }
    }

    /// Parses exactly 64 hexadecimal characters (surrounding whitespace is ignored), the
    /// form of `SPAREBOX_ENCRYPTION_KEY`.
    ///
    /// # Errors
    ///
    /// [`AtRestError::BadKey`], which never quotes the input.
    pub fn from_hex(text: &str) -> Result<Self, AtRestError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut bytes[..]).map_err(|_| AtRestError::BadKey)?;
        Ok(Self::from_bytes(*bytes))
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut bytes[..]);
        Self::from_bytes(*bytes)
    }

    /// The key as 64 hexadecimal characters, for writing it into a key file once.
    pub fn to_hex(&self) -> Secret {
        Secret::new(hex::encode(&self.bytes[..]))
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.bytes).into())
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}, [REDACTED])", self.id)
    }
}

/// One active key that seals, and retired keys that can still open.
#[derive(Clone, Debug)]
pub struct Keyring {
    active: EncryptionKey,
    retired: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring with only `active`.
    pub fn new(active: EncryptionKey) -> Self {
        Self {
            active,
            retired: Vec::new(),
        }
    }

    /// A keyring from hexadecimal keys: the active one and any retired ones.
    ///
    /// # Errors
    ///
    /// [`AtRestError::BadKey`] or [`AtRestError::DuplicateKey`].
    pub fn from_hex(active: &str, retired: &[&str]) -> Result<Self, AtRestError> {
        let mut ring = Self::new(EncryptionKey::from_hex(active)?);
        for text in retired {
            ring = ring.with_retired(EncryptionKey::from_hex(text)?)?;
        }
        Ok(ring)
    }

    /// Adds a retired key, which opens values but never seals.
    ///
    /// # Errors
    ///
    /// [`AtRestError::DuplicateKey`] when a key with the same id is already present.
    pub fn with_retired(mut self, key: EncryptionKey) -> Result<Self, AtRestError> {
        if self.find(key.id()).is_some() {
            return Err(AtRestError::DuplicateKey(key.id()));
        }
        self.retired.push(key);
        Ok(self)
    }

    /// The id of the key that seals.
    pub fn active_id(&self) -> KeyId {
        self.active.id()
    }

    /// The one-time session key for `command`, derived from the active key with
    /// HKDF-SHA256 and the command id. Every command gets a different key that nobody
    /// without the platform's key can compute, and every server replica sharing the key
    /// derives the same one, so no session key needs to be stored. A command issued
    /// before a key rotation and fetched after it fails verification on the host and is
    /// reported as failed; retrying it issues a new command.
    pub fn session_key(&self, command: CommandId) -> SessionKey {
        let mut info = Vec::with_capacity(SESSION_KEY_INFO.len() + 16);
        info.extend_from_slice(SESSION_KEY_INFO);
        info.extend_from_slice(command.0.as_bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, &self.active.bytes[..])
            .expand(&info, &mut bytes[..])
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        SessionKey::from_bytes(*bytes)
    }

    /// Seals `plaintext` for `owner` under the active key, with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`AtRestError::TooLarge`] for a plaintext beyond AES-GCM's limit (64 GiB).
    pub fn seal(&self, owner: AgentId, plaintext: &[u8]) -> Result<Vec<u8>, AtRestError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);

        let mut out = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        out.push(VERSION);
        out.extend_from_slice(self.active.id().as_bytes());
        let aad = associated_data(&out, owner);
        out.extend_from_slice(&nonce);

        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        let ciphertext = self
            .active
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| AtRestError::TooLarge)?;
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed for `owner` by any key in the ring.
    ///
    /// # Errors
    ///
    /// [`AtRestError::Malformed`], [`AtRestError::UnknownVersion`],
    /// [`AtRestError::UnknownKey`] or [`AtRestError::Forged`]; never garbage plaintext.
    pub fn open(&self, owner: AgentId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        let key_id = key_id_of(sealed)?;
        let key = self.find(key_id).ok_or(AtRestError::UnknownKey(key_id))?;
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(header, owner);

        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        key.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| AtRestError::Forged { owner, key_id })
    }

    /// Whether `sealed` was sealed by a key other than the active one.
    ///
    /// # Errors
    ///
    /// [`AtRestError::Malformed`] or [`AtRestError::UnknownVersion`].
    pub fn needs_rotation(&self, sealed: &[u8]) -> Result<bool, AtRestError> {
        Ok(key_id_of(sealed)? != self.active.id())
    }

    /// Opens `sealed` and seals it again under the active key.
    ///
    /// # Errors
    ///
    /// As [`Keyring::open`] and [`Keyring::seal`].
    pub fn reencrypt(&self, owner: AgentId, sealed: &[u8]) -> Result<Vec<u8>, AtRestError> {
        let plaintext = self.open(owner, sealed)?;
        self.seal(owner, &plaintext)
    }

    /// Seals a map of named secrets (environment variable name to value) for `owner`.
    ///
    /// # Errors
    ///
    /// As [`Keyring::seal`].
    pub fn seal_secrets(
        &self,
        owner: AgentId,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<Vec<u8>, AtRestError> {
        self.seal(owner, &encode_secrets(secrets))
    }

    /// Opens what [`Keyring::seal_secrets`] sealed.
    ///
    /// # Errors
    ///
    /// As [`Keyring::open`], or [`AtRestError::Malformed`] when the plaintext is not a
    /// map of secrets.
    pub fn open_secrets(
        &self,
        owner: AgentId,
        sealed: &[u8],
    ) -> Result<BTreeMap<String, Secret>, AtRestError> {
        let plaintext = self.open(owner, sealed)?;
        decode_secrets(&plaintext).map_err(|_| AtRestError::Malformed {
            reason: "plaintext is not a map of secrets",
        })
    }

    fn find(&self, id: KeyId) -> Option<&EncryptionKey> {
        std::iter::once(&self.active)
            .chain(&self.retired)
            .find(|key| key.id() == id)
    }
}

/// The key id a sealed value names, after checking its version and length.
///
/// # Errors
///
/// [`AtRestError::Malformed`] or [`AtRestError::UnknownVersion`].
pub fn key_id_of(sealed: &[u8]) -> Result<KeyId, AtRestError> {
    let Some(&version) = sealed.first() else {
        return Err(AtRestError::Malformed {
            reason: "sealed value is empty",
        });
    };
    if version != VERSION {
        return Err(AtRestError::UnknownVersion(version));
    }
    if sealed.len() < MIN_SEALED_LEN {
        return Err(AtRestError::Malformed {
            reason: "sealed value is truncated",
        });
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..HEADER_LEN]);
    Ok(KeyId(id))
}

fn associated_data(header: &[u8], owner: AgentId) -> Vec<u8> {
    [AAD_DOMAIN, header, owner.0.as_bytes()].concat()
}

/// Why a key could not be read or a value could not be sealed or opened. No variant
/// carries key material or plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// The key text is not 64 hexadecimal characters.
    #[error("encryption key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    /// Two keys in a keyring have the same id.
    #[error("keyring: key {0} is given twice")]
    DuplicateKey(KeyId),
    /// The plaintext is beyond AES-GCM's length limit.
    #[error("plaintext is too large to seal")]
    TooLarge,
    /// The sealed value is not in the documented layout.
    #[error("sealed value is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The sealed value has a version this code does not know.
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// The value was sealed by a key that is not in the keyring.
    #[error("sealed value names key {0}, which is not in the keyring")]
    UnknownKey(KeyId),
    /// Authentication failed: the value was altered, or sealed for another owner.
    #[error(
        "sealed value for agent {owner} does not authenticate under key {key_id}: \
         it was altered or sealed for another agent"
    )]
    Forged {
        /// The owner it was opened for.
        owner: AgentId,
        /// The key it named.
        key_id: KeyId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE_KEY_HEX: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    const FAKE_SECRET: &str = "sk-ant-FAKE-0123456789";

    fn agent() -> AgentId {
        "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap()
    }

    #[test]
    fn sealed_value_opens_for_its_owner() {
        let ring = Keyring::new(EncryptionKey::generate());
        let sealed = ring.seal(agent(), b"hello").unwrap();
        assert_eq!(&ring.open(agent(), &sealed).unwrap()[..], b"hello");
        assert_eq!(sealed[0], VERSION);
        assert_eq!(&sealed[1..9], ring.active_id().as_bytes());
    }

    #[test]
    fn session_keys_differ_per_command_and_per_platform_key_but_agree_across_replicas() {
        let ring = Keyring::from_hex(FAKE_KEY_HEX, &[]).unwrap();
        let replica = Keyring::from_hex(FAKE_KEY_HEX, &[]).unwrap();
        let (a, b) = (CommandId::new_random(), CommandId::new_random());
        assert!(ring.session_key(a) == replica.session_key(a));
        assert!(ring.session_key(a) != ring.session_key(b));
        let other = Keyring::new(EncryptionKey::generate());
        assert!(ring.session_key(a) != other.session_key(a));
    }

    #[test]
    fn same_plaintext_seals_differently_each_time() {
        let ring = Keyring::new(EncryptionKey::generate());
        assert_ne!(
            ring.seal(agent(), b"x").unwrap(),
            ring.seal(agent(), b"x").unwrap()
        );
    }

    #[test]
    fn ciphertext_moved_to_another_agent_fails_to_open() {
        let ring = Keyring::new(EncryptionKey::generate());
        let sealed = ring.seal(agent(), b"hello").unwrap();
        let other = AgentId::new_random();
        let err = ring.open(other, &sealed).unwrap_err();
        assert!(matches!(err, AtRestError::Forged { owner, .. } if owner == other));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let ring = Keyring::new(EncryptionKey::generate());
        let sealed = ring.seal(agent(), b"hello").unwrap();
        for at in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            assert!(ring.open(agent(), &bad).is_err(), "byte {at}");
        }
    }

    #[test]
    fn wrong_key_is_a_clear_error_not_garbage() {
        let sealed = Keyring::new(EncryptionKey::generate())
            .seal(agent(), b"hello")
            .unwrap();
        let other = Keyring::new(EncryptionKey::generate());
        let err = other.open(agent(), &sealed).unwrap_err();
        assert!(matches!(err, AtRestError::UnknownKey(_)));
        assert!(err.to_string().contains("not in the keyring"));
    }

    #[test]
    fn truncated_and_unknown_versions_are_refused() {
        let ring = Keyring::new(EncryptionKey::generate());
        let sealed = ring.seal(agent(), b"").unwrap();
        assert_eq!(sealed.len(), MIN_SEALED_LEN);
        for cut in 0..sealed.len() {
            assert!(ring.open(agent(), &sealed[..cut]).is_err());
        }
        let mut future = sealed.clone();
        future[0] = 2;
        assert_eq!(
            ring.open(agent(), &future),
            Err(AtRestError::UnknownVersion(2))
        );
    }

    #[test]
    fn rotation_reencrypts_old_values_under_the_active_key() {
        let old = EncryptionKey::generate();
        let sealed_old = Keyring::new(old.clone()).seal(agent(), b"v").unwrap();

        let ring = Keyring::new(EncryptionKey::generate())
            .with_retired(old)
            .unwrap();
        assert!(ring.needs_rotation(&sealed_old).unwrap());
        let resealed = ring.reencrypt(agent(), &sealed_old).unwrap();
        assert!(!ring.needs_rotation(&resealed).unwrap());
        assert_eq!(&ring.open(agent(), &sealed_old).unwrap()[..], b"v");
        assert_eq!(&ring.open(agent(), &resealed).unwrap()[..], b"v");
    }

    #[test]
    fn a_key_cannot_be_in_the_ring_twice() {
        let err = Keyring::from_hex(FAKE_KEY_HEX, &[FAKE_KEY_HEX]).unwrap_err();
        assert!(matches!(err, AtRestError::DuplicateKey(_)));
    }

    #[test]
    fn keys_must_be_64_hex_characters() {
        for bad in ["", "abcd", &"zz".repeat(32), &format!("{FAKE_KEY_HEX}00")] {
            assert_eq!(
                EncryptionKey::from_hex(bad).unwrap_err(),
                AtRestError::BadKey
            );
        }
        let key = EncryptionKey::from_hex(&format!(" {FAKE_KEY_HEX}\n")).unwrap();
        assert_eq!(key.to_hex().expose(), FAKE_KEY_HEX);
    }

    #[test]
    fn key_id_is_stable_and_differs_between_keys() {
        let a = EncryptionKey::from_hex(FAKE_KEY_HEX).unwrap();
        assert_eq!(a.id(), EncryptionKey::from_hex(FAKE_KEY_HEX).unwrap().id());
        assert_ne!(a.id(), EncryptionKey::generate().id());
        assert_eq!(a.id().to_string().len(), 16);
    }

    #[test]
    fn secret_maps_round_trip() {
        let ring = Keyring::new(EncryptionKey::generate());
        let secrets = BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new(FAKE_SECRET))]);
        let sealed = ring.seal_secrets(agent(), &secrets).unwrap();
        assert_eq!(ring.open_secrets(agent(), &sealed).unwrap(), secrets);
    }

    #[test]
    fn fake_key_and_secret_never_appear_in_output() {
        let ring = Keyring::from_hex(FAKE_KEY_HEX, &[]).unwrap();
        let secrets = BTreeMap::from([("K".to_owned(), Secret::new(FAKE_SECRET))]);
        let sealed = ring.seal_secrets(agent(), &secrets).unwrap();
        let mut shown = format!(
            "{ring:?} {:?}",
            ring.open_secrets(agent(), &sealed).unwrap()
        );
        for err in [
            ring.open(AgentId::new_random(), &sealed).unwrap_err(),
            EncryptionKey::from_hex(&FAKE_KEY_HEX[1..]).unwrap_err(),
            ring.open(agent(), &sealed[..20]).unwrap_err(),
        ] {
            shown.push_str(&format!("{err} {err:?}"));
        }
        assert!(!shown.contains(FAKE_SECRET), "{shown}");
        assert!(!shown.to_lowercase().contains("c0ffee00"), "{shown}");
        assert!(!shown.contains(&hex::encode(FAKE_SECRET)), "{shown}");
    }
}
