//! Feeds arbitrary bytes to the at-rest decoder: it must refuse them without panicking,
//! since only the key's holder can produce a value that authenticates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_core::crypto::{EncryptionKey, Keyring};
use sparebox_core::AgentId;

fuzz_target!(|data: &[u8]| {
    let ring = Keyring::new(EncryptionKey::from_bytes([9; 32]));
    let owner = AgentId::from(uuid::Uuid::from_u128(0x5eed));
    let _ = ring.needs_rotation(data);
    assert!(ring.open_secrets(owner, data).is_err());
});
