//! Deploy bundles in transit: secrets sealed under a one-time [`SessionKey`], every field
//! signed with HMAC-SHA256 and the whole bundle valid for a short time only.
//!
//! The server makes a fresh session key per deploy or configuration update and sends it
//! to the host daemon with the command (in the heartbeat response). The daemon then
//! fetches the bundle and calls [`SignedBundle::verify`], which accepts it only for the
//! expected agent and command, inside its validity window, and unaltered down to the
//! last byte. A [`ReplayGuard`](super::ReplayGuard) refuses a second use.
//!
//! # Keys
//!
//! Two keys are derived from the session key with HKDF-SHA256 (salt
//! `sparebox/bundle/v1`): one with `info` `sparebox/bundle/v1/secrets` for AES-256-GCM and
//! one with `info` `sparebox/bundle/v1/mac` for HMAC-SHA256. The session key itself is
//! never used directly.
//!
//! # What is signed
//!
//! The MAC covers this canonical encoding, where `bytes(x)` is `x`'s length as a
//! big-endian `u64` followed by `x`, and a time is its Unix seconds (`i64`) and
//! nanoseconds (`u32`), big-endian:
//!
//! 1. `bytes("sparebox/bundle/v1")`
//! 2. agent id and command id, 16 bytes each
//! 3. `bytes(tier name)`, `bytes(image)`
//! 4. the OpenClaw config as tagged JSON: one tag byte per node (null 0, false 1,
//!    true 2, number 3, string 4, array 5, object 6), numbers as their JSON text, strings
//!    as `bytes`, arrays and objects as a `u64` count then their items, object keys sorted
//! 5. the number of workspace files, then `bytes(path)` and `bytes(content)` for each,
//!    in the order sent
//! 6. `bytes(nonce)` and `bytes(ciphertext)` of the sealed secrets
//! 7. issued-at, then expires-at
//!
//! Nothing depends on JSON spacing or key order, and length prefixes keep any two
//! different bundles from encoding alike. The secrets' AES-GCM associated data is
//! `sparebox/bundle/v1/secrets`, the agent id and the command id.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use zeroize::Zeroizing;

use super::canonical::{self, decode_secrets, encode_secrets, put_bytes, put_json, put_len, Sink};
pub use super::session_key::SessionKey;
use crate::{AgentId, CommandId, Secret, Tier};

/// The largest bundle accepted, in bytes: both its JSON text and its canonical encoding.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// How far a bundle's issued-at may lie in the daemon's future, for clock differences.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// The longest validity window a bundle may claim.
pub const MAX_LIFETIME_SECS: i64 = 60 * 60;

const DOMAIN: &[u8] = b"sparebox/bundle/v1";
/// Prefix of the secrets' AES-GCM associated data.
const SECRETS_AAD: &[u8] = b"sparebox/bundle/v1/secrets";
const NONCE_LEN: usize = 12;

/// A bundle's secrets, encrypted with AES-256-GCM under a key derived from the session
/// key. Serialized as `{"nonce": base64, "ciphertext": base64}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecrets {
    #[serde(with = "b64")]
    nonce: Vec<u8>,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

/// The HMAC-SHA256 over a bundle's canonical encoding, serialized as base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BundleSignature(#[serde(with = "b64")] Vec<u8>);

impl fmt::Debug for BundleSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleSignature({})", hex::encode(&self.0))
    }
}

/// One workspace file as it travels in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleFile {
    /// Relative path with `/` separators; check it with
    /// [`WorkspacePath::parse`](crate::workspace::WorkspacePath::parse) before use.
    pub path: String,
    /// UTF-8 content.
    pub content: String,
}

/// A bundle before sealing: what the server assembles.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleDraft {
    /// The agent.
    pub agent_id: AgentId,
    /// The command this bundle belongs to.
    pub command_id: CommandId,
    /// The agent's tier.
    pub tier: Tier,
    /// The container image, chosen by the platform.
    pub image: String,
    /// The merged `openclaw.json`.
    pub openclaw_config: Value,
    /// Workspace files.
    pub workspace_files: Vec<BundleFile>,
    /// Environment variables holding secrets.
    pub secrets: BTreeMap<String, Secret>,
    /// When the bundle is issued (server clock).
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid; at most [`MAX_LIFETIME_SECS`] after `issued_at`.
    pub expires_at: DateTime<Utc>,
}

impl BundleDraft {
    /// Seals the secrets under `key` and signs every field.
    ///
    /// # Errors
    ///
    /// [`BundleError::BadLifetime`] or [`BundleError::Oversized`]: a bundle that
    /// [`SignedBundle::verify`] would refuse is never produced.
    pub fn seal(self, key: &SessionKey) -> Result<SignedBundle, BundleError> {
        check_lifetime(self.issued_at, self.expires_at)?;
        let nonce = random_nonce();
        let plaintext = encode_secrets(&self.secrets);
        let ciphertext = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &secrets_aad(self.agent_id, self.command_id),
                },
            )
            .map_err(|_| BundleError::Oversized {
                bytes: plaintext.len() as u64,
            })?;

        let mut bundle = SignedBundle {
            agent_id: self.agent_id,
            command_id: self.command_id,
            tier: self.tier,
            image: self.image,
            openclaw_config: self.openclaw_config,
            workspace_files: self.workspace_files,
            secrets: SealedSecrets {
                nonce: nonce.to_vec(),
                ciphertext,
            },
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            signature: BundleSignature(Vec::new()),
        };
        bundle.check_size()?;
        let mut mac = key.mac();
        bundle.encode(&mut mac);
        bundle.signature = BundleSignature(mac.0.finalize().into_bytes().to_vec());
        Ok(bundle)
    }
}

