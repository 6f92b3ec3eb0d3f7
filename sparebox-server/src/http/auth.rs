//! Bearer-token extractors for accounts and hosts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sparebox_store::{AccountRecord, HostRecord};

use super::{ApiError, AppState};
use crate::PlatformError;

/// The account behind an `Authorization: Bearer <account token>` header.
#[derive(Debug)]
pub struct Account(pub AccountRecord);

/// The host behind an `Authorization: Bearer <host key>` header.
#[derive(Debug)]
pub struct Host(pub HostRecord);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| PlatformError::unauthorized("missing Authorization: Bearer header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| PlatformError::unauthorized("malformed Authorization header").into())
}

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        Ok(Self(state.platform.authenticate_account(token).await?))
    }
}

impl FromRequestParts<AppState> for Host {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts)?;
        Ok(Self(state.platform.authenticate_host(key).await?))
    }
}
