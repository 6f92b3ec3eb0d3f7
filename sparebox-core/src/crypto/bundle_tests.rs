use chrono::TimeZone;

use super::*;

const FAKE_SECRET: &str = "sk-ant-FAKE-fedcba9876543210";

fn agent() -> AgentId {
    "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap()
}

fn command() -> CommandId {
    "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap()
}

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn draft() -> BundleDraft {
    BundleDraft {
        agent_id: agent(),
        command_id: command(),
        tier: Tier::Standard,
        image: "sparebox/openclaw:2026.9.6".to_owned(),
        openclaw_config: serde_json::json!({"gateway": {"mode": "local", "port": 18789}}),
        workspace_files: vec![BundleFile {
            path: "AGENTS.md".to_owned(),
            content: "be helpful".to_owned(),
        }],
        secrets: BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new(FAKE_SECRET))]),
        issued_at: t(0),
        expires_at: t(300),
    }
}

fn sealed() -> (SessionKey, SignedBundle) {
    let key = SessionKey::generate();
    let bundle = draft().seal(&key).unwrap();
    (key, bundle)
}

#[test]
fn sealed_bundle_verifies_and_opens_its_secrets() {
    let (key, bundle) = sealed();
    let verified = bundle.verify(&key, agent(), command(), t(10)).unwrap();
    assert_eq!(verified.secrets["ANTHROPIC_API_KEY"].expose(), FAKE_SECRET);
    assert_eq!(verified.workspace_files, draft().workspace_files);
    assert_eq!(verified.openclaw_config, draft().openclaw_config);
}

#[test]
fn bundle_survives_a_json_round_trip() {
    let (key, bundle) = sealed();
    let text = serde_json::to_vec_pretty(&bundle).unwrap();
    let parsed = SignedBundle::from_json(&text).unwrap();
    assert!(parsed.verify(&key, agent(), command(), t(10)).is_ok());
}

#[test]
fn secrets_are_not_in_the_wire_form() {
    let (_, bundle) = sealed();
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(!text.contains(FAKE_SECRET));
    assert!(!text.contains("ANTHROPIC_API_KEY"));
}

#[test]
fn one_changed_byte_anywhere_in_the_wire_form_is_refused() {
    let (key, bundle) = sealed();
    let text = serde_json::to_vec(&bundle).unwrap();
    let mut refused = 0;
    for at in 0..text.len() {
        for flip in [0x01u8, 0x20] {
            let mut bad = text.clone();
            bad[at] ^= flip;
            let Ok(parsed) = SignedBundle::from_json(&bad) else {
                refused += 1;
                continue;
            };
            if parsed == bundle {
                // A change JSON does not see, such as the case of a hex digit in a uuid.
                continue;
            }
            assert!(
                parsed.verify(&key, agent(), command(), t(10)).is_err(),
                "byte {at} flipped with {flip:#x} was accepted"
            );
            refused += 1;
        }
    }
    assert!(refused > text.len());
}

#[test]
fn each_changed_field_is_refused() {
    let (key, bundle) = sealed();
    let mut cases: Vec<SignedBundle> = Vec::new();
    let mut push = |change: fn(&mut SignedBundle)| {
        let mut copy = bundle.clone();
        change(&mut copy);
        cases.push(copy);
    };
    push(|b| b.tier = Tier::Pro);
    push(|b| b.image.push('x'));
    push(|b| b.openclaw_config["gateway"]["port"] = 1.into());
    push(|b| b.workspace_files[0].content.push(' '));
    push(|b| b.workspace_files[0].path = "agents.md".to_owned());
    push(|b| b.workspace_files.clear());
    push(|b| b.secrets.ciphertext[0] ^= 1);
    push(|b| b.secrets.nonce[0] ^= 1);
    push(|b| b.issued_at -= Duration::nanoseconds(1));
    push(|b| b.expires_at += Duration::seconds(1));
    push(|b| b.signature.0[31] ^= 1);
    for (i, case) in cases.iter().enumerate() {
        let err = case.verify(&key, agent(), command(), t(10)).unwrap_err();
        assert!(
            matches!(err, BundleError::BadSignature { .. }),
            "case {i}: {err}"
        );
    }
}

#[test]
fn bundle_signed_with_another_session_key_is_refused() {
    let (_, bundle) = sealed();
    let err = bundle
        .verify(&SessionKey::generate(), agent(), command(), t(10))
        .unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }));
}

#[test]
fn bundle_for_another_agent_is_refused() {
    let (key, bundle) = sealed();
    let other = AgentId::new_random();
    let err = bundle.verify(&key, other, command(), t(10)).unwrap_err();
    assert_eq!(
        err,
        BundleError::WrongAgent {
            expected: other,
            found: agent()
        }
    );
}

#[test]
fn bundle_for_another_command_is_refused() {
    let (key, bundle) = sealed();
    let other = CommandId::new_random();
    let err = bundle.verify(&key, agent(), other, t(10)).unwrap_err();
    assert!(matches!(err, BundleError::WrongCommand { expected, .. } if expected == other));
}

#[test]
fn expired_bundle_is_refused() {
    let (key, bundle) = sealed();
    assert!(bundle.verify(&key, agent(), command(), t(299)).is_ok());
    for now in [t(300), t(10_000)] {
        let err = bundle.verify(&key, agent(), command(), now).unwrap_err();
        assert!(matches!(err, BundleError::Expired { .. }), "{err}");
    }
}

