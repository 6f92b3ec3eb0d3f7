//! The HTTP API under `/api/v1`, on axum.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /healthz` | anyone | liveness |
//! | `POST /api/v1/users` | anyone | sign up (`email`, `password`, `roles`, optional `name`); returns the user and a first API token, shown once |
//! | `POST /api/v1/sessions` | anyone | sign in (`email`, `password`); sets the session cookie, returns the user and the CSRF token |
//! | `DELETE /api/v1/sessions/current` | session | sign out: the session is deleted and the cookie cleared |
//! | `GET /api/v1/users/me` | account | the caller |
//! | `POST /api/v1/tokens` | account | create a personal API token (`name`); its value is returned once |
//! | `GET /api/v1/tokens` | account | the caller's tokens (names and prefixes) |
//! | `DELETE /api/v1/tokens/{id}` | account | revoke one of the caller's tokens |
//! | `POST /api/v1/hosts` | `host_owner` | register a host; its key is returned once |
//! | `GET /api/v1/hosts?isolation=&tier=&verified=&sort=price` | account | browse hosts: isolation, verification, online, free slots, prices, region |
//! | `GET /api/v1/hosts/mine` | `host_owner` | the caller's hosts with the agents on them (name, tier, state) |
//! | `POST /api/v1/hosts/{id}/key` | host's owner | rotate the host key: the new key is returned once, the old one stops working |
//! | `PUT /api/v1/hosts/{id}/settings` | host's owner | offered tiers, prices (cents per month), agent cap, region |
//! | `POST /api/v1/hosts/{id}/drain` | host's owner | take no new agents (cap 0) and move every agent on the host to another host with room |
//! | `POST /api/v1/hosts/heartbeat` | host key | report status and acks, receive commands |
//! | `GET /api/v1/agents/{id}/deploy-config?commandId=` | host key | the agent's deploy bundle |
//! | `POST /api/v1/agents` | `deployer` | create an agent on a host and queue its deploy; in Stripe mode 402 (admins excepted) |
//! | `POST /api/v1/checkout` | `deployer` | Stripe mode: validate an agent request (same body), store it as a pending checkout and return a Stripe Checkout Session URL |
//! | `POST /api/v1/billing/stripe/webhook` | Stripe's signature | Stripe events: a paid checkout creates the agent, a cancellation undeploys it, a failed payment marks it past due |
//! | `GET /api/v1/subscriptions` | account | the caller's subscriptions |
//! | `GET /api/v1/agents` | account | the caller's agents; `?all=true`: every agent (`admin`) |
//! | `GET /api/v1/agents/{id}` | owner, admin | status, deploy stage, metrics |
//! | `POST /api/v1/agents/{id}/commands` | owner | queue start, stop, restart or undeploy |
//! | `GET /api/v1/agents/{id}/commands` | owner, admin | command history |
//! | `GET /api/v1/agents/{id}/events` | owner, admin | event history |
//! | `PUT /api/v1/agents/{id}/config` | owner | replace config, workspace files, secrets; queues update_config |
//! | `POST /api/v1/agents/{id}/retry` | owner | queue a new deploy after a failed one |
//! | `POST /api/v1/agents/{id}/backups` | owner | queue a backup of a running or stopped agent |
//! | `GET /api/v1/agents/{id}/backups` | owner, admin | the agent's backups, newest first, and its schedule |
//! | `PUT /api/v1/agents/{id}/backup-schedule` | owner | `backupIntervalHours` (1 to 8784, or `null` for none) |
//! | `POST /api/v1/agents/{id}/restore` | owner | queue a restore of `backupId` (a backup of any agent the caller owns) |
//! | `POST /api/v1/agents/{id}/move` | owner | move the agent to another host once its host has been offline for the move grace period |
//! | `PUT /api/v1/hosts/commands/{id}/backup` | host key | upload the sealed archive of a backup command sent to this host; 413 over the cap |
//! | `GET /api/v1/hosts/commands/{id}/backup` | host key | download the backup a restore command sent to this host names, sealed under its session key |
//! | `POST /api/v1/agents/{id}/logs` | owner | queue a `logs` command (`tailLines` ≤ 5000, default 500; `sinceSeconds`; `maxBytes` ≤ 1 MiB, default 256 KiB) |
//! | `GET /api/v1/agents/{id}/logs/{commandId}` | owner, admin | the command's status and, once uploaded and for an hour, the redacted text |
//! | `POST /api/v1/hosts/commands/{id}/logs?truncated=` | host key | upload the redacted logs (UTF-8 body) of a `logs` command sent to this host; 413 over its cap |
//! | `POST /api/v1/admin/rollouts` | `admin` | upgrade `percent` of running agents (picked by id hash) to the pinned `image` |
//! | `GET /metrics` | anyone on the network | Prometheus metrics |
//! | `GET /api/v1/openapi.json` | anyone | the OpenAPI 3 description of this API ([`OPENAPI`]) |
//!
//! "Account" means an API token (`Authorization: Bearer sbx_pat_...`) or the
//! `sparebox_session` cookie; with the cookie, `POST`, `PUT` and `DELETE` also need the
//! session's CSRF token in `X-CSRF-Token` (see [`auth`]). Sessions last 14 days from
//! sign-in ([`crate::PlatformConfig::session_ttl`]), fixed, not sliding. Someone else's host
//! or agent answers 404, as if it did not exist; a missing role answers 403 naming the
//! role. The `admin` role is never chosen at sign-up: the operator grants it with the
//! reference binary's `--admin-email`, and it may read every agent (never command one).
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.
//!
//! The same router serves the browser dashboard's HTML pages (`/`, `/signin`, `/signup`,
//! `/hosts`, `/deploy`, `/agents/{id}/...`, `/my/hosts/...`) from the `web` module. They are
//! not part of the JSON API, so `openapi.json` leaves them out; forms post a CSRF token in a
//! hidden field instead of the header.

