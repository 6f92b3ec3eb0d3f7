//! The browser dashboard: server-rendered HTML pages over the same [`crate::Platform`]
//! calls as the JSON API, with a little inline JavaScript for the live agent page.
//!
//! | path | who | what |
//! |---|---|---|
//! | `/signup`, `/signin`, `POST /signout` | anyone / session | accounts |
//! | `/` | session | the caller's agents and hosts |
//! | `/hosts?isolation=&tier=` | session | browse hosts |
//! | `/deploy?host=&tier=` | `deployer` | the deploy wizard: host, tier, quick setup, checkout |
//! | `/agents/{id}` (`/live` fragment) | owner, admin | state, metrics, chart, commands, events |
//! | `/agents/{id}/config?tab=quick\|files\|advanced` | owner | configuration tabs |
//! | `/my/hosts`, `/my/hosts/{id}` | `host_owner` | register hosts, settings, agents there |
//!
//! Pages authenticate with the API's session cookie. Every form posts a CSRF token in a
//! hidden `csrf` field: signed in, it must match the session's CSRF token (kept for the
//! pages in an HttpOnly cookie set at sign-in); before sign-in, it must match a random
//! token in that cookie. Someone else's agent or host answers 404, as in the API.

mod agent;
mod auth;
mod config;
mod deploy;
mod hosts;
mod layout;
mod session;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

pub(crate) use session::{Posted, Viewer};

/// The largest form body, in bytes (a workspace file edited in the browser may be 10 MB;
/// the whole form may carry a little more).
const MAX_FORM_BYTES: usize = 11 * 1024 * 1024;

/// The dashboard's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(agent::home))
        .route("/signup", get(auth::sign_up_page).post(auth::sign_up))
        .route("/signin", get(auth::sign_in_page).post(auth::sign_in))
        .route("/signout", post(auth::sign_out))
        .route("/hosts", get(hosts::browse))
        .route("/deploy", get(deploy::wizard).post(deploy::submit))
        .route("/agents/{id}", get(agent::show))
        .route("/agents/{id}/live", get(agent::live))
        .route("/agents/{id}/commands", post(agent::command))
        .route("/agents/{id}/retry", post(agent::retry))
        .route("/agents/{id}/config", get(config::page_for))
        .route("/agents/{id}/config/quick", post(config::save_quick))
        .route("/agents/{id}/config/advanced", post(config::save_advanced))
        .route("/agents/{id}/files", post(config::save_file))
        .route("/agents/{id}/files/delete", post(config::delete_file))
        .route("/agents/{id}/files/upload", post(config::upload))
        .route("/my/hosts", get(hosts::mine).post(hosts::register))
        .route("/my/hosts/{id}", get(hosts::settings_page))
        .route("/my/hosts/{id}/settings", post(hosts::save_settings))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}
