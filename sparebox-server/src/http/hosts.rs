//! Route handlers for host owners and for browsing hosts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use sparebox_core::HostId;

use super::auth::Account;
use super::routes::{body, ApiResult, Body, NameRequest};
use super::AppState;
use crate::{HostFilter, HostSettingsRequest, PlatformError};

fn host_id(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<HostId> {
    let Path(raw) = path?;
    raw.parse()
        .map_err(|_| PlatformError::bad_request(format!("host id {raw:?} is not a UUID")).into())
}

pub async fn register_host(
    State(state): State<AppState>,
    Account(account): Account,
    request: Body<NameRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (host, key) = state
        .platform
        .register_host(&account, &request.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "host": host, "hostKey": key })),
    ))
}

pub async fn browse_hosts(
    State(state): State<AppState>,
    Account(_): Account,
    query: Result<Query<HostFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(filter) = query?;
    Ok(Json(state.platform.browse_hosts(&filter).await?))
}

pub async fn my_hosts(
    State(state): State<AppState>,
    Account(account): Account,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.platform.my_hosts(&account).await?))
}

pub async fn rotate_key(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = host_id(path)?;
    let (host, key) = state.platform.rotate_host_key(&account, id).await?;
    Ok(Json(json!({ "host": host, "hostKey": key })))
}

pub async fn set_settings(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Body<HostSettingsRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = host_id(path)?;
    let request = body(request)?;
    Ok(Json(
        state
            .platform
            .set_host_settings(&account, id, request)
            .await?,
    ))
}
