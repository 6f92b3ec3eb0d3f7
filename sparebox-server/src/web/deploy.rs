//! The deploy wizard: host → tier → quick setup → checkout (Stripe) or deploy (free mode).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sparebox_core::{HostId, Secret, Tier};
use sparebox_protocol::WorkspaceFile;
use sparebox_store::Role;

use super::layout::{
    csrf_field, error_box, isolation_badge, money, page, tier_name, tier_resources, tier_suits,
    PageResult,
};
use super::{Posted, Viewer};
use crate::http::AppState;
use crate::{AgentRequest, HostFilter, HostView, PlatformError};

/// The models the quick setup offers: OpenClaw's `provider/model` name, a label, and the
/// secret that holds the provider's key.
pub(crate) const MODELS: &[(&str, &str, &str)] = &[
    (
        "anthropic/claude-sonnet-4-5",
        "Claude Sonnet 4.5 (Anthropic)",
        "ANTHROPIC_API_KEY",
    ),
    (
        "anthropic/claude-opus-4-1",
        "Claude Opus 4.1 (Anthropic)",
        "ANTHROPIC_API_KEY",
    ),
    ("openai/gpt-5", "GPT-5 (OpenAI)", "OPENAI_API_KEY"),
    ("openai/gpt-5-mini", "GPT-5 mini (OpenAI)", "OPENAI_API_KEY"),
];

/// The secret variable of a model from [`MODELS`].
pub(crate) fn model_secret(model: &str) -> Result<&'static str, PlatformError> {
    MODELS
        .iter()
        .find(|(id, _, _)| *id == model)
        .map(|(_, _, secret)| *secret)
        .ok_or_else(|| PlatformError::bad_request(format!("unknown model {model:?}")))
}

/// The model `<select>` with `current` chosen.
pub(crate) fn model_select(current: &str) -> Markup {
    html! {
        label for="model" { "Model" }
        select #model name="model" {
            @for (id, label, _) in MODELS {
                option value=(id) selected[*id == current] { (label) }
            }
        }
    }
}

/// The wizard's position, from the query string.
#[derive(Deserialize, Default)]
pub(crate) struct WizardQuery {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    tier: Option<String>,
}

/// `GET /deploy`: the step the query string reaches.
pub(crate) async fn wizard(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<WizardQuery>, QueryRejection>,
) -> PageResult {
    state
        .platform
        .require_role(&viewer.account, Role::Deployer, "deploying an agent")?;
    let query = super::layout::query(query)?;
    let hosts = state.platform.browse_hosts(&HostFilter::default()).await?;
    let Some(raw_host) = query.host.as_deref() else {
        return Ok(render(
            &viewer,
            "Deploy: choose a host",
            choose_host(&hosts),
        ));
    };
    let host = find_host(&hosts, raw_host)?;
    let Some(raw_tier) = query.tier.as_deref() else {
        return Ok(render(&viewer, "Deploy: choose a tier", choose_tier(host)));
    };
    let tier = crate::validate::tier("tier", raw_tier)?;
    let setup = SetupForm::default();
    let body = quick_setup(&state, &viewer, host, tier, &setup, None);
    Ok(render(&viewer, "Deploy: quick setup", body))
}

fn render(viewer: &Viewer, title: &str, body: Markup) -> Response {
    page(title, Some((&viewer.account, &viewer.csrf)), body).into_response()
}

fn find_host<'a>(hosts: &'a [HostView], raw: &str) -> Result<&'a HostView, PlatformError> {
    let id: Option<HostId> = raw.parse().ok();
    hosts
        .iter()
        .find(|h| Some(h.id) == id)
        .ok_or_else(|| PlatformError::not_found(format!("host {raw:?}")))
}

fn steps(current: usize) -> Markup {
    let names = ["Host", "Tier", "Quick setup", "Checkout"];
    html! {
        nav aria-label="Deploy steps" {
            ol.tabs {
                @for (i, name) in names.iter().enumerate() {
                    li { span.badge.(if i == current { "green" } else { "grey" }) aria-current=[(i == current).then_some("step")] { (i + 1) ". " (name) } }
                }
            }
        }
    }
}

fn choose_host(hosts: &[HostView]) -> Markup {
    html! {
        (steps(0))
        @if hosts.is_empty() { p { "No host is registered yet." } }
        div.grid {
            @for host in hosts {
                article.card {
                    h2 { (host.name) }
                    p { (isolation_badge(host.isolation, host.isolation_verified)) }
                    p.muted { "Region: " (host.region.as_deref().unwrap_or("not given")) }
                    ul {
                        @for tier in &host.offered_tiers {
                            li { (tier_name(*tier)) ": " (host.free_slots.get(tier).copied().unwrap_or(0)) " free · " (money(host.prices.get(tier).copied())) }
                        }
                    }
                    a.button href={"/deploy?host=" (host.id)} aria-label={"Choose " (host.name)} { "Choose" }
                }
            }
        }
    }
}

