//! The page shell (landmarks, navigation, the one inline stylesheet), error pages and small
//! pieces several pages show.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use sparebox_core::Tier;
use sparebox_protocol::IsolationMode;
use sparebox_store::{AccountRecord, Role};

use crate::PlatformError;

/// The whole stylesheet: system fonts, readable contrast (every text colour is at least
/// 4.5:1 on its background), visible focus, one column on phones.
const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;background:#f6f8fa}
a{color:#0550ae}
header{background:#1b1f24;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
header a{color:#fff;text-decoration:none}
header nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
header form{margin:0 0 0 auto}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
:focus-visible{outline:3px solid #bf8700;outline-offset:2px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1rem;margin:0 0 1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(18rem,1fr));gap:1rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}
.scroll{overflow-x:auto}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=email],input[type=password],input[type=number],select,textarea{width:100%;padding:.5rem;border:1px solid #6e7781;border-radius:6px;font:inherit;background:#fff;color:inherit}
textarea{font-family:ui-monospace,monospace;min-height:12rem}
button,.button{display:inline-block;padding:.5rem 1rem;border-radius:6px;border:1px solid #1b1f24;background:#1f6feb;color:#fff;font:inherit;cursor:pointer;text-decoration:none;margin:.25rem .25rem .25rem 0}
button.secondary,.button.secondary{background:#fff;color:#1b1f24}
button.danger{background:#b42318;border-color:#7a1a12}
fieldset{border:1px solid #d0d7de;border-radius:8px;margin:1rem 0}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.85rem;font-weight:600;border:1px solid}
.green{background:#dafbe1;color:#116329;border-color:#116329}
.yellow{background:#fff8c5;color:#6f4e00;border-color:#6f4e00}
.grey{background:#eaeef2;color:#424a53;border-color:#424a53}
.error{background:#ffebe9;color:#82071e;border:1px solid #82071e;border-radius:6px;padding:.5rem 1rem}
.notice{background:#ddf4ff;color:#0a3069;border:1px solid #0a3069;border-radius:6px;padding:.5rem 1rem}
.field-error{color:#82071e;font-weight:600}
.tabs{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;padding:0;margin:0 0 1rem}
.tabs a{padding:.4rem .8rem;border:1px solid #d0d7de;border-radius:6px;background:#fff;text-decoration:none}
.tabs a[aria-current=page]{background:#1b1f24;color:#fff}
pre,code{font-family:ui-monospace,monospace;font-size:.9rem}
pre{background:#1b1f24;color:#f6f8fa;padding:.75rem;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.muted{color:#57606a}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
progress{width:100%;height:1rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem;z-index:1}
@media (max-width:40rem){main{padding:.5rem}h1{font-size:1.3rem}th,td{padding:.3rem}}
"#;

/// A whole HTML page with the site's header; `viewer` adds the signed-in navigation and
/// the sign-out form.
pub(crate) fn page(title: &str, viewer: Option<(&AccountRecord, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sparebox" }
                style { (PreEscaped(CSS)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a href="/" { strong { "Sparebox" } }
                    @if let Some((account, csrf)) = viewer {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/" { "Dashboard" } }
                                li { a href="/hosts" { "Browse hosts" } }
                                @if account.has_role(Role::Deployer) {
                                    li { a href="/deploy" { "Deploy an agent" } }
                                }
                                @if account.has_role(Role::HostOwner) {
                                    li { a href="/my/hosts" { "My hosts" } }
                                }
                            }
                        }
                        form method="post" action="/signout" {
                            (csrf_field(csrf))
                            button.secondary type="submit" { "Sign out " (account.name) }
                        }
                    } @else {
                        nav aria-label="Account" {
                            ul {
                                li { a href="/signin" { "Sign in" } }
                                li { a href="/signup" { "Sign up" } }
                            }
                        }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// An error box, announced to screen readers.
pub(crate) fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}

/// The isolation badge of a host: green for container isolation, yellow for limited,
/// and "Verified Isolation" only when every running agent's limits were verified.
pub(crate) fn isolation_badge(mode: Option<IsolationMode>, verified: bool) -> Markup {
    let (class, text) = match mode {
        Some(IsolationMode::Docker) => ("green", "Docker Isolated"),
        Some(IsolationMode::Podman) => ("green", "Podman Isolated"),
        Some(IsolationMode::Profile) => ("yellow", "Limited Isolation"),
        Some(_) => ("yellow", "No isolation available"),
        None => ("grey", "Not reported yet"),
    };
    html! {
        span class={"badge " (class)} { (text) }
        @if verified {
            " " span.badge.green title="The daemon checked every running agent's limits and hardening" { "Verified Isolation" }
        }
    }
}

/// A price in cents per month, as dollars.
pub(crate) fn money(cents: Option<u32>) -> String {
    match cents {
        Some(c) => format!("${}.{:02}/month", c / 100, c % 100),
        None => "no price set".to_owned(),
    }
}

/// A tier's name with a capital letter.
pub(crate) fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Lite => "Lite",
        Tier::Standard => "Standard",
        Tier::Pro => "Pro",
        Tier::Compute => "Compute",
    }
}

/// A tier's resources, e.g. "2 GiB RAM · 1 CPU · 10 GB disk".
pub(crate) fn tier_resources(tier: Tier) -> String {
    let r = tier.resources();
    let cores = r.cpu_millicores as f64 / 1000.0;
    format!(
        "{} GiB RAM · {cores} CPU · {} GB disk",
        r.ram_mb / 1024,
        r.disk_gb
    )
}

/// What a tier suits, and the honest note on Lite.
pub(crate) fn tier_suits(tier: Tier) -> &'static str {
    match tier {
        Tier::Lite => "Webhook-only and low-traffic agents. Tight for OpenClaw: a real OpenClaw idles around 700 MiB in a container, leaving little headroom in 1 GiB.",
        Tier::Standard => "Most agents.",
        Tier::Pro => "Browser automation, coding agents.",
        Tier::Compute => "Local models, heavy automation.",
    }
}

/// What a page handler can fail with.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page.
    SignIn,
    /// A platform error, shown as a page with its message and status.
    Platform(PlatformError),
}

impl From<PlatformError> for PageError {
    fn from(err: PlatformError) -> Self {
        Self::Platform(err)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/signin").into_response(),
            PageError::Platform(err) => {
                let status = crate::http::status_of(err.code);
                let title = status.canonical_reason().unwrap_or("Error");
                let body = html! {
                    (error_box(Some(&err.message)))
                    p { a href="/" { "Back to the dashboard" } }
                };
                (status, page(title, None, body)).into_response()
            }
        }
    }
}

/// A page response that must not be cached (it shows a key or a token once).
pub(crate) fn no_store(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response()
}

/// A query string's parameters, or a page saying what was wrong with them.
pub(crate) fn query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, PageError> {
    query.map(|q| q.0).map_err(|err| {
        PageError::Platform(PlatformError::bad_request(format!(
            "invalid query: {}",
            err.body_text()
        )))
    })
}

/// The result of a page handler.
pub(crate) type PageResult<T = Response> = Result<T, PageError>;
