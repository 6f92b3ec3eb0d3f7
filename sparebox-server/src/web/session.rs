//! Who is looking at a page, and the CSRF check of every form.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sparebox_store::AccountRecord;

use super::layout::PageError;
use crate::http::auth::{cookie, SESSION_COOKIE};
use crate::http::AppState;
use crate::{tokens, ErrorCode, PlatformError};

/// The cookie holding the CSRF token the pages put into their forms. HttpOnly: scripts
/// never need it, the server copies it into each form.
pub(crate) const CSRF_COOKIE: &str = "sparebox_csrf";

/// A `Set-Cookie` value; an empty value with `max_age` 0 clears the cookie.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are hex tokens")
}

/// The signed-in account looking at a page, with the CSRF token its forms carry.
#[derive(Debug)]
pub(crate) struct Viewer {
    /// The account.
    pub account: AccountRecord,
    /// SHA-256 of the session id, for signing out.
    pub session_hash: Vec<u8>,
    /// The token to put into forms (empty when the cookie is missing: forms then fail
    /// their check and the person signs in again).
    pub csrf: String,
    csrf_hash: Vec<u8>,
}

impl Viewer {
    /// Checks a form's CSRF field against the session.
    fn check(&self, presented: &str) -> Result<(), PageError> {
        if tokens::matches_hash(presented, &self.csrf_hash) {
            return Ok(());
        }
        Err(csrf_failed())
    }
}

fn csrf_failed() -> PageError {
    PageError::Platform(PlatformError::new(
        ErrorCode::Forbidden,
        "this form's security token is missing or out of date: reload the page and try again",
    ))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Some(session_id) = cookie(parts, SESSION_COOKIE) else {
            return Err(PageError::SignIn);
        };
        let session = state
            .platform
            .authenticate_session(session_id)
            .await
            .map_err(|_| PageError::SignIn)?;
        Ok(Self {
            account: session.account,
            session_hash: tokens::hash(session_id),
            csrf: cookie(parts, CSRF_COOKIE).unwrap_or_default().to_owned(),
            csrf_hash: session.csrf_hash,
        })
    }
}

/// The CSRF token of a page shown before sign-in: the one in the cookie, or a new one the
/// response must set ([`Anonymous::new_cookie`]).
#[derive(Debug)]
pub(crate) struct Anonymous {
    /// The token to put into forms.
    pub csrf: String,
    /// Whether the cookie must be (re)set with [`Anonymous::csrf`].
    pub new_cookie: bool,
}

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        Ok(match cookie(parts, CSRF_COOKIE) {
            Some(token) => Self {
                csrf: token.to_owned(),
                new_cookie: false,
            },
            None => Self {
                csrf: tokens::generate(""),
                new_cookie: true,
            },
        })
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A URL-encoded form whose `csrf` field matched the signed-in viewer's session, with the
/// viewer. Other fields deserialize into `T` (which must allow the extra `csrf` field).
#[derive(Debug)]
pub(crate) struct Posted<T> {
    /// Who posted it.
    pub viewer: Viewer,
    /// The form.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| {
                PageError::Platform(PlatformError::bad_request(
                    "the form is too large or could not be read",
                ))
            })?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        viewer.check(&field.csrf)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        Ok(Self { viewer, form })
    }
}

/// A form posted before sign-in whose `csrf` field matched the CSRF cookie.
#[derive(Debug)]
pub(crate) struct AnonymousPost<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AnonymousPost<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (parts, body) = request.into_parts();
        let expected = cookie(&parts, CSRF_COOKIE).map(tokens::hash);
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| {
                PageError::Platform(PlatformError::bad_request("the form could not be read"))
            })?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        match expected {
            Some(hash) if tokens::matches_hash(&field.csrf, &hash) => {}
            _ => return Err(csrf_failed()),
        }
        Ok(Self(
            serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?,
        ))
    }
}

/// Checks a CSRF token that arrived outside a URL-encoded form (a multipart upload).
pub(crate) fn check_csrf(viewer: &Viewer, presented: &str) -> Result<(), PageError> {
    viewer.check(presented)
}

fn bad_form(err: serde_urlencoded::de::Error) -> PageError {
    PageError::Platform(PlatformError::bad_request(format!("invalid form: {err}")))
}
