//! The HTTP API under `/api/v1`, on axum.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /healthz` | anyone | liveness |
//! | `POST /api/v1/accounts` | anyone | create an account; its token is returned once |
//! | `POST /api/v1/hosts` | account | register a host; its key is returned once |
//! | `GET /api/v1/hosts` | account | browse hosts with free slots per tier |
//! | `POST /api/v1/hosts/heartbeat` | host key | report status and acks, receive commands |
//! | `GET /api/v1/agents/{id}/deploy-config?commandId=` | host key | the agent's deploy bundle |
//! | `POST /api/v1/agents` | account | create an agent on a host and queue its deploy |
//! | `GET /api/v1/agents` | account | the caller's agents |
//! | `GET /api/v1/agents/{id}` | owner | status, deploy stage, metrics |
//! | `POST /api/v1/agents/{id}/commands` | owner | queue start, stop, restart or undeploy |
//! | `GET /api/v1/agents/{id}/commands` | owner | command history |
//! | `GET /api/v1/agents/{id}/events` | owner | event history |
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.

mod auth;
mod error;
mod routes;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::Platform;

pub use error::ApiError;

/// The largest request body on most routes, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest request body when creating an agent (workspace files may be 50 MB).
pub const MAX_AGENT_BODY_BYTES: usize = 60 * 1024 * 1024;

/// The API router over `platform`.
pub fn router(platform: Platform) -> Router {
    let agent_create = Router::new()
        .route(
            "/api/v1/agents",
            post(routes::create_agent).get(routes::list_agents),
        )
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES));
    let heartbeat = Router::new()
        .route("/api/v1/hosts/heartbeat", post(routes::heartbeat))
        .layer(DefaultBodyLimit::max(
            sparebox_protocol::MAX_HEARTBEAT_BYTES,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/api/v1/accounts", post(routes::create_account))
        .route(
            "/api/v1/hosts",
            post(routes::register_host).get(routes::list_hosts),
        )
        .route("/api/v1/agents/{id}", get(routes::get_agent))
        .route(
            "/api/v1/agents/{id}/commands",
            post(routes::queue_command).get(routes::agent_commands),
        )
        .route("/api/v1/agents/{id}/events", get(routes::agent_events))
        .route(
            "/api/v1/agents/{id}/deploy-config",
            get(routes::deploy_config),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(agent_create)
        .merge(heartbeat)
        .fallback(routes::not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(platform)
}

/// Serves the API on `listener` until `shutdown` completes, expiring stale commands in
/// the background.
///
/// # Errors
///
/// Returns the server's I/O error.
pub async fn serve(
    listener: TcpListener,
    platform: Platform,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(expire_periodically(platform.clone()));
    let result = axum::serve(listener, router(platform))
        .with_graceful_shutdown(shutdown)
        .await;
    expiry.abort();
    result
}

async fn expire_periodically(platform: Platform) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(err) = platform.expire_commands(chrono::Utc::now()).await {
            tracing::error!(error = %err, "expiring commands failed");
        }
    }
}