/// A sealed and signed bundle, as it travels from the server to the daemon (JSON,
/// camelCase). Nothing in it may be trusted before [`SignedBundle::verify`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedBundle {
    /// The agent.
    pub agent_id: AgentId,
    /// The command this bundle belongs to.
    pub command_id: CommandId,
    /// The agent's tier.
    pub tier: Tier,
    /// The container image.
    pub image: String,
    /// The merged `openclaw.json`.
    pub openclaw_config: Value,
    /// Workspace files.
    pub workspace_files: Vec<BundleFile>,
    /// The sealed secrets.
    pub secrets: SealedSecrets,
    /// When the bundle was issued (server clock).
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// The MAC over all the fields above.
    pub signature: BundleSignature,
}

impl SignedBundle {
    /// Parses a bundle's JSON text, refusing anything over [`MAX_BUNDLE_BYTES`] before
    /// parsing.
    ///
    /// # Errors
    ///
    /// [`BundleError::Oversized`] or [`BundleError::Json`] (with line and column).
    pub fn from_json(text: &[u8]) -> Result<Self, BundleError> {
        if text.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Oversized {
                bytes: text.len() as u64,
            });
        }
        serde_json::from_slice(text).map_err(|err| BundleError::Json(err.to_string()))
    }

    /// Checks the bundle and opens its secrets. Checks, in order: size, signature (in
    /// constant time), agent, command, validity window (`now` must be before
    /// `expires_at`; `issued_at` may be up to [`MAX_CLOCK_SKEW_SECS`] after `now`).
    ///
    /// # Errors
    ///
    /// The first [`BundleError`] found. Nothing is decrypted unless every check passes.
    pub fn verify(
        &self,
        key: &SessionKey,
        expected_agent: AgentId,
        expected_command: CommandId,
        now: DateTime<Utc>,
    ) -> Result<VerifiedBundle, BundleError> {
        self.check_size()?;
        self.check_signature(key)?;
        if self.agent_id != expected_agent {
            return Err(BundleError::WrongAgent {
                expected: expected_agent,
                found: self.agent_id,
            });
        }
        if self.command_id != expected_command {
            return Err(BundleError::WrongCommand {
                expected: expected_command,
                found: self.command_id,
            });
        }
        check_lifetime(self.issued_at, self.expires_at)?;
        self.check_window(now)?;
        let secrets = self.open_secrets(key)?;

        Ok(VerifiedBundle {
            agent_id: self.agent_id,
            command_id: self.command_id,
            tier: self.tier,
            image: self.image.clone(),
            openclaw_config: self.openclaw_config.clone(),
            workspace_files: self.workspace_files.clone(),
            secrets,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        })
    }

    /// The length of the canonical encoding that the signature covers.
    pub fn signed_len(&self) -> u64 {
        let mut counter = canonical::Counter::default();
        self.encode(&mut counter);
        counter.0
    }

    fn check_size(&self) -> Result<(), BundleError> {
        let bytes = self.signed_len();
        if bytes > MAX_BUNDLE_BYTES as u64 {
            return Err(BundleError::Oversized { bytes });
        }
        Ok(())
    }

    fn check_signature(&self, key: &SessionKey) -> Result<(), BundleError> {
        let mut mac = key.mac();
        self.encode(&mut mac);
        mac.0
            .verify_slice(&self.signature.0)
            .map_err(|_| BundleError::BadSignature {
                command: self.command_id,
            })
    }

    fn check_window(&self, now: DateTime<Utc>) -> Result<(), BundleError> {
        if now >= self.expires_at {
            return Err(BundleError::Expired {
                command: self.command_id,
                expires_at: self.expires_at,
                now,
            });
        }
        if self.issued_at > now + Duration::seconds(MAX_CLOCK_SKEW_SECS) {
            return Err(BundleError::NotYetValid {
                command: self.command_id,
                issued_at: self.issued_at,
                now,
            });
        }
        Ok(())
    }

    fn open_secrets(&self, key: &SessionKey) -> Result<BTreeMap<String, Secret>, BundleError> {
        let unreadable = || BundleError::SecretsUnreadable {
            command: self.command_id,
        };
        if self.secrets.nonce.len() != NONCE_LEN {
            return Err(unreadable());
        }
        let plaintext = key
            .cipher()
            .decrypt(
                Nonce::from_slice(&self.secrets.nonce),
                Payload {
                    msg: &self.secrets.ciphertext,
                    aad: &secrets_aad(self.agent_id, self.command_id),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| unreadable())?;
        decode_secrets(&plaintext).map_err(|_| unreadable())
    }

    fn encode(&self, sink: &mut impl Sink) {
        put_bytes(sink, DOMAIN);
        sink.put(self.agent_id.0.as_bytes());
        sink.put(self.command_id.0.as_bytes());
        put_bytes(sink, self.tier.as_str().as_bytes());
        put_bytes(sink, self.image.as_bytes());
        put_json(sink, &self.openclaw_config);
        put_len(sink, self.workspace_files.len());
        for file in &self.workspace_files {
            put_bytes(sink, file.path.as_bytes());
            put_bytes(sink, file.content.as_bytes());
        }
        put_bytes(sink, &self.secrets.nonce);
        put_bytes(sink, &self.secrets.ciphertext);
        put_time(sink, self.issued_at);
        put_time(sink, self.expires_at);
    }
}

