//! Route handlers for backups: deployers request, list, schedule and restore them; hosts
//! upload and download archives through the command that asked for them.

use axum::body::Body as RawBody;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sparebox_core::CommandId;

use super::auth::{Account, Host};
use super::routes::{agent_id, body, ApiResult, Body};
use super::{ApiError, AppState};
use crate::PlatformError;

type PathResult = Result<Path<String>, axum::extract::rejection::PathRejection>;

fn command_id(path: PathResult) -> ApiResult<CommandId> {
    let Path(raw) = path?;
    raw.parse()
        .map_err(|_| PlatformError::bad_request(format!("command id {raw:?} is not a UUID")).into())
}

pub async fn request_backup(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let command = state.platform.request_backup(&account, id).await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((StatusCode::ACCEPTED, Json(command)))
}

pub async fn list_backups(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    Ok(Json(state.platform.list_backups(&account, id).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Hours between backups; `null` turns the schedule off.
    backup_interval_hours: Option<u32>,
}

pub async fn set_schedule(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
    request: Body<ScheduleRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let list = state
        .platform
        .set_backup_schedule(&account, id, request.backup_interval_hours)
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    backup_id: String,
}

pub async fn request_restore(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
    request: Body<RestoreRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let command = state
        .platform
        .request_restore(&account, id, &request.backup_id)
        .await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((StatusCode::ACCEPTED, Json(command)))
}

/// Reads at most `max` bytes of `body`; a declared or actual length beyond it is a 413.
async fn read_capped(headers: &HeaderMap, body: RawBody, max: u64) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(crate::platform::too_large(max).into());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(err) => {
            let over = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if over {
                Err(crate::platform::too_large(max).into())
            } else {
                Err(PlatformError::bad_request(format!("reading the upload failed: {err}")).into())
            }
        }
    }
}

pub async fn upload_backup(
    State(state): State<AppState>,
    Host(host): Host,
    path: PathResult,
    headers: HeaderMap,
    upload: RawBody,
) -> ApiResult<impl IntoResponse> {
    let id = command_id(path)?;
    let max = state.platform.max_backup_upload();
    let sealed = read_capped(&headers, upload, max).await?;
    let backup = state.platform.receive_backup(&host, id, &sealed).await?;
    Ok((StatusCode::CREATED, Json(backup)))
}

pub async fn download_backup(
    State(state): State<AppState>,
    Host(host): Host,
    path: PathResult,
) -> Result<impl IntoResponse, ApiError> {
    let id = command_id(path)?;
    let sealed = state.platform.serve_backup(&host, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        sealed,
    ))
}
