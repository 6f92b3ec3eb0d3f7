//! Deployer secrets at rest: sealed with AES-256-GCM, bound to their agent.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sparebox_core::{AgentId, Secret};
use zeroize::Zeroize;

use crate::error::PlatformError;

/// The environment variable names a deployer may set as secrets. Anything else is refused,
/// so a deployer cannot inject arbitrary environment into a container.
pub const ALLOWED_SECRET_NAMES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
];

/// The environment variable that carries the gateway's auth token (platform-generated).
pub const GATEWAY_TOKEN_ENV: &str = "OPENCLAW_GATEWAY_TOKEN";

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// The platform's encryption key for secrets at rest (32 bytes). Redacted in `Debug`.
#[derive(Clone)]
pub struct MasterKey(Box<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Why a master key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("encryption key must be 64 hexadecimal characters (32 bytes)")]
pub struct BadMasterKey;

impl MasterKey {
    /// Parses 64 hexadecimal characters.
    ///
    /// # Errors
    ///
    /// [`BadMasterKey`] for anything else.
    pub fn from_hex(hex_key: &str) -> Result<Self, BadMasterKey> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| BadMasterKey)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| BadMasterKey)?;
        Ok(Self(Box::new(array)))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self(Box::new(key))
    }

    /// The key as 64 hexadecimal characters, for writing it to a key file once.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0[..])
    }

    /// Seals `secrets` for `agent`: version byte, random nonce, AES-256-GCM ciphertext with
    /// the agent id as associated data, so the blob cannot be moved to another agent.
    pub fn seal(&self, agent: AgentId, secrets: &BTreeMap<String, Secret>) -> Vec<u8> {
        let plaintext = serde_json::to_vec(secrets).expect("a string map always serializes");
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(&self.0[..]).expect("key is 32 bytes");
        let aad = agent.0.as_bytes();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens what [`MasterKey::seal`] sealed for `agent`.
    ///
    /// # Errors
    ///
    /// An internal error when the blob is malformed, was sealed for another agent or
    /// under another key. The message never contains secret material.
    pub fn open(
        &self,
        agent: AgentId,
        sealed: &[u8],
    ) -> Result<BTreeMap<String, Secret>, PlatformError> {
        if sealed.is_empty() {
            return Ok(BTreeMap::new());
        }
        let fail = || {
            tracing::error!(agent = %agent, "sealed secrets could not be opened");
            PlatformError::new(
                crate::ErrorCode::Internal,
                "agent secrets could not be decrypted",
            )
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(&self.0[..]).expect("key is 32 bytes");
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: agent.0.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        serde_json::from_slice(&plaintext).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> BTreeMap<String, Secret> {
        BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new("sk-test"))])
    }

    #[test]
    fn sealed_secrets_open_for_their_agent_only() {
        let key = MasterKey::generate();
        let agent = AgentId::new_random();
        let sealed = key.seal(agent, &secrets());
        assert_eq!(key.open(agent, &sealed).unwrap(), secrets());
        assert!(key.open(AgentId::new_random(), &sealed).is_err());
        assert!(MasterKey::generate().open(agent, &sealed).is_err());
    }

    #[test]
    fn master_key_must_be_64_hex_characters() {
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        let key = MasterKey::generate();
        assert_eq!(
            MasterKey::from_hex(&key.to_hex()).unwrap().to_hex(),
            key.to_hex()
        );
        assert_eq!(format!("{key:?}"), "MasterKey([REDACTED])");
    }
}
