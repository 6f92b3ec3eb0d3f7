//! The dashboard home and the agent page: state, metrics, chart, commands, events, with a
//! fragment the page re-fetches every few seconds while open.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use sparebox_core::{AgentId, AgentState, CommandStatus};
use sparebox_store::{AgentEventRecord, AgentSample, CommandRecord, Role};

use super::layout::{csrf_field, error_box, page, tier_name, PageResult};
use super::{Posted, Viewer};
use crate::http::AppState;
use crate::views::AgentView;
use crate::PlatformError;

/// How far back the chart looks.
const CHART_WINDOW: Duration = Duration::from_secs(6 * 3600);
/// How often the open page refreshes its live part, in milliseconds.
const REFRESH_MS: u32 = 3000;
/// Commands listed on the page.
const COMMANDS_SHOWN: usize = 8;
/// Events listed on the page.
const EVENTS_SHOWN: usize = 20;

/// Re-fetches the live fragment and swaps it in; stops when the page is hidden or the
/// fragment answers anything but 200.
const REFRESH_JS: &str = r#"(function(){var live=document.getElementById('live');if(!live)return;
var url=live.getAttribute('data-src'),ms=+live.getAttribute('data-ms');
function tick(){if(document.hidden){setTimeout(tick,ms);return;}
fetch(url,{credentials:'same-origin',headers:{'Accept':'text/html'}}).then(function(r){
if(r.status!==200)throw new Error(r.status);return r.text();}).then(function(t){live.innerHTML=t;setTimeout(tick,ms);})
.catch(function(){var s=document.getElementById('refresh-note');if(s)s.textContent='Live updates paused: reload the page.';});}
setTimeout(tick,ms);})();"#;

pub(super) fn agent_id(raw: &str) -> Result<AgentId, PlatformError> {
    raw.parse()
        .map_err(|_| PlatformError::not_found(format!("agent {raw:?}")))
}

/// `GET /`: the caller's agents, and where to go next.
pub(crate) async fn home(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let agents = state.platform.list_agents(&viewer.account).await?;
    let body = html! {
        section.card aria-labelledby="agents-title" {
            h2 #agents-title { "Your agents" }
            @if agents.iter().all(|a| a.state == AgentState::Undeployed) {
                p { "No agents yet." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Tier" } th scope="col" { "State" } } }
                    tbody {
                        @for agent in agents.iter().filter(|a| a.state != AgentState::Undeployed) {
                            tr {
                                td { a href={"/agents/" (agent.id)} { (agent.name) } }
                                td { (tier_name(agent.tier)) }
                                td { (state_text(agent)) }
                            }
                        }
                    }
                } }
            }
            @if viewer.account.has_role(Role::Deployer) {
                a.button href="/deploy" { "Deploy an agent" }
            }
        }
        @if viewer.account.has_role(Role::HostOwner) {
            p { a.button.secondary href="/my/hosts" { "Manage my hosts" } }
        }
    };
    Ok(page("Dashboard", Some((&viewer.account, &viewer.csrf)), body).into_response())
}

/// The headline state: "Waiting for host…", "Deploying (stage)…", "Running", ...
fn state_text(agent: &AgentView) -> String {
    match agent.state {
        AgentState::PendingDeploy => "Waiting for host…".to_owned(),
        AgentState::Deploying => match agent.deploy_stage {
            Some(stage) => format!("Deploying ({stage})…"),
            None => "Deploying…".to_owned(),
        },
        AgentState::Running => "Running".to_owned(),
        AgentState::Stopped => "Stopped".to_owned(),
        AgentState::Error => "Failed".to_owned(),
        AgentState::HostOffline => "Host offline".to_owned(),
        AgentState::Undeploying => "Undeploying…".to_owned(),
        AgentState::Undeployed => "Undeployed".to_owned(),
    }
}

/// Everything the live part shows.
struct Live {
    agent: AgentView,
    commands: Vec<CommandRecord>,
    events: Vec<AgentEventRecord>,
    samples: Vec<AgentSample>,
    owner: bool,
}

async fn load(state: &AppState, viewer: &Viewer, raw: &str) -> Result<Live, PlatformError> {
    let id = agent_id(raw)?;
    let platform = &state.platform;
    let record = platform.readable_agent(&viewer.account, id).await?;
    let owner = record.owner == viewer.account.id;
    let commands = match owner {
        true => platform.agent_commands(&viewer.account, id).await?,
        false => Vec::new(),
    };
    Ok(Live {
        agent: AgentView::from(&record),
        commands,
        events: platform.agent_events(&viewer.account, id).await?,
        samples: platform
            .agent_samples(&viewer.account, id, CHART_WINDOW)
            .await?,
        owner,
    })
}

