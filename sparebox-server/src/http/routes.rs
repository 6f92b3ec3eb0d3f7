//! Route handlers: each parses, calls the platform, and shapes the answer.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sparebox_core::{AgentId, CommandId};
use sparebox_protocol::HeartbeatRequest;

use super::auth::{Account, Host};
use super::ApiError;
use crate::platform::AgentRequest;
use crate::{AgentView, Platform, PlatformError};

type ApiResult<T> = Result<T, ApiError>;

/// JSON body extraction with our error shape.
type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(body: Body<T>) -> ApiResult<T> {
    body.map(|Json(v)| v).map_err(ApiError::from)
}

fn agent_id(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    name: String,
}

pub async fn create_account(
    State(platform): State<Platform>,
    request: Body<NameRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (account, token) = platform.create_account(&request.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "account": account, "token": token })),
    ))
}

pub async fn register_host(
    State(platform): State<Platform>,
    Account(account): Account,
    request: Body<NameRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (host, key) = platform.register_host(&account, &request.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "host": host, "hostKey": key })),
    ))
}

pub async fn list_hosts(
    State(platform): State<Platform>,
    Account(_): Account,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(platform.list_hosts(chrono::Utc::now()).await?))
}

pub async fn heartbeat(
    State(platform): State<Platform>,
    Host(host): Host,
    request: Body<HeartbeatRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    Ok(Json(platform.heartbeat(&host, request).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployConfigQuery {
    command_id: CommandId,
}

pub async fn deploy_config(
    State(platform): State<Platform>,
    Host(host): Host,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<DeployConfigQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let agent = agent_id(path)?;
    let Query(query) = query?;
    let bundle = platform
        .deploy_bundle(&host, agent, query.command_id)
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(bundle)))
}

pub async fn create_agent(
    State(platform): State<Platform>,
    Account(account): Account,
    request: Body<AgentRequest>,
) -> ApiResult<impl IntoResponse> {
    let request = body(request)?;
    let (agent, command) = platform.create_agent(&account, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "agent": agent, "command": command })),
    ))
}

pub async fn list_agents(
    State(platform): State<Platform>,
    Account(account): Account,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(platform.list_agents(&account).await?))
}

pub async fn get_agent(
    State(platform): State<Platform>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let agent = platform.owned_agent(&account, id).await?;
    Ok(Json(AgentView::from(&agent)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    #[serde(rename = "type")]
    kind: String,
}

pub async fn queue_command(
    State(platform): State<Platform>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Body<CommandRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let request = body(request)?;
    let command = platform.queue_command(&account, id, &request.kind).await?;
    Ok((StatusCode::ACCEPTED, Json(command)))
}

pub async fn agent_commands(
    State(platform): State<Platform>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    Ok(Json(platform.agent_commands(&account, id).await?))
}

pub async fn agent_events(
    State(platform): State<Platform>,
    Account(account): Account,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    platform.owned_agent(&account, id).await?;
    let events = platform
        .store()
        .events_for_agent(id, 100)
        .await
        .map_err(PlatformError::from)?;
    Ok(Json(events))
}
