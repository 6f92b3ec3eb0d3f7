//! Feeds arbitrary bytes to the bundle decoder and verifier, and mutates a genuine bundle:
//! nothing but the untouched bundle may ever verify.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sparebox_core::crypto::{BundleDraft, BundleFile, SessionKey, SignedBundle};
use sparebox_core::{AgentId, CommandId, Secret, Tier};

const AGENT: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const COMMAND: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const ISSUED: i64 = 1_800_000_000;

fn key() -> SessionKey {
    SessionKey::from_bytes([7; 32])
}

fn ids() -> (AgentId, CommandId) {
    (AGENT.parse().unwrap(), COMMAND.parse().unwrap())
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(ISSUED + 10, 0).unwrap()
}

/// A genuine bundle and its JSON text, made once.
fn genuine() -> &'static (SignedBundle, Vec<u8>) {
    static GENUINE: OnceLock<(SignedBundle, Vec<u8>)> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let (agent_id, command_id) = ids();
        let bundle = BundleDraft {
            agent_id,
            command_id,
            tier: Tier::Lite,
            image: "sparebox/openclaw:2026.9.6".to_owned(),
            openclaw_config: serde_json::json!({"gateway": {"port": 18789}, "a": [1, 2.5, null]}),
            workspace_files: vec![BundleFile {
                path: "AGENTS.md".to_owned(),
                content: "hi".to_owned(),
            }],
            secrets: BTreeMap::from([("K".to_owned(), Secret::new("v"))]),
            issued_at: chrono::DateTime::from_timestamp(ISSUED, 0).unwrap(),
            expires_at: chrono::DateTime::from_timestamp(ISSUED + 300, 0).unwrap(),
        }
        .seal(&key())
        .unwrap();
        let text = serde_json::to_vec(&bundle).unwrap();
        (bundle, text)
    })
}

fuzz_target!(|data: &[u8]| {
    let (agent, command) = ids();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };

    if mode % 2 == 0 {
        if let Ok(bundle) = SignedBundle::from_json(rest) {
            let _ = bundle.verify(&key(), agent, command, now());
        }
        return;
    }

    let (original, text) = genuine();
    let mut mutated = text.clone();
    for pair in rest.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % mutated.len();
        mutated[at] ^= pair[2];
    }
    if let Ok(bundle) = SignedBundle::from_json(&mutated) {
        let verified = bundle.verify(&key(), agent, command, now());
        assert!(
            verified.is_err() || bundle == *original,
            "a changed bundle verified"
        );
    }
});
