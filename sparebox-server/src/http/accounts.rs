//! Route handlers for sign-up, sessions and personal API tokens.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::{Account, Caller, SESSION_COOKIE};
use super::routes::{body, ApiResult, Body, NameRequest};
use super::AppState;
use crate::{PlatformError, SignIn, SignUp};

pub async fn sign_up(
    State(state): State<AppState>,
    request: Body<SignUp>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (user, token, secret) = state.platform.sign_up(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": user, "token": token, "apiToken": secret })),
    ))
}

pub async fn sign_in(State(state): State<AppState>, request: Body<SignIn>) -> ApiResult<Response> {
    let request = body(request)?;
    state.check_sign_in(&request.email)?;
    let session = state.platform.sign_in(request).await?;
    let config = state.platform.config();
    let cookie = session_cookie(
        session.session_id.expose(),
        config.session_ttl.as_secs(),
        config.secure_cookies,
    );
    let mut response = Json(json!({
        "user": session.account,
        "csrfToken": session.csrf_token.expose(),
        "expiresAt": session.expires_at,
    }))
    .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let Some(session) = caller.session else {
        return Err(PlatformError::bad_request(
            "sign-out ends a cookie session; revoke an API token with DELETE /api/v1/tokens/{id}",
        )
        .into());
    };
    state.platform.sign_out(&session).await?;
    let secure = state.platform.config().secure_cookies;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0, secure));
    Ok(response)
}

pub async fn me(Account(account): Account) -> impl IntoResponse {
    Json(account)
}

pub async fn create_token(
    State(state): State<AppState>,
    Account(account): Account,
    request: Body<NameRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (token, secret) = state
        .platform
        .create_api_token(&account, &request.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "apiToken": secret })),
    ))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    Account(account): Account,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.platform.api_tokens(&account).await?))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(raw) = path?;
    let id = raw
        .parse()
        .map_err(|_| PlatformError::bad_request(format!("token id {raw:?} is not a UUID")))?;
    state.platform.revoke_api_token(&account, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `Set-Cookie` value for the session cookie; an empty value with `max_age` 0 clears it.
fn session_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&cookie).expect("session ids are hex, so the cookie is a valid header")
}