#[test]
fn bundle_from_the_future_is_refused_beyond_the_skew() {
    let (key, bundle) = sealed();
    assert!(bundle
        .verify(&key, agent(), command(), t(-MAX_CLOCK_SKEW_SECS))
        .is_ok());
    let err = bundle
        .verify(&key, agent(), command(), t(-MAX_CLOCK_SKEW_SECS - 1))
        .unwrap_err();
    assert!(matches!(err, BundleError::NotYetValid { .. }));
}

#[test]
fn empty_or_overlong_validity_windows_cannot_be_sealed() {
    let key = SessionKey::generate();
    for expires_at in [t(0), t(-1), t(MAX_LIFETIME_SECS + 1)] {
        let err = BundleDraft {
            expires_at,
            ..draft()
        }
        .seal(&key)
        .unwrap_err();
        assert!(matches!(err, BundleError::BadLifetime { .. }));
    }
}

#[test]
fn truncated_bundle_is_refused() {
    let (key, bundle) = sealed();
    let text = serde_json::to_vec(&bundle).unwrap();
    for cut in 0..text.len() {
        if let Ok(parsed) = SignedBundle::from_json(&text[..cut]) {
            assert!(parsed.verify(&key, agent(), command(), t(10)).is_err());
        }
    }
    let mut short = bundle.clone();
    short.signature.0.truncate(16);
    assert!(short.verify(&key, agent(), command(), t(10)).is_err());
    let mut short = bundle;
    short.secrets.ciphertext.truncate(10);
    assert!(short.verify(&key, agent(), command(), t(10)).is_err());
}

#[test]
fn oversized_bundle_is_refused_before_parsing_and_signing() {
    let err = SignedBundle::from_json(&vec![b' '; MAX_BUNDLE_BYTES + 1]).unwrap_err();
    assert!(matches!(err, BundleError::Oversized { .. }));

    let mut big = draft();
    big.workspace_files.push(BundleFile {
        path: "big".to_owned(),
        content: "x".repeat(MAX_BUNDLE_BYTES),
    });
    let err = big.seal(&SessionKey::generate()).unwrap_err();
    assert!(matches!(err, BundleError::Oversized { .. }));
}

#[test]
fn session_key_round_trips_through_base64_and_serde() {
    let key = SessionKey::generate();
    let again = SessionKey::from_base64(key.to_base64().expose()).unwrap();
    assert_eq!(key, again);
    assert_ne!(key, SessionKey::generate());
    let json = serde_json::to_string(&key).unwrap();
    let parsed: SessionKey = serde_json::from_str(&json).unwrap();
    assert_eq!(key, parsed);
    for bad in ["", "AAAA", "!!!!", &"A".repeat(44)] {
        assert_eq!(
            SessionKey::from_base64(bad).unwrap_err(),
            BundleError::BadSessionKey
        );
    }
}

#[test]
fn fake_key_and_secret_never_appear_in_output() {
    let key = SessionKey::from_bytes([0xAB; 32]);
    let key_text = key.to_base64().expose().to_owned();
    let bundle = draft().seal(&key).unwrap();
    let verified = bundle.verify(&key, agent(), command(), t(10)).unwrap();
    let mut shown = format!("{key:?} {bundle:?} {verified:?}");
    let errors = [
        bundle.verify(&key, agent(), command(), t(400)).unwrap_err(),
        bundle
            .verify(&SessionKey::generate(), agent(), command(), t(1))
            .unwrap_err(),
        SessionKey::from_base64(&key_text[1..]).unwrap_err(),
        serde_json::from_str::<SessionKey>(&format!("\"{}\"", &key_text[2..]))
            .map(|_| ())
            .map_err(|e| BundleError::Json(e.to_string()))
            .unwrap_err(),
    ];
    for err in errors {
        shown.push_str(&format!("{err} {err:?}"));
    }
    assert!(!shown.contains(FAKE_SECRET), "{shown}");
    assert!(!shown.contains(&key_text[4..20]), "{shown}");
    assert!(!shown.to_lowercase().contains("abababab"), "{shown}");
}

/// Guards the documented canonical encoding: a change to it breaks every daemon that
/// has not been updated, so it must be deliberate (and bump the domain string).
#[test]
fn canonical_encoding_is_stable() {
    let bundle = SignedBundle {
        agent_id: agent(),
        command_id: command(),
        tier: Tier::Lite,
        image: "img".to_owned(),
        openclaw_config: serde_json::json!({"b": [true, null, 1.5, -2], "a": "x"}),
        workspace_files: vec![BundleFile {
            path: "p".to_owned(),
            content: "c".to_owned(),
        }],
        secrets: SealedSecrets {
            nonce: vec![1; NONCE_LEN],
            ciphertext: vec![2; 16],
        },
        issued_at: t(0),
        expires_at: t(60),
        signature: BundleSignature(Vec::new()),
    };
    let mut encoded = Vec::new();
    bundle.encode(&mut encoded);
    assert_eq!(encoded.len() as u64, bundle.signed_len());
    let mut mac = SessionKey::from_bytes([3; 32]).mac();
    bundle.encode(&mut mac);
    let signature = hex::encode(mac.0.finalize().into_bytes());
    // The length of the domain string (18), the string, then the agent id.
    assert_eq!(
        hex::encode(&encoded[..34]),
        "00000000000000127370617265626f782f62756e646c652f76310f8fad5bd9cb469f"
    );
    assert_eq!(
        signature,
        "7a860931cb3857f6c927c00f45d9bcc98cedccb01f5f61cb7081de144c4b4d3c"
    );
}
