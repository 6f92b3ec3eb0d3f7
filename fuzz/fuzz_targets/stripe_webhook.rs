//! Stripe webhook calls as the platform handles them, signature check and event decoding
//! included. The first input byte picks the mode and the length of the
//! `Stripe-Signature` header that follows; the rest is the payload. Odd modes sign the
//! payload correctly with the webhook secret at the current time, so the event decoder is
//! reached; even modes send the fuzzed header, which must never be accepted.
#![no_main]

#[path = "common/platform.rs"]
mod platform;

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use sparebox_core::Secret;
use sparebox_server::{ErrorCode, PlatformConfig, StripeConfig, MAX_WEBHOOK_BYTES};

const WEBHOOK_SECRET: &str = "whsec_fuzz";

fn signed(payload: &[u8]) -> String {
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<platform::Harness> = OnceLock::new();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > MAX_WEBHOOK_BYTES {
        return;
    }
    let h = HARNESS.get_or_init(|| {
        let stripe = StripeConfig::new(
            Secret::new("sk_test_fuzz"),
            Secret::new(WEBHOOK_SECRET),
            "https://example.com/ok",
            "https://example.com/cancel",
        );
        platform::harness(PlatformConfig {
            stripe: Some(stripe),
            ..PlatformConfig::default()
        })
    });
    let header_len = usize::from(mode >> 1).min(rest.len());
    let (header, payload) = rest.split_at(header_len);
    let genuine = mode & 1 == 1;
    let header = if genuine {
        signed(payload)
    } else {
        String::from_utf8_lossy(header).into_owned()
    };
    let result = h
        .runtime
        .block_on(h.platform.stripe_webhook(Some(&header), payload));
    match result {
        Ok(_) => assert!(genuine, "a forged signature was accepted: {header}"),
        Err(err) => assert_ne!(err.code, ErrorCode::Internal, "{err}"),
    }
});