/// `GET /agents/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let live = load(&state, &viewer, &raw).await?;
    let agent = &live.agent;
    let body = html! {
        p.muted { (tier_name(agent.tier)) " · " code { (agent.image) } }
        @if live.owner && agent.state != AgentState::Undeployed {
            section.card aria-labelledby="controls-title" {
                h2 #controls-title { "Controls" }
                @for (kind, label) in [("start", "Start"), ("stop", "Stop"), ("restart", "Restart")] {
                    form method="post" action={"/agents/" (agent.id) "/commands"} style="display:inline" {
                        (csrf_field(&viewer.csrf))
                        input type="hidden" name="type" value=(kind);
                        button.secondary type="submit" { (label) }
                    }
                }
                form method="post" action={"/agents/" (agent.id) "/commands"} style="display:inline"
                    onsubmit="return confirm('Undeploy this agent? Its container and files on the host are removed.')" {
                    (csrf_field(&viewer.csrf))
                    input type="hidden" name="type" value="undeploy";
                    button.danger type="submit" { "Undeploy" }
                }
                " "
                a.button.secondary href={"/agents/" (agent.id) "/config"} { "Configure" }
            }
        }
        div #live data-src={"/agents/" (agent.id) "/live"} data-ms=(REFRESH_MS) {
            (live_fragment(&live, &viewer.csrf))
        }
        p #refresh-note.muted { "This page refreshes itself while open." }
        script { (PreEscaped(REFRESH_JS)) }
    };
    Ok(page(&agent.name, Some((&viewer.account, &viewer.csrf)), body).into_response())
}

/// `GET /agents/{id}/live`: the live part alone, for the page's refresh.
pub(crate) async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let live = load(&state, &viewer, &raw).await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        live_fragment(&live, &viewer.csrf),
    )
        .into_response())
}

