//! Browsing hosts, and the host owner's pages: register a host, its settings, its agents.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sparebox_core::{HostId, Tier};

use super::layout::{
    csrf_field, error_box, isolation_badge, money, no_store, page, tier_name, PageResult,
};
use super::{Posted, Viewer};
use crate::http::AppState;
use crate::{HostFilter, HostSettingsRequest, HostView, OwnedHostView, PlatformError};

/// Browse filters from the query string; empty values mean "any".
#[derive(Deserialize, Default)]
pub(crate) struct BrowseQuery {
    #[serde(default)]
    isolation: String,
    #[serde(default)]
    tier: String,
}

/// `GET /hosts`.
pub(crate) async fn browse(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<BrowseQuery>, QueryRejection>,
) -> PageResult {
    let query = super::layout::query(query)?;
    let filter = HostFilter {
        isolation: Some(query.isolation.clone()).filter(|s| !s.is_empty()),
        tier: Some(query.tier.clone()).filter(|s| !s.is_empty()),
        ..HostFilter::default()
    };
    let (hosts, error) = match state.platform.browse_hosts(&filter).await {
        Ok(hosts) => (hosts, None),
        Err(err) => (Vec::new(), Some(err.message)),
    };
    let body = html! {
        form.card method="get" action="/hosts" aria-label="Filter hosts" {
            div.grid {
                div {
                    label for="isolation" { "Isolation" }
                    select #isolation name="isolation" {
                        (option("", "Any", &query.isolation))
                        (option("docker", "Docker", &query.isolation))
                        (option("podman", "Podman", &query.isolation))
                        (option("profile", "Limited (plain process)", &query.isolation))
                    }
                }
                div {
                    label for="tier" { "Has a free slot of" }
                    select #tier name="tier" {
                        (option("", "Any tier", &query.tier))
                        @for tier in Tier::ALL {
                            (option(tier.as_str(), tier_name(tier), &query.tier))
                        }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        (error_box(error.as_deref()))
        @if hosts.is_empty() && error.is_none() {
            p { "No host matches these filters." }
        }
        div.grid {
            @for host in &hosts { (host_card(host, viewer.account.has_role(sparebox_store::Role::Deployer))) }
        }
    };
    Ok(page("Browse hosts", Some((&viewer.account, &viewer.csrf)), body).into_response())
}

fn option(value: &str, label: &str, current: &str) -> Markup {
    html! { option value=(value) selected[value == current] { (label) } }
}

/// One host as deployers see it.
fn host_card(host: &HostView, can_deploy: bool) -> Markup {
    html! {
        article.card aria-labelledby={"host-" (host.id)} {
            h2 #{"host-" (host.id)} { (host.name) }
            p {
                (isolation_badge(host.isolation, host.isolation_verified)) " "
                @if host.online { span.badge.green { "Online" } } @else { span.badge.grey { "Offline" } }
            }
            p.muted {
                "Region: " (host.region.as_deref().unwrap_or("not given"))
                @if let Some(hw) = &host.hardware {
                    " · " (hw.ram_mb / 1024) " GiB RAM, " (hw.cpu_cores) " cores"
                }
            }
            (slot_table(host))
            @if can_deploy {
                a.button href={"/deploy?host=" (host.id)} { "Deploy here" }
            }
        }
    }
}

/// Free slots and prices per offered tier.
fn slot_table(host: &HostView) -> Markup {
    html! {
        div.scroll {
            table {
                caption.muted { "Offered tiers" }
                thead { tr { th scope="col" { "Tier" } th scope="col" { "Free slots" } th scope="col" { "Price" } } }
                tbody {
                    @for tier in &host.offered_tiers {
                        tr {
                            th scope="row" { (tier_name(*tier)) }
                            td { (host.free_slots.get(tier).copied().unwrap_or(0)) }
                            td { (money(host.prices.get(tier).copied())) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /my/hosts`.
pub(crate) async fn mine(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let hosts = state.platform.my_hosts(&viewer.account).await?;
    let body = html! {
        (register_form(&viewer.csrf, None))
        @if hosts.is_empty() { p { "You have not registered a host yet." } }
        @for host in &hosts { (owned_host(host)) }
    };
    Ok(page("My hosts", Some((&viewer.account, &viewer.csrf)), body).into_response())
}

fn register_form(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        form.card method="post" action="/my/hosts" {
            h2 { "Register a host" }
            (csrf_field(csrf))
            (error_box(error))
            label for="host-name" { "Host name" }
            input #host-name type="text" name="name" required maxlength="64" placeholder="my spare box";
            button type="submit" { "Register" }
        }
    }
}

fn owned_host(view: &OwnedHostView) -> Markup {
    let host = &view.host;
    html! {
        article.card aria-labelledby={"host-" (host.id)} {
            h2 #{"host-" (host.id)} { a href={"/my/hosts/" (host.id)} { (host.name) } }
            p {
                (isolation_badge(host.isolation, host.isolation_verified)) " "
                @if host.online { span.badge.green { "Online" } } @else { span.badge.grey { "Offline: no heartbeat yet or lately" } }
            }
            p.muted { "Key starts with " code { (host.key_prefix.as_deref().unwrap_or("")) } }
            (slot_table(host))
            h3 { "Agents on this host" }
            @if view.agents.is_empty() { p { "None yet." } } @else {
                ul {
                    @for agent in &view.agents {
                        li { (agent.name) " · " (tier_name(agent.tier)) " · " (agent.state) }
                    }
                }
            }
            a.button.secondary href={"/my/hosts/" (host.id)} { "Settings" }
        }
    }
}

/// The register form.
#[derive(Deserialize)]
pub(crate) struct RegisterForm {
    name: String,
}

/// `POST /my/hosts`: registers a host and shows its key once, with the commands to run.
pub(crate) async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Posted { viewer, form }: Posted<RegisterForm>,
) -> PageResult {
    let (host, key) = match state
        .platform
        .register_host(&viewer.account, &form.name)
        .await
    {
        Ok(registered) => registered,
        Err(err) => {
            let status = crate::http::status_of(err.code);
            let body = register_form(&viewer.csrf, Some(&err.message));
            let markup = page("My hosts", Some((&viewer.account, &viewer.csrf)), body);
            return Ok((status, markup).into_response());
        }
    };
    let server = server_url(&headers);
    let body = html! {
        p.notice role="status" { "Host " strong { (host.name) } " is registered. Its key is shown only on this page: copy it now." }
        section.card aria-labelledby="key-title" {
            h2 #key-title { "Host key" }
            pre #host-key { (key) }
        }
        section.card aria-labelledby="install-title" {
            h2 #install-title { "Install and enroll the daemon on the host" }
            p { "On the machine you registered, from a checkout of Sparebox, as root:" }
            pre #install-commands {
                "sudo scripts/install-hostd.sh --server " (server) "\n"
                "sudo sparebox-hostd enroll --server " (server) " --key " (key) " --config /etc/sparebox/hostd.toml\n"
                "sudo systemctl start sparebox-hostd"
            }
            p { "Without systemd, run the daemon yourself:" }
            pre #run-command { "sparebox-hostd enroll --server " (server) " --key " (key) "\nsparebox-hostd run" }
            p { "The host shows as online here once its first heartbeat arrives." }
        }
        p { a.button href={"/my/hosts/" (host.id)} { "Set tiers and prices" } " " a.button.secondary href="/my/hosts" { "Back to my hosts" } }
    };
    let markup = page(
        "Host registered",
        Some((&viewer.account, &viewer.csrf)),
        body,
    );
    Ok(no_store(StatusCode::CREATED, markup))
}

/// The server's URL as the browser reached it (the daemon will reach it the same way).
fn server_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn host_id(raw: &str) -> Result<HostId, PlatformError> {
    raw.parse()
        .map_err(|_| PlatformError::not_found(format!("host {raw:?}")))
}

/// `GET /my/hosts/{id}`.
pub(crate) async fn settings_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let id = host_id(&raw)?;
    let view = find_owned(&state, &viewer, id).await?;
    Ok(settings_markup(&viewer, &view, None, StatusCode::OK))
}

async fn find_owned(
    state: &AppState,
    viewer: &Viewer,
    id: HostId,
) -> Result<OwnedHostView, PlatformError> {
    state.platform.owned_host(&viewer.account, id).await?;
    state
        .platform
        .my_hosts(&viewer.account)
        .await?
        .into_iter()
        .find(|h| h.host.id == id)
        .ok_or_else(|| PlatformError::not_found(format!("host {id}")))
}

fn settings_markup(
    viewer: &Viewer,
    view: &OwnedHostView,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let host = &view.host;
    let body = html! {
        form.card method="post" action={"/my/hosts/" (host.id) "/settings"} {
            (csrf_field(&viewer.csrf))
            (error_box(error))
            fieldset {
                legend { "Offered tiers and prices (US dollars per month)" }
                @for tier in Tier::ALL {
                    div.grid {
                        label {
                            input type="checkbox" name={"offer_" (tier.as_str())} value="on" checked[host.offered_tiers.contains(&tier)];
                            " " (tier_name(tier)) " (" (super::layout::tier_resources(tier)) ")"
                        }
                        div {
                            label for={"price_" (tier.as_str())} { (tier_name(tier)) " price" }
                            input #{"price_" (tier.as_str())} type="number" min="0" max="10000" step="0.01"
                                name={"price_" (tier.as_str())}
                                value=[host.prices.get(&tier).map(|c| format!("{}.{:02}", c / 100, c % 100))];
                        }
                    }
                }
            }
            label for="max_agents" { "Most agents at once (empty: no cap)" }
            input #max_agents type="number" min="1" max="1000" name="max_agents" value=[host.max_agents];
            label for="region" { "Region (optional)" }
            input #region type="text" name="region" maxlength="32" value=[host.region.as_deref()];
            button type="submit" { "Save settings" }
        }
        (owned_host(view))
    };
    let title = format!("Host {}", host.name);
    (
        status,
        page(&title, Some((&viewer.account, &viewer.csrf)), body),
    )
        .into_response()
}

/// `POST /my/hosts/{id}/settings`: every field of the settings form.
pub(crate) async fn save_settings(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<BTreeMap<String, String>>,
) -> PageResult {
    let id = host_id(&raw)?;
    let result = match settings_request(&form) {
        Ok(request) => {
            state
                .platform
                .set_host_settings(&viewer.account, id, request)
                .await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/my/hosts/{id}")).into_response()),
        Err(err) => {
            let view = find_owned(&state, &viewer, id).await?;
            let status = crate::http::status_of(err.code);
            Ok(settings_markup(&viewer, &view, Some(&err.message), status))
        }
    }
}

/// Turns the settings form into the platform's request (prices from dollars to cents).
fn settings_request(form: &BTreeMap<String, String>) -> Result<HostSettingsRequest, PlatformError> {
    let mut offered = Vec::new();
    let mut prices = BTreeMap::new();
    for tier in Tier::ALL {
        let name = tier.as_str();
        if form.contains_key(&format!("offer_{name}")) {
            offered.push(name.to_owned());
        }
        let price = form.get(&format!("price_{name}")).map(|p| p.trim());
        if let Some(price) = price.filter(|p| !p.is_empty()) {
            prices.insert(name.to_owned(), cents(tier, price)?);
        }
    }
    let max_agents = match form.get("max_agents").map(|s| s.trim()) {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|_| {
            PlatformError::bad_request(format!("most agents must be a whole number, not {text:?}"))
        })?),
    };
    let region = form
        .get("region")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    Ok(HostSettingsRequest {
        offered_tiers: Some(offered),
        prices,
        max_agents,
        region,
    })
}

/// A dollar amount such as `4.50` in cents.
fn cents(tier: Tier, text: &str) -> Result<i64, PlatformError> {
    let bad = || {
        PlatformError::bad_request(format!(
            "price of the {} tier must be an amount like 4.50, not {text:?}",
            tier_name(tier)
        ))
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 2 || whole.len() > 7 {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().map_err(|_| bad())? * 10,
        _ => fraction.parse().map_err(|_| bad())?,
    };
    if whole < 0 || fraction < 0 {
        return Err(bad());
    }
    Ok(whole * 100 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_amounts_become_cents() {
        assert_eq!(cents(Tier::Lite, "4.5").unwrap(), 450);
        assert_eq!(cents(Tier::Lite, "12").unwrap(), 1200);
        assert_eq!(cents(Tier::Lite, "0.07").unwrap(), 7);
        assert!(cents(Tier::Lite, "-1").is_err());
        assert!(cents(Tier::Lite, "1.234").is_err());
        assert!(cents(Tier::Lite, "abc").is_err());
    }
}
