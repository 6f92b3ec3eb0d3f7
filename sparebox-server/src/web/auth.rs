//! Sign up, sign in, sign out.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sparebox_core::Secret;

use super::layout::{csrf_field, error_box, page, PageResult};
use super::session::{set_cookie, Anonymous, AnonymousPost, CSRF_COOKIE};
use super::Posted;
use crate::http::auth::SESSION_COOKIE;
use crate::http::AppState;
use crate::{SignIn, SignUp};

/// How long the CSRF cookie of a signed-out visitor lives, in seconds.
const ANONYMOUS_CSRF_SECONDS: u64 = 3600;

/// The sign-up form.
#[derive(Deserialize)]
pub(crate) struct SignUpForm {
    #[serde(default)]
    name: String,
    email: String,
    password: Secret,
    #[serde(default)]
    deployer: Option<String>,
    #[serde(default)]
    host_owner: Option<String>,
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    email: String,
    password: Secret,
}

/// An anonymous page, setting the CSRF cookie when it was missing.
fn anonymous_page(
    state: &AppState,
    anon: &Anonymous,
    status: StatusCode,
    body: Markup,
) -> Response {
    let mut response = (status, body).into_response();
    if anon.new_cookie {
        let secure = state.platform.config().secure_cookies;
        response.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(CSRF_COOKIE, &anon.csrf, ANONYMOUS_CSRF_SECONDS, secure),
        );
    }
    response
}

fn sign_up_form(csrf: &str, error: Option<&str>, email: &str, name: &str) -> Markup {
    page(
        "Create an account",
        None,
        html! {
            (error_box(error))
            form.card method="post" action="/signup" {
                (csrf_field(csrf))
                label for="name" { "Your name (optional)" }
                input #name type="text" name="name" value=(name) maxlength="64" autocomplete="name";
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) required autocomplete="email";
                label for="password" { "Password (at least 10 characters)" }
                input #password type="password" name="password" required minlength="10" autocomplete="new-password";
                fieldset {
                    legend { "I want to" }
                    label { input type="checkbox" name="deployer" value="on" checked; " deploy agents" }
                    label { input type="checkbox" name="host_owner" value="on"; " offer my machine as a host" }
                }
                button type="submit" { "Sign up" }
            }
            p { "Already have an account? " a href="/signin" { "Sign in" } }
        },
    )
}

fn sign_in_form(csrf: &str, error: Option<&str>, email: &str) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            (error_box(error))
            form.card method="post" action="/signin" {
                (csrf_field(csrf))
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) required autocomplete="email";
                label for="password" { "Password" }
                input #password type="password" name="password" required autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
            p { "New here? " a href="/signup" { "Create an account" } }
        },
    )
}

/// `GET /signup`.
pub(crate) async fn sign_up_page(State(state): State<AppState>, anon: Anonymous) -> Response {
    let body = sign_up_form(&anon.csrf, None, "", "");
    anonymous_page(&state, &anon, StatusCode::OK, body)
}

/// `POST /signup`: creates the account, then signs in.
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    anon: Anonymous,
    AnonymousPost(form): AnonymousPost<SignUpForm>,
) -> PageResult {
    let roles: Vec<String> = [
        form.deployer.as_ref().map(|_| "deployer"),
        form.host_owner.as_ref().map(|_| "host_owner"),
    ]
    .into_iter()
    .flatten()
    .map(str::to_owned)
    .collect();
    let name = Some(form.name.trim().to_owned()).filter(|n| !n.is_empty());
    let request = SignUp {
        email: form.email.clone(),
        password: form.password.clone(),
        roles,
        name: name.clone(),
    };
    if let Err(err) = state.platform.sign_up(request).await {
        let body = sign_up_form(
            &anon.csrf,
            Some(&err.message),
            &form.email,
            name.as_deref().unwrap_or(""),
        );
        let status = crate::http::status_of(err.code);
        return Ok(anonymous_page(&state, &anon, status, body));
    }
    start_session(&state, &anon, form.email, form.password).await
}

/// `GET /signin`.
pub(crate) async fn sign_in_page(State(state): State<AppState>, anon: Anonymous) -> Response {
    let body = sign_in_form(&anon.csrf, None, "");
    anonymous_page(&state, &anon, StatusCode::OK, body)
}

/// `POST /signin`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    anon: Anonymous,
    AnonymousPost(form): AnonymousPost<SignInForm>,
) -> PageResult {
    start_session(&state, &anon, form.email, form.password).await
}

/// Signs in and sets the session and CSRF cookies, or shows the sign-in form again.
async fn start_session(
    state: &AppState,
    anon: &Anonymous,
    email: String,
    password: Secret,
) -> PageResult {
    let attempt = match state.check_sign_in(&email) {
        Ok(()) => {
            state
                .platform
                .sign_in(SignIn {
                    email: email.clone(),
                    password,
                })
                .await
        }
        Err(err) => Err(err),
    };
    let session = match attempt {
        Ok(session) => session,
        Err(err) => {
            let body = sign_in_form(&anon.csrf, Some(&err.message), &email);
            let status = crate::http::status_of(err.code);
            return Ok(anonymous_page(state, anon, status, body));
        }
    };
    let config = state.platform.config();
    let ttl = config.session_ttl.as_secs();
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            session.session_id.expose(),
            ttl,
            config.secure_cookies,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            CSRF_COOKIE,
            session.csrf_token.expose(),
            ttl,
            config.secure_cookies,
        ),
    );
    Ok(response)
}

/// The empty form of sign-out (only its CSRF field).
#[derive(Deserialize)]
pub(crate) struct Empty {}

/// `POST /signout`: ends the session and clears both cookies.
pub(crate) async fn sign_out(State(state): State<AppState>, posted: Posted<Empty>) -> PageResult {
    state.platform.sign_out(&posted.viewer.session_hash).await?;
    let secure = state.platform.config().secure_cookies;
    let mut response = Redirect::to("/signin").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, secure),
    );
    headers.append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, "", 0, secure));
    Ok(response)
}
