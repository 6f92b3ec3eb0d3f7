//! Billing routes: Stripe checkouts, the Stripe webhook, subscriptions.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::auth::Account;
use super::routes::{body, ApiResult, Body};
use super::AppState;
use crate::platform::AgentRequest;
use crate::PlatformError;

pub async fn start_checkout(
    State(state): State<AppState>,
    Account(account): Account,
    request: Body<AgentRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let session = state.platform.start_checkout(&account, request).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    payload: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let payload = payload.map_err(|_| {
        PlatformError::bad_request(format!(
            "webhook body too large (more than {} bytes) or unreadable",
            crate::MAX_WEBHOOK_BYTES
        ))
    })?;
    let signature = headers
        .get("stripe-signature")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| PlatformError::bad_request("Stripe-Signature header is not ASCII"))
        })
        .transpose()?;
    let result = state.platform.stripe_webhook(signature, &payload).await?;
    Ok(Json(
        serde_json::json!({ "received": true, "result": result.as_str() }),
    ))
}

pub async fn list_subscriptions(
    State(state): State<AppState>,
    Account(account): Account,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.platform.subscriptions(&account).await?))
}
