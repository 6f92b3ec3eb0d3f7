//! Stripe: Checkout Sessions through the REST API, and webhook signature checks.
//!
//! Only what Sparebox needs is here: creating a subscription-mode Checkout Session for one
//! agent, and verifying and reading the webhook events that follow. Secrets never reach
//! Stripe: a session carries the pending checkout's id, the price and a product name.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sparebox_core::Tier;
use subtle::ConstantTimeEq;

use crate::config::StripeConfig;
use crate::error::{ErrorCode, PlatformError};

/// How far a webhook's signed timestamp may be from the platform's clock, in seconds.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The largest webhook body accepted, in bytes.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// How long a call to Stripe may take.
const STRIPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A Checkout Session Stripe created: where to send the deployer to pay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    /// The pending checkout (the session's `client_reference_id`).
    pub checkout_id: uuid::Uuid,
    /// Stripe's session id (`cs_...`).
    pub session_id: String,
    /// The Stripe-hosted payment page.
    pub url: String,
}

/// What Stripe answers when it creates a session.
#[derive(Deserialize)]
struct SessionReply {
    id: String,
    url: Option<String>,
}

/// A Stripe API client over `reqwest` with rustls.
#[derive(Clone, Debug)]
pub(crate) struct StripeClient {
    http: reqwest::Client,
}

impl StripeClient {
    pub(crate) fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(STRIPE_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// Creates a subscription-mode Checkout Session for one agent of `tier` at
    /// `price_cents` a month.
    ///
    /// # Errors
    ///
    /// Bad gateway when Stripe cannot be reached or refuses.
    pub(crate) async fn create_session(
        &self,
        config: &StripeConfig,
        checkout_id: uuid::Uuid,
        tier: Tier,
        price_cents: u32,
    ) -> Result<(String, String), PlatformError> {
        let reference = checkout_id.to_string();
        let form = [
            ("mode", "subscription".to_owned()),
            ("client_reference_id", reference.clone()),
            ("success_url", config.success_url.clone()),
            ("cancel_url", config.cancel_url.clone()),
            ("line_items[0][quantity]", "1".to_owned()),
            (
                "line_items[0][price_data][currency]",
                config.currency.clone(),
            ),
            (
                "line_items[0][price_data][unit_amount]",
                price_cents.to_string(),
            ),
            (
                "line_items[0][price_data][recurring][interval]",
                "month".to_owned(),
            ),
            (
                "line_items[0][price_data][product_data][name]",
                format!("Sparebox {tier} agent"),
            ),
        ];
        let url = format!(
            "{}/v1/checkout/sessions",
            config.api_base.trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(config.secret_key.expose())
            .header("Idempotency-Key", &reference)
            .form(&form)
            .send()
            .await
            .map_err(|err| {
                // Without the URL: it is the operator's, but the error is shown to deployers.
                let err = err.without_url();
                tracing::error!(error = %err, "stripe request failed");
                bad_gateway(format!("could not reach stripe: {err}"))
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| {
            bad_gateway(format!(
                "reading stripe's answer failed: {}",
                err.without_url()
            ))
        })?;
        if !status.is_success() {
            let reason = stripe_error_message(&body);
            tracing::error!(status = %status, reason = %reason, "stripe refused a checkout session");
            return Err(bad_gateway(format!(
                "stripe refused the checkout session ({status}): {reason}"
            )));
        }
        let reply: SessionReply = serde_json::from_slice(&body).map_err(|err| {
            bad_gateway(format!("stripe answered with an unexpected body: {err}"))
        })?;
        let url = reply
            .url
            .ok_or_else(|| bad_gateway("stripe answered without a checkout url".to_owned()))?;
        Ok((reply.id, url))
    }
}

fn bad_gateway(message: String) -> PlatformError {
    PlatformError::new(ErrorCode::BadGateway, message)
}

/// Stripe's `error.message`, shortened, or a note that there was none.
fn stripe_error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no error message".to_owned());
    message.chars().take(300).collect()
}

/// Checks a `Stripe-Signature` header (`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`) against
/// `payload`: some `v1` must be the HMAC-SHA256 of `"<t>.<payload>"` under `secret`
/// (compared in constant time), and `t` must be within [`WEBHOOK_TOLERANCE_SECS`] of `now`.
///
/// # Errors
///
/// Bad request naming what is wrong.
pub(crate) fn verify_signature(
    header: Option<&str>,
    payload: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), PlatformError> {
    let header =
        header.ok_or_else(|| PlatformError::bad_request("missing Stripe-Signature header"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) if timestamp.is_none() => timestamp = Some(value),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| {
        PlatformError::bad_request("malformed Stripe-Signature header: no t= timestamp")
    })?;
    let seconds: i64 = timestamp.parse().map_err(|_| {
        PlatformError::bad_request("malformed Stripe-Signature header: t= is not a number")
    })?;
    if signatures.is_empty() {
        return Err(PlatformError::bad_request(
            "malformed Stripe-Signature header: no v1= signature",
        ));
    }
    let age = now.timestamp().saturating_sub(seconds);
    if age.unsigned_abs() > WEBHOOK_TOLERANCE_SECS.unsigned_abs() {
        return Err(PlatformError::bad_request(format!(
            "stripe signature timestamp is {age} s from the server's clock, beyond the {WEBHOOK_TOLERANCE_SECS} s tolerance"
        )));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|_| PlatformError::new(ErrorCode::Internal, "webhook secret unusable"))?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    let expected = mac.finalize().into_bytes();
    let mut matched = subtle::Choice::from(0);
    for candidate in signatures {
        if let Ok(bytes) = hex::decode(candidate) {
            if bytes.len() == expected.len() {
                matched |= bytes.as_slice().ct_eq(expected.as_slice());
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(PlatformError::bad_request(
            "no v1 signature in the Stripe-Signature header matches the payload",
        ))
    }
}

/// The parts of a Stripe event Sparebox reads.
#[derive(Debug, Deserialize)]
pub(crate) struct StripeEvent {
    /// `evt_...`.
    pub id: String,
    /// The event type, such as `checkout.session.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's object.
    pub data: EventData,
}

/// An event's `data`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventData {
    /// The object the event is about (a session, a subscription, an invoice).
    pub object: serde_json::Value,
}

/// Reads an id field that Stripe sends as a string, or as an object with an `id` when
/// expanded.
pub(crate) fn id_field(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Object(object) => object.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}