/// A bundle that passed [`SignedBundle::verify`], with its secrets opened.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedBundle {
    /// The agent (the one expected).
    pub agent_id: AgentId,
    /// The command (the one expected).
    pub command_id: CommandId,
    /// The agent's tier.
    pub tier: Tier,
    /// The container image.
    pub image: String,
    /// The merged `openclaw.json`.
    pub openclaw_config: Value,
    /// Workspace files; their paths are not yet checked.
    pub workspace_files: Vec<BundleFile>,
    /// The opened secrets, redacted in `Debug` and zeroed when dropped.
    pub secrets: BTreeMap<String, Secret>,
    /// When the bundle was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid; give it to the replay guard.
    pub expires_at: DateTime<Utc>,
}

fn check_lifetime(issued_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Result<(), BundleError> {
    let lifetime = expires_at - issued_at;
    if lifetime <= Duration::zero() || lifetime > Duration::seconds(MAX_LIFETIME_SECS) {
        return Err(BundleError::BadLifetime {
            issued_at,
            expires_at,
        });
    }
    Ok(())
}

fn put_time(sink: &mut impl Sink, time: DateTime<Utc>) {
    sink.put(&time.timestamp().to_be_bytes());
    sink.put(&time.timestamp_subsec_nanos().to_be_bytes());
}

fn secrets_aad(agent: AgentId, command: CommandId) -> Vec<u8> {
    [SECRETS_AAD, agent.0.as_bytes(), command.0.as_bytes()].concat()
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Why a bundle or session key was refused. No variant carries key material or secrets.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The session key is not 32 bytes of unpadded URL-safe base64.
    #[error("session key must be 32 bytes of unpadded url-safe base64")]
    BadSessionKey,
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle is {bytes} bytes, the limit is {MAX_BUNDLE_BYTES}")]
    Oversized {
        /// Its size.
        bytes: u64,
    },
    /// The bundle is not valid JSON of the right shape.
    #[error("bundle is not valid: {0}")]
    Json(String),
    /// The signature does not match: the bundle was altered or signed with another key.
    #[error("bundle for command {command}: signature does not match (altered, or signed with another session key)")]
    BadSignature {
        /// The command it claims.
        command: CommandId,
    },
    /// The bundle is for another agent.
    #[error("bundle is for agent {found}, expected agent {expected}")]
    WrongAgent {
        /// The agent expected.
        expected: AgentId,
        /// The agent in the bundle.
        found: AgentId,
    },
    /// The bundle is for another command.
    #[error("bundle is for command {found}, expected command {expected}")]
    WrongCommand {
        /// The command expected.
        expected: CommandId,
        /// The command in the bundle.
        found: CommandId,
    },
    /// The validity window is empty or longer than [`MAX_LIFETIME_SECS`].
    #[error("bundle validity from {issued_at} to {expires_at} is empty or longer than {MAX_LIFETIME_SECS} s")]
    BadLifetime {
        /// Its issued-at.
        issued_at: DateTime<Utc>,
        /// Its expires-at.
        expires_at: DateTime<Utc>,
    },
    /// The bundle has expired.
    #[error("bundle for command {command} expired at {expires_at} (now {now})")]
    Expired {
        /// The command.
        command: CommandId,
        /// When it expired.
        expires_at: DateTime<Utc>,
        /// The time it was checked at.
        now: DateTime<Utc>,
    },
    /// The bundle was issued further in the future than clock skew explains.
    #[error("bundle for command {command} is issued at {issued_at}, after now ({now}) plus {MAX_CLOCK_SKEW_SECS} s of clock skew")]
    NotYetValid {
        /// The command.
        command: CommandId,
        /// Its issued-at.
        issued_at: DateTime<Utc>,
        /// The time it was checked at.
        now: DateTime<Utc>,
    },
    /// The signature matched but the sealed secrets do not open: a server fault.
    #[error("bundle for command {command}: sealed secrets cannot be opened")]
    SecretsUnreadable {
        /// The command.
        command: CommandId,
    },
}

/// Serde helpers for byte fields as unpadded URL-safe base64.
mod b64 {
    use super::{Engine, URL_SAFE_NO_PAD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("expected unpadded url-safe base64"))
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
