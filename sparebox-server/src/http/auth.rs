//! Who is calling: a personal API token or a session cookie for accounts, a host key for
//! hosts.
//!
//! Accounts authenticate with `Authorization: Bearer <API token>` or with the
//! `sparebox_session` cookie set at sign-in. Cookie-authenticated requests that change
//! state (any method but `GET`, `HEAD` and `OPTIONS`) must also send the session's CSRF
//! token, returned at sign-in, in `X-CSRF-Token`: a cross-site page can make a browser send
//! the cookie but cannot read the token. Bearer requests are exempt, since browsers never
//! attach that header on their own.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use sparebox_store::{AccountRecord, HostRecord};

use super::{ApiError, AppState};
use crate::{ErrorCode, PlatformError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sparebox_session";

/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The longest credential accepted in a header or cookie, in bytes.
const MAX_CREDENTIAL_BYTES: usize = 256;

/// The authenticated account, and the hash of its session id when it came with the
/// session cookie.
#[derive(Debug)]
pub struct Caller {
    /// The account.
    pub account: AccountRecord,
    /// SHA-256 of the session id, for cookie-authenticated requests.
    pub session: Option<Vec<u8>>,
}

/// The authenticated account (by API token or session cookie).
#[derive(Debug)]
pub struct Account(pub AccountRecord);

/// The host behind an `Authorization: Bearer <host key>` header.
#[derive(Debug)]
pub struct Host(pub HostRecord);

/// The bearer token, if an `Authorization` header is present.
fn bearer(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_CREDENTIAL_BYTES)
            .ok_or_else(|| PlatformError::unauthorized("malformed Authorization header").into()),
    )
}

/// The session id from the `Cookie` headers, if present.
fn session_cookie(parts: &Parts) -> Option<&str> {
    cookie(parts, SESSION_COOKIE)
}

/// The value of the cookie `name` from the `Cookie` headers, if present, non-empty and no
/// longer than a credential may be.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CREDENTIAL_BYTES)
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts) {
            let account = state.platform.authenticate_account(token?).await?;
            return Ok(Self {
                account,
                session: None,
            });
        }
        let Some(session_id) = session_cookie(parts) else {
            return Err(PlatformError::unauthorized(
                "missing credentials: send Authorization: Bearer <API token> or sign in",
            )
            .into());
        };
        let session = state.platform.authenticate_session(session_id).await?;
        if changes_state(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !crate::tokens::matches_hash(presented, &session.csrf_hash) {
                return Err(PlatformError::new(
                    ErrorCode::Forbidden,
                    "missing or wrong X-CSRF-Token header: cookie-authenticated requests that \
                     change state must echo the CSRF token returned at sign-in",
                )
                .into());
            }
        }
        Ok(Self {
            account: session.account,
            session: Some(crate::tokens::hash(session_id)),
        })
    }
}

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Self(caller.account))
    }
}

impl FromRequestParts<AppState> for Host {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).unwrap_or_else(|| {
            Err(PlatformError::unauthorized("missing Authorization: Bearer header").into())
        })?;
        Ok(Self(state.platform.authenticate_host(key).await?))
    }
}
