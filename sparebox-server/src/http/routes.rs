//! Route handlers: each parses, calls the platform, and shapes the answer.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sparebox_core::{AgentId, CommandId};
use sparebox_protocol::HeartbeatRequest;

use super::auth::{Account, Host};
use super::{ApiError, AppState};
use crate::error::ErrorCode;
use crate::platform::{AgentRequest, ConfigUpdate};
use crate::{AgentView, PlatformError};

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// JSON body extraction with our error shape.
pub(super) type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub(super) fn body<T>(body: Body<T>) -> ApiResult<T> {
    body.map(|Json(v)| v).map_err(ApiError::from)
}

pub(super) fn agent_id(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<AgentId> {
    let Path(raw) = path?;
    raw.parse()
        .map_err(|_| PlatformError::bad_request(format!("agent id {raw:?} is not a UUID")).into())
}

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "ok": true }))
}

pub async fn not_found() -> ApiError {
    PlatformError::not_found("route").into()
}

/// A body with only a name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    pub name: String,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Host(host): Host,
    request: Body<HeartbeatRequest>,
) -> ApiResult<impl IntoResponse> {
    state.check_heartbeat(host.id)?;
    let request = body(request)?;
    state.metrics.heartbeats.inc();
    let outcome = state
        .platform
        .heartbeat(&host, request)
        .await
        .inspect_err(|err| {
            if err.code == ErrorCode::Unavailable {
                state.metrics.heartbeats_refused_busy.inc();
            }
        })?;
    for (kind, status) in &outcome.acks {
        state.metrics.command(kind.as_str(), status.as_str());
    }
    Ok(Json(outcome.response))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployConfigQuery {
    command_id: CommandId,
}

pub async fn deploy_config(
    State(state): State<AppState>,
    Host(host): Host,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<DeployConfigQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let agent = agent_id(path)?;
    let Query(query) = query?;
    state.check_deploy_config(host.id)?;
    let bundle = state
        .platform
        .deploy_bundle(&host, agent, query.command_id)
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(bundle)))
}

/// A delivered, unanswered command again (with its session key), for a daemon that
/// restarted in the middle of it. Counted against the same per-host limit as deploy
/// bundles, since it hands out a key to one.
pub async fn redeliver_command(
    State(state): State<AppState>,
    Host(host): Host,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(raw) = path?;
    let command: CommandId = raw.parse().map_err(|_| {
        ApiError::from(PlatformError::bad_request(format!(
            "command id {raw:?} is not a UUID"
        )))
    })?;
    state.check_deploy_config(host.id)?;
    let command = state.platform.redeliver_command(&host, command).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(command)))
}

pub async fn create_agent(
    State(state): State<AppState>,
    Account(account): Account,
    request: Body<AgentRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (agent, command) = state.platform.create_agent(&account, request).await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "agent": agent, "command": command })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAgentsQuery {
    /// With `true`, every agent on the platform (admins only).
    #[serde(default)]
    all: bool,
}

pub async fn list_agents(
    State(state): State<AppState>,
    Account(account): Account,
    query: Result<Query<ListAgentsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(query) = query?;
    if query.all {
        return Ok(Json(state.platform.all_agents(&account).await?));
    }
    Ok(Json(state.platform.list_agents(&account).await?))
}

pub async fn get_agent(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let agent = state.platform.readable_agent(&account, id).await?;
    Ok(Json(AgentView::from(&agent)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    #[serde(rename = "type")]
    kind: String,
}

pub async fn queue_command(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Body<CommandRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let command = state
        .platform
        .queue_command(&account, id, &request.kind)
        .await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((StatusCode::ACCEPTED, Json(command)))
}

pub async fn agent_commands(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    state.platform.readable_agent(&account, id).await?;
    let commands = state
        .platform
        .store()
        .commands_for_agent(id, 100)
        .await
        .map_err(PlatformError::from)?;
    Ok(Json(commands))
}

pub async fn agent_events(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    state.platform.readable_agent(&account, id).await?;
    let events = state
        .platform
        .store()
        .events_for_agent(id, 100)
        .await
        .map_err(PlatformError::from)?;
    Ok(Json(events))
}

pub async fn update_config(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Body<ConfigUpdate>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let command = state.platform.update_config(&account, id, request).await?;
    if let Some(command) = &command {
        state.metrics.command(command.kind.as_str(), "queued");
    }
    let agent = state.platform.owned_agent(&account, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "agent": AgentView::from(&agent), "command": command })),
    ))
}

pub async fn retry_deploy(
    State(state): State<AppState>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let command = state.platform.retry_deploy(&account, id).await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok((StatusCode::ACCEPTED, Json(command)))
}