fn live_fragment(live: &Live, csrf: &str) -> Markup {
    let agent = &live.agent;
    let m = &agent.metrics;
    html! {
        section.card aria-labelledby="state-title" {
            h2 #state-title { "State" }
            p #agent-state role="status" { strong { (state_text(agent)) } }
            @if let Some(progress) = agent.deploy_progress {
                progress max="100" value=(progress) aria-label="Deploy progress" { (progress) "%" }
            }
            @if agent.state == AgentState::Error {
                (error_box(Some(agent.error.as_deref().unwrap_or("the deploy failed"))))
                @if live.owner {
                    form method="post" action={"/agents/" (agent.id) "/retry"} {
                        (csrf_field(csrf))
                        button type="submit" { "Retry deploy" }
                    }
                }
            }
            @if agent.isolation_verified == Some(true) {
                p { span.badge.green { "Verified Isolation" } }
            }
        }
        section.card aria-labelledby="metrics-title" {
            h2 #metrics-title { "Resources" }
            dl.grid {
                div { dt { "CPU" } dd #cpu { (m.cpu_percent.map(|c| format!("{c:.1} %")).unwrap_or_else(|| "–".into())) } }
                div { dt { "RAM" } dd #ram { (ram_text(m.ram_usage_mb, m.ram_limit_mb)) } }
                div { dt { "Uptime" } dd #uptime { (m.uptime_seconds.map(uptime).unwrap_or_else(|| "–".into())) } }
                div { dt { "Restarts" } dd #restarts { (m.restart_count) } }
            }
            (chart(&live.samples))
        }
        @if live.owner {
            section.card aria-labelledby="commands-title" {
                h2 #commands-title { "Commands" }
                @if live.commands.is_empty() { p { "None yet." } } @else {
                    ul #commands {
                        @for c in live.commands.iter().take(COMMANDS_SHOWN) {
                            li {
                                (c.kind) ": " strong { (command_status(c)) }
                                @if let Some(error) = &c.error { " (" (error) ")" }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="events-title" {
            h2 #events-title { "Events" }
            @if live.events.is_empty() { p { "None yet." } } @else {
                ul #events {
                    @for e in live.events.iter().take(EVENTS_SHOWN) {
                        li { time datetime=(e.at.to_rfc3339()) { (e.at.format("%Y-%m-%d %H:%M:%S UTC")) } " · " (e.message) }
                    }
                }
            }
        }
    }
}

fn command_status(c: &CommandRecord) -> &'static str {
    match c.status {
        CommandStatus::Pending => "queued, waiting for the host…",
        CommandStatus::Sent => "sent, waiting for the host to confirm…",
        CommandStatus::Acked => "done",
        CommandStatus::Failed => "failed",
        CommandStatus::Expired => "expired: the host did not answer in time",
        _ => "superseded by a newer command",
    }
}

fn ram_text(used: Option<u64>, limit: Option<u64>) -> String {
    match (used, limit) {
        (Some(u), Some(l)) => format!("{u} MiB of {l} MiB"),
        (Some(u), None) => format!("{u} MiB"),
        _ => "–".into(),
    }
}

fn uptime(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m} min {} s", seconds % 60),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// Chart size in SVG units.
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 120.0;

/// CPU (blue, percent of one core, scaled to at least 100) and RAM (orange, percent of
/// the limit) over the samples, as an inline SVG with a text alternative.
fn chart(samples: &[AgentSample]) -> Markup {
    if samples.len() < 2 {
        return html! { p.muted { "The chart appears after a few minutes of running (one sample a minute)." } };
    }
    let first = samples[0].at.timestamp() as f64;
    let span = (samples[samples.len() - 1].at.timestamp() as f64 - first).max(1.0);
    let cpu_max = samples
        .iter()
        .filter_map(|s| s.cpu_percent)
        .fold(100.0_f64, f64::max);
    let x = |s: &AgentSample| (s.at.timestamp() as f64 - first) / span * CHART_W;
    let line = |value: &dyn Fn(&AgentSample) -> Option<f64>| -> String {
        samples
            .iter()
            .filter_map(|s| {
                value(s)
                    .map(|v| format!("{:.1},{:.1}", x(s), CHART_H - v.clamp(0.0, 1.0) * CHART_H))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cpu = line(&|s| s.cpu_percent.map(|c| c / cpu_max));
    let ram = line(&|s| match (s.ram_usage_mb, s.ram_limit_mb) {
        (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64),
        _ => None,
    });
    let last = &samples[samples.len() - 1];
    let summary = format!(
        "CPU and memory over the last {} minutes: latest CPU {}, memory {}.",
        (span / 60.0).round(),
        last.cpu_percent
            .map(|c| format!("{c:.1} %"))
            .unwrap_or_else(|| "unknown".into()),
        ram_text(last.ram_usage_mb, last.ram_limit_mb)
    );
    html! {
        figure {
            svg.chart viewBox={"0 0 " (CHART_W) " " (CHART_H)} role="img" aria-labelledby="chart-title" preserveAspectRatio="none" {
                title #chart-title { (summary) }
                line x1="0" y1=(CHART_H / 2.0) x2=(CHART_W) y2=(CHART_H / 2.0) stroke="#d0d7de" {}
                polyline points=(cpu) fill="none" stroke="#0550ae" stroke-width="2" {}
                polyline points=(ram) fill="none" stroke="#bc4c00" stroke-width="2" stroke-dasharray="6 3" {}
            }
            figcaption.muted { span style="color:#0550ae" { "━ CPU (of " (format!("{cpu_max:.0}")) " %)" } " · " span style="color:#bc4c00" { "╍ RAM (of the limit)" } " · " (summary) }
        }
    }
}

/// A command button's form.
#[derive(Deserialize)]
pub(crate) struct CommandForm {
    #[serde(rename = "type")]
    kind: String,
}

/// `POST /agents/{id}/commands`.
pub(crate) async fn command(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<CommandForm>,
) -> PageResult {
    let id = agent_id(&raw)?;
    let command = state
        .platform
        .queue_command(&viewer.account, id, &form.kind)
        .await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok(Redirect::to(&format!("/agents/{id}")).into_response())
}

/// The retry form (only its CSRF field).
#[derive(Deserialize)]
pub(crate) struct RetryForm {}

/// `POST /agents/{id}/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, .. }: Posted<RetryForm>,
) -> PageResult {
    let id = agent_id(&raw)?;
    let command = state.platform.retry_deploy(&viewer.account, id).await?;
    state.metrics.command(command.kind.as_str(), "queued");
    Ok(Redirect::to(&format!("/agents/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(minute: i64, cpu: f64, ram: u64) -> AgentSample {
        AgentSample {
            agent: AgentId::new_random(),
            at: chrono::DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap(),
            cpu_percent: Some(cpu),
            ram_usage_mb: Some(ram),
            ram_limit_mb: Some(1024),
        }
    }

    #[test]
    fn chart_draws_cpu_and_ram_over_the_samples() {
        let svg = chart(&[
            sample(0, 50.0, 512),
            sample(1, 200.0, 1024),
            sample(2, 0.0, 0),
        ])
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        // CPU is scaled to its highest value (200 %), RAM to the limit.
        assert!(
            svg.contains(r#"points="0.0,90.0 300.0,0.0 600.0,120.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"points="0.0,60.0 300.0,0.0 600.0,120.0""#),
            "{svg}"
        );
        assert!(svg.contains("over the last 2 minutes"));
    }

    #[test]
    fn chart_waits_for_two_samples() {
        assert!(!chart(&[sample(0, 1.0, 1)]).into_string().contains("<svg"));
    }
}