mod accounts;
pub mod auth;
mod backups;
mod billing;
mod error;
mod hosts;
pub mod metrics;
mod moves;
mod operations;
mod routes;
mod state;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use tokio::net::TcpListener;

use crate::Platform;

pub(crate) use error::status as status_of;
pub use error::ApiError;
pub use state::{AppState, DEPLOY_CONFIG_PER_MINUTE, HEARTBEATS_PER_MINUTE, SIGN_INS_PER_MINUTE};

/// The largest request body on most routes, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest request body when creating an agent (workspace files may be 50 MB).
pub const MAX_AGENT_BODY_BYTES: usize = 60 * 1024 * 1024;

/// The OpenAPI 3 document describing every route, kept in the repository as
/// `sparebox-server/openapi.json` and served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

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
        .route("/api/v1/checkout", post(billing::start_checkout))
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES));
    let webhook = Router::new()
        .route(
            "/api/v1/billing/stripe/webhook",
            post(billing::stripe_webhook),
        )
        .layer(DefaultBodyLimit::max(crate::MAX_WEBHOOK_BYTES));
    // Read through a capped stream in the handler: the backup limit is the platform's.
    let backup_upload = Router::new()
        .route(
            "/api/v1/hosts/commands/{id}/backup",
            put(backups::upload_backup).get(backups::download_backup),
        )
        .layer(DefaultBodyLimit::disable());
    let logs_upload = Router::new()
        .route(
            "/api/v1/hosts/commands/{id}/logs",
            post(operations::upload_logs),
        )
        .layer(DefaultBodyLimit::max(
            sparebox_protocol::MAX_LOG_BYTES as usize,
        ));
    let heartbeat = Router::new()
        .route("/api/v1/hosts/heartbeat", post(routes::heartbeat))
        .layer(DefaultBodyLimit::max(
            sparebox_protocol::MAX_HEARTBEAT_BYTES,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics::serve_metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/users", post(accounts::sign_up))
        .route("/api/v1/users/me", get(accounts::me))
        .route("/api/v1/sessions", post(accounts::sign_in))
        .route("/api/v1/sessions/current", delete(accounts::sign_out))
        .route(
            "/api/v1/tokens",
            post(accounts::create_token).get(accounts::list_tokens),
        )
        .route("/api/v1/tokens/{id}", delete(accounts::revoke_token))
        .route(
            "/api/v1/hosts",
            post(hosts::register_host).get(hosts::browse_hosts),
        )
        .route("/api/v1/hosts/mine", get(hosts::my_hosts))
        .route(
            "/api/v1/hosts/commands/{id}",
            get(routes::redeliver_command),
        )
        .route("/api/v1/hosts/{id}/key", post(hosts::rotate_key))
        .route("/api/v1/hosts/{id}/settings", put(hosts::set_settings))
        .route("/api/v1/hosts/{id}/drain", post(moves::drain_host))
        .route("/api/v1/subscriptions", get(billing::list_subscriptions))
        .route("/api/v1/agents/{id}", get(routes::get_agent))
        .route(
            "/api/v1/agents/{id}/commands",
            post(routes::queue_command).get(routes::agent_commands),
        )
        .route("/api/v1/agents/{id}/events", get(routes::agent_events))
        .route("/api/v1/agents/{id}/retry", post(routes::retry_deploy))
        .route("/api/v1/agents/{id}/logs", post(operations::request_logs))
        .route(
            "/api/v1/agents/{id}/logs/{command_id}",
            get(operations::read_logs),
        )
        .route("/api/v1/admin/rollouts", post(operations::rollout))
        .route(
            "/api/v1/agents/{id}/backups",
            post(backups::request_backup).get(backups::list_backups),
        )
        .route(
            "/api/v1/agents/{id}/backup-schedule",
            put(backups::set_schedule),
        )
        .route(
            "/api/v1/agents/{id}/restore",
            post(backups::request_restore),
        )
        .route("/api/v1/agents/{id}/move", post(moves::move_agent))
        .route(
            "/api/v1/agents/{id}/deploy-config",
            get(routes::deploy_config),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(agent_create)
        .merge(heartbeat)
        .merge(logs_upload)
        .merge(backup_upload)
        .merge(webhook)
        .merge(crate::web::router())
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
