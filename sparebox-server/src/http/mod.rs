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
//! | `PUT /api/v1/agents/{id}/config` | owner | replace config, workspace files, secrets; queues update_config |
//! | `POST /api/v1/agents/{id}/retry` | owner | queue a new deploy after a failed one |
//! | `GET /metrics` | anyone on the network | Prometheus metrics |
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.

mod auth;
mod error;
pub mod metrics;
mod routes;
mod state;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::Platform;

pub use error::ApiError;
pub use state::{AppState, DEPLOY_CONFIG_PER_MINUTE, HEARTBEATS_PER_MINUTE};

/// The largest request body on most routes, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest request body when creating an agent (workspace files may be 50 MB).
pub const MAX_AGENT_BODY_BYTES: usize = 60 * 1024 * 1024;

/// The API router over `platform`.
pub fn router(platform: Platform) -> Router {
    router_with_state(AppState::new(platform))
}

/// The API router over prepared state.
pub fn router_with_state(state: AppState) -> Router {
    let agent_create = Router::new()
        .route(
            "/api/v1/agents",
            post(routes::create_agent).get(routes::list_agents),
        )
        .route(
            "/api/v1/agents/{id}/config",
            axum::routing::put(routes::update_config),
        )
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES));
    let heartbeat = Router::new()
        .route("/api/v1/hosts/heartbeat", post(routes::heartbeat))
        .layer(DefaultBodyLimit::max(
            sparebox_protocol::MAX_HEARTBEAT_BYTES,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics::serve_metrics))
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
        .route("/api/v1/agents/{id}/retry", post(routes::retry_deploy))
        .route(
            "/api/v1/agents/{id}/deploy-config",
            get(routes::deploy_config),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(agent_create)
        .merge(heartbeat)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_latency,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
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
    let state = AppState::new(platform.clone());
    let sweeper = tokio::spawn(sweep_periodically(state.clone()));
    // Held heartbeats are answered first, so graceful shutdown does not wait them out.
    let shutdown = async move {
        shutdown.await;
        platform.begin_shutdown();
    };
    let result = axum::serve(listener, router_with_state(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    result
}

/// Expires stale commands, marks silent hosts offline and prunes rate-limit entries.
async fn sweep_periodically(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        match state.platform.sweep().await {
            Ok(summary) => {
                for kind in &summary.expired {
                    state.metrics.command(kind.as_str(), "expired");
                }
                state.metrics.hosts_online.set(summary.hosts_online as i64);
            }
            Err(err) => tracing::error!(error = %err, "periodic sweep failed"),
        }
        state.prune_limiters();
    }
}