fn choose_tier(host: &HostView) -> Markup {
    html! {
        (steps(1))
        p { "Host: " strong { (host.name) } " " (isolation_badge(host.isolation, host.isolation_verified)) }
        form.card method="get" action="/deploy" {
            input type="hidden" name="host" value=(host.id);
            fieldset {
                legend { "Tier" }
                @for tier in &host.offered_tiers {
                    @let free = host.free_slots.get(tier).copied().unwrap_or(0);
                    div.card {
                        label {
                            input type="radio" name="tier" value=(tier.as_str()) required disabled[free == 0] checked[*tier == Tier::Standard && free > 0];
                            " " (tier_name(*tier)) " · " (tier_resources(*tier))
                        }
                        p { (tier_suits(*tier)) }
                        p.muted { (free) @if free == 1 { " free slot · " } @else { " free slots · " } (money(host.prices.get(tier).copied())) }
                    }
                }
            }
            button type="submit" { "Next: quick setup" }
        }
    }
}

/// The quick setup form; every field but the key is kept when it comes back with an error.
#[derive(Deserialize, Default)]
pub(crate) struct SetupForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    api_key: Option<Secret>,
}

fn quick_setup(
    state: &AppState,
    viewer: &Viewer,
    host: &HostView,
    tier: Tier,
    form: &SetupForm,
    error: Option<&str>,
) -> Markup {
    let paid = state.platform.config().stripe.is_some() && !viewer.account.has_role(Role::Admin);
    let model = if form.model.is_empty() {
        MODELS[0].0
    } else {
        &form.model
    };
    html! {
        (steps(2))
        p { "Host: " strong { (host.name) } " · Tier: " strong { (tier_name(tier)) } " (" (tier_resources(tier)) ")" }
        @if tier == Tier::Lite { p.notice { (tier_suits(tier)) } }
        (error_box(error))
        form.card method="post" action="/deploy" {
            (csrf_field(&viewer.csrf))
            input type="hidden" name="host" value=(host.id);
            input type="hidden" name="tier" value=(tier.as_str());
            label for="name" { "Agent name" }
            input #name type="text" name="name" required maxlength="64" value=(form.name);
            label for="system_prompt" { "System prompt (saved as SOUL.md)" }
            textarea #system_prompt name="system_prompt" rows="6" { (form.system_prompt) }
            (model_select(model))
            label for="api_key" { "LLM API key (stored encrypted; never shown again)" }
            input #api_key type="password" name="api_key" autocomplete="off";
            h2 { "4. Checkout" }
            @if paid {
                p { "You pay " (money(host.prices.get(&tier).copied())) " through Stripe; the agent deploys once the payment is confirmed." }
                button type="submit" { "Continue to payment" }
            } @else {
                p { "This server runs in free mode: the agent deploys right away." }
                button type="submit" { "Deploy" }
            }
        }
    }
}

/// `POST /deploy`: creates the agent (free mode) or starts a Stripe checkout.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Posted { viewer, form }: Posted<SetupForm>,
) -> PageResult {
    let hosts = state.platform.browse_hosts(&HostFilter::default()).await?;
    let host = find_host(&hosts, &form.host)?;
    let tier = crate::validate::tier("tier", &form.tier)?;
    let outcome = match agent_request(host.id, &form) {
        Ok(request) => create(&state, &viewer, request).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(location) => Ok(Redirect::to(&location).into_response()),
        Err(err) => {
            let status = crate::http::status_of(err.code);
            let body = quick_setup(&state, &viewer, host, tier, &form, Some(&err.message));
            let markup = page(
                "Deploy: quick setup",
                Some((&viewer.account, &viewer.csrf)),
                body,
            );
            Ok((status, markup).into_response())
        }
    }
}

/// Where the browser goes next: the agent's page, or Stripe's payment page.
async fn create(
    state: &AppState,
    viewer: &Viewer,
    request: AgentRequest,
) -> Result<String, PlatformError> {
    let paid = state.platform.config().stripe.is_some() && !viewer.account.has_role(Role::Admin);
    if paid {
        let session = state
            .platform
            .start_checkout(&viewer.account, request)
            .await?;
        return Ok(session.url);
    }
    let (agent, command) = state
        .platform
        .create_agent(&viewer.account, request)
        .await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok(format!("/agents/{}", agent.id))
}

fn agent_request(host: HostId, form: &SetupForm) -> Result<AgentRequest, PlatformError> {
    let secret = model_secret(&form.model)?;
    let mut secrets = BTreeMap::new();
    if let Some(key) = form
        .api_key
        .as_ref()
        .filter(|k| !k.expose().trim().is_empty())
    {
        secrets.insert(secret.to_owned(), Secret::new(key.expose().trim()));
    }
    Ok(AgentRequest {
        host_id: host,
        tier: form.tier.clone(),
        name: form.name.clone(),
        openclaw_config: Some(
            serde_json::json!({ "agents": { "defaults": { "model": form.model } } }),
        ),
        workspace_files: soul(&form.system_prompt),
        secrets,
    })
}

/// `SOUL.md` from a system prompt, or nothing when it is blank.
pub(crate) fn soul(prompt: &str) -> Vec<WorkspaceFile> {
    if prompt.trim().is_empty() {
        return Vec::new();
    }
    vec![WorkspaceFile {
        path: "SOUL.md".to_owned(),
        content: prompt.replace("\r\n", "\n"),
    }]
}
