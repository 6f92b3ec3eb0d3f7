//! Route handlers for moving agents off hosts that are going away.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use sparebox_core::HostId;

use super::auth::Account;
use super::routes::{agent_id, ApiResult};
use super::AppState;
use crate::PlatformError;

type PathResult = Result<Path<String>, axum::extract::rejection::PathRejection>;

pub async fn drain_host(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
) -> ApiResult<impl IntoResponse> {
    let Path(raw) = path?;
    let id: HostId = raw
        .parse()
        .map_err(|_| PlatformError::bad_request(format!("host id {raw:?} is not a UUID")))?;
    let moves = state.platform.drain_host(&account, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "moves": moves })),
    ))
}

pub async fn move_agent(
    State(state): State<AppState>,
    Account(account): Account,
    path: PathResult,
) -> ApiResult<impl IntoResponse> {
    let id = agent_id(path)?;
    let record = state.platform.request_move(&account, id).await?;
    Ok((StatusCode::ACCEPTED, Json(record)))
}
