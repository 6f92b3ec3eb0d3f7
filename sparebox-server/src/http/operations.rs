//! Route handlers for agent operations: logs (deployers ask and read, hosts upload) and
//! image rollouts (admins).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sparebox_core::{AgentId, CommandId};
use sparebox_protocol::MAX_LOG_BYTES;

use super::auth::{Account, Host};
use super::routes::{agent_id, body, ApiResult, Body};
use super::AppState;
use crate::platform::{LogsRequest, RolloutRequest};
use crate::{ErrorCode, PlatformError};

fn parse_command(raw: &str) -> ApiResult<CommandId> {
    raw.parse()
        .map_err(|_| PlatformError::bad_request(format!("command id {raw:?} is not a UUID")).into())
}

pub async fn request_logs(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, PathRejection>,
    request: Body<LogsRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let command = state.platform.request_logs(&account, id, request).await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((StatusCode::ACCEPTED, Json(command)))
}

pub async fn read_logs(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path((agent, command)) = path?;
    let agent: AgentId = agent
        .parse()
        .map_err(|_| PlatformError::bad_request(format!("agent id {agent:?} is not a UUID")))?;
    let command = parse_command(&command)?;
    let view = state.platform.agent_logs(&account, agent, command).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Whether the daemon cut older lines to stay within the cap.
    #[serde(default)]
    truncated: bool,
}

pub async fn upload_logs(
    State(state): State<AppState>,
    Host(host): Host,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    text: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(raw) = path?;
    let command = parse_command(&raw)?;
    let Query(query) = query?;
    let text = text.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PlatformError::new(
                ErrorCode::PayloadTooLarge,
                format!("logs upload is larger than {MAX_LOG_BYTES} bytes"),
            )
        } else {
            PlatformError::bad_request(format!("logs upload: {}", rejection.body_text()))
        }
    })?;
    state
        .platform
        .receive_logs(&host, command, &text, query.truncated)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rollout(
    State(state): State<AppState>,
    Account(account): Account,
    request: Body<RolloutRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let report = state.platform.rollout(&account, request).await?;
    for command in &report.queued {
        state.metrics.command(command.kind.as_str(), "queued");
    }
    Ok((StatusCode::ACCEPTED, Json(report)))
}
