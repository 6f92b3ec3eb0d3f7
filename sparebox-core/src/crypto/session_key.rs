//! The one-time key that protects one deploy bundle, and the two keys derived from it.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::bundle::BundleError;
use super::canonical::Sink;
use crate::Secret;

/// HKDF salt, and the domain of everything derived from a session key.
const SALT: &[u8] = b"sparebox/bundle/v1";
/// HKDF `info` for the AES-256-GCM key that seals a bundle's secrets.
const SECRETS_INFO: &[u8] = b"sparebox/bundle/v1/secrets";
/// HKDF `info` for the HMAC-SHA256 key that signs a bundle.
const MAC_INFO: &[u8] = b"sparebox/bundle/v1/mac";
/// HKDF `info` for the AES-256-GCM key that seals a backup archive in transit.
const BACKUP_INFO: &[u8] = b"sparebox/backup/v1/archive";

/// A one-time 256-bit key for one bundle. `Debug` prints `[REDACTED]`; the bytes are
/// zeroed when dropped. Serialized as unpadded URL-safe base64, because it has to travel
/// to the daemon once; never log that form.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; 32]>);

impl SessionKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut bytes[..]);
        Self(bytes)
    }

    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses the unpadded URL-safe base64 form.
    ///
    /// # Errors
    ///
    /// [`BundleError::BadSessionKey`], which never quotes the input.
    pub fn from_base64(text: &str) -> Result<Self, BundleError> {
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| BundleError::BadSessionKey)?,
        );
        let bytes: [u8; 32] = decoded[..]
            .try_into()
            .map_err(|_| BundleError::BadSessionKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The unpadded URL-safe base64 form.
    pub fn to_base64(&self) -> Secret {
        Secret::new(URL_SAFE_NO_PAD.encode(&self.0[..]))
    }

    fn derive(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(SALT), &self.0[..])
            .expand(info, &mut out[..])
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        out
    }

    /// A fresh HMAC-SHA256 state under the derived MAC key.
    pub(super) fn mac(&self) -> MacSink {
        let key = self.derive(MAC_INFO);
        MacSink(
            <Hmac<Sha256> as Mac>::new_from_slice(&key[..])
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    /// AES-256-GCM under the derived secrets key.
    pub(super) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.derive(SECRETS_INFO)).into())
    }

    /// AES-256-GCM under the derived backup key; see [`super::backup`].
    pub(super) fn backup_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.derive(BACKUP_INFO)).into())
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([REDACTED])")
    }
}

/// Compares in constant time, so a message type holding a key can derive `PartialEq`.
impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for SessionKey {}

impl Serialize for SessionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.to_base64().expose())
    }
}

impl<'de> Deserialize<'de> for SessionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// An HMAC-SHA256 state that canonical encodings can be written into.
pub(super) struct MacSink(pub(super) Hmac<Sha256>);

impl Sink for MacSink {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
