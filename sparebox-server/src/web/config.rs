//! An agent's configuration tabs: Quick Setup, Workspace Files, Advanced (`openclaw.json`).
//! Every save goes through [`crate::Platform::update_config`], which validates it and
//! queues an `update_config` for the host.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sparebox_core::openclaw_config::PLATFORM_OWNED_KEYS;
use sparebox_core::workspace::WorkspaceLimits;
use sparebox_core::{AgentId, Secret};
use sparebox_protocol::WorkspaceFile;
use sparebox_store::AgentRecord;

use super::agent::agent_id;
use super::deploy::{model_secret, model_select, soul, MODELS};
use super::layout::{csrf_field, error_box, page, PageResult};
use super::session::check_csrf;
use super::{Posted, Viewer};
use crate::http::AppState;
use crate::{ConfigUpdate, PlatformError};

/// Starting points offered for the usual OpenClaw workspace files.
const TEMPLATES: &[(&str, &str)] = &[
    ("SOUL.md", "# Soul\n\nWho this agent is: its tone, its values, what it never does.\n"),
    ("AGENTS.md", "# Agents\n\nHow this agent works: its routines, the tools it may use, how it reports back.\n"),
    ("USER.md", "# User\n\nWho the agent works for: name, time zone, preferences.\n"),
    ("IDENTITY.md", "# Identity\n\nName: \nEmoji: \nOne-line description: \n"),
];

/// Which tab, and for Workspace Files which file is open or which template is loaded.
#[derive(Deserialize, Default)]
pub(crate) struct TabQuery {
    #[serde(default)]
    tab: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Quick,
    Files,
    Advanced,
}

/// What a re-rendered tab shows after a failed save.
#[derive(Default)]
struct Feedback<'a> {
    error: Option<&'a str>,
    /// The text the person typed (kept so nothing is lost), for the editor or the JSON5.
    text: Option<&'a str>,
    path: Option<&'a str>,
}

/// `GET /agents/{id}/config`.
pub(crate) async fn page_for(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    query: Result<Query<TabQuery>, QueryRejection>,
) -> PageResult {
    let query = super::layout::query(query)?;
    let agent = owned(&state, &viewer, &raw).await?;
    let tab = match query.tab.as_deref() {
        Some("files") => Tab::Files,
        Some("advanced") => Tab::Advanced,
        _ => Tab::Quick,
    };
    let feedback = Feedback {
        path: query.path.as_deref(),
        ..Feedback::default()
    };
    let template = query
        .template
        .as_deref()
        .and_then(|t| TEMPLATES.iter().find(|(name, _)| *name == t));
    let feedback = match template {
        Some((name, text)) => Feedback {
            path: Some(name),
            text: Some(text),
            ..feedback
        },
        None => feedback,
    };
    Ok(render(&viewer, &agent, tab, &feedback, StatusCode::OK))
}

async fn owned(state: &AppState, viewer: &Viewer, raw: &str) -> Result<AgentRecord, PlatformError> {
    let id = agent_id(raw)?;
    state.platform.owned_agent(&viewer.account, id).await
}

fn render(
    viewer: &Viewer,
    agent: &AgentRecord,
    tab: Tab,
    feedback: &Feedback<'_>,
    status: StatusCode,
) -> Response {
    let tabs = [
        (Tab::Quick, "quick", "Quick Setup"),
        (Tab::Files, "files", "Workspace Files"),
        (Tab::Advanced, "advanced", "Advanced"),
    ];
    let body = html! {
        p { a href={"/agents/" (agent.id)} { "← Back to " (agent.name) } }
        nav aria-label="Configuration" {
            ul.tabs {
                @for (t, key, label) in tabs {
                    li { a href={"/agents/" (agent.id) "/config?tab=" (key)} aria-current=[(t == tab).then_some("page")] { (label) } }
                }
            }
        }
        p.muted { "Saving sends the new configuration to the host, which applies it and restarts the agent." }
        @match tab {
            Tab::Quick => (quick_tab(viewer, agent, feedback)),
            Tab::Files => (files_tab(viewer, agent, feedback)),
            Tab::Advanced => (advanced_tab(viewer, agent, feedback)),
        }
    };
    let title = format!("Configure {}", agent.name);
    (
        status,
        page(&title, Some((&viewer.account, &viewer.csrf)), body),
    )
        .into_response()
}

fn current_model(agent: &AgentRecord) -> &str {
    agent.openclaw_config["agents"]["defaults"]["model"]
        .as_str()
        .unwrap_or(MODELS[0].0)
}

fn file<'a>(agent: &'a AgentRecord, path: &str) -> Option<&'a WorkspaceFile> {
    agent.workspace_files.iter().find(|f| f.path == path)
}

fn quick_tab(viewer: &Viewer, agent: &AgentRecord, feedback: &Feedback<'_>) -> Markup {
    let prompt = file(agent, "SOUL.md")
        .map(|f| f.content.as_str())
        .unwrap_or("");
    html! {
        form.card method="post" action={"/agents/" (agent.id) "/config/quick"} {
            (csrf_field(&viewer.csrf))
            (error_box(feedback.error))
            label for="system_prompt" { "System prompt (SOUL.md)" }
            textarea #system_prompt name="system_prompt" rows="8" { (feedback.text.unwrap_or(prompt)) }
            (model_select(current_model(agent)))
            label for="api_key" { "New LLM API key (leave empty to keep the current secrets)" }
            input #api_key type="password" name="api_key" autocomplete="off";
            button type="submit" { "Save" }
        }
    }
}

fn files_tab(viewer: &Viewer, agent: &AgentRecord, feedback: &Feedback<'_>) -> Markup {
    let limits = WorkspaceLimits::DEFAULT;
    let total: usize = agent.workspace_files.iter().map(|f| f.content.len()).sum();
    let mut paths: Vec<&str> = agent
        .workspace_files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    paths.sort_unstable();
    let open_path = feedback.path.unwrap_or("");
    let open_text = feedback
        .text
        .or_else(|| file(agent, open_path).map(|f| f.content.as_str()))
        .unwrap_or("");
    html! {
        section.card aria-labelledby="tree-title" {
            h2 #tree-title { "Files" }
            p.muted { (paths.len()) " files, " (kib(total)) " of " (kib(limits.max_total_bytes as usize)) " in total; at most " (kib(limits.max_file_bytes as usize)) " per file." }
            @if paths.is_empty() { p { "No files yet." } }
            ul #file-tree {
                @for path in &paths {
                    @let depth = path.matches('/').count();
                    li style={"margin-left:" (depth) "rem"} {
                        a href={"/agents/" (agent.id) "/config?tab=files&path=" (urlencode(path))} { (path) }
                        " "
                        form method="post" action={"/agents/" (agent.id) "/files/delete"} style="display:inline" {
                            (csrf_field(&viewer.csrf))
                            input type="hidden" name="path" value=(path);
                            button.secondary type="submit" aria-label={"Delete " (path)} { "Delete" }
                        }
                    }
                }
            }
            p { "Start from a template: "
                @for (name, _) in TEMPLATES {
                    a.button.secondary href={"/agents/" (agent.id) "/config?tab=files&template=" (name)} { (name) }
                }
            }
        }
        form.card method="post" action={"/agents/" (agent.id) "/files"} {
            h2 { "Create or edit a file" }
            (csrf_field(&viewer.csrf))
            (error_box(feedback.error))
            label for="path" { "Path (relative, such as memory/notes.md)" }
            input #path type="text" name="path" required maxlength="1024" value=(open_path);
            label for="content" { "Content" }
            textarea #content name="content" rows="14" { (open_text) }
            button type="submit" { "Save file" }
        }
        form.card method="post" action={"/agents/" (agent.id) "/files/upload"} enctype="multipart/form-data" {
            h2 { "Upload a file" }
            (csrf_field(&viewer.csrf))
            label for="folder" { "Folder (optional)" }
            input #folder type="text" name="folder" maxlength="512";
            label for="file" { "Text file, at most " (kib(limits.max_file_bytes as usize)) }
            input #file type="file" name="file" required;
            button type="submit" { "Upload" }
        }
    }
}

fn advanced_tab(viewer: &Viewer, agent: &AgentRecord, feedback: &Feedback<'_>) -> Markup {
    let current = serde_json::to_string_pretty(&agent.openclaw_config).unwrap_or_default();
    html! {
        form.card method="post" action={"/agents/" (agent.id) "/config/advanced"} {
            (csrf_field(&viewer.csrf))
            label for="config" { "openclaw.json (JSON5: comments and trailing commas are fine)" }
            @if let Some(error) = feedback.error {
                p #config-error.field-error role="alert" { (error) }
            }
            textarea #config name="config" rows="20" spellcheck="false"
                aria-describedby=[feedback.error.map(|_| "config-error")] aria-invalid=[feedback.error.map(|_| "true")] {
                (feedback.text.unwrap_or(&current))
            }
            button type="submit" { "Validate and save" }
        }
        section.card aria-labelledby="owned-title" {
            h2 #owned-title { "Keys the platform owns" }
            p { "The platform sets these so the agent's gateway stays reachable only through its host and authenticated with a token it generated; a configuration that sets them is refused:" }
            ul { @for key in PLATFORM_OWNED_KEYS { li { code { (key) } } } }
            p { "The model is " code { "agents.defaults.model" } "; provider keys belong in secrets (Quick Setup), not here." }
        }
    }
}

fn kib(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

/// Percent-encodes a path for a query string.
fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("p", text)])
        .map(|s| s[2..].to_owned())
        .unwrap_or_default()
}

/// Applies `update` and goes back to `tab`, or shows the tab again with the error.
async fn save(
    state: &AppState,
    viewer: &Viewer,
    agent: &AgentRecord,
    update: ConfigUpdate,
    tab: Tab,
    feedback: Feedback<'_>,
) -> PageResult {
    match state
        .platform
        .update_config(&viewer.account, agent.id, update)
        .await
    {
        Ok(command) => {
            if let Some(command) = command {
                state.metrics.command(command.kind.as_str(), "queued");
            }
            let key = match tab {
                Tab::Quick => "quick",
                Tab::Files => "files",
                Tab::Advanced => "advanced",
            };
            Ok(Redirect::to(&format!("/agents/{}/config?tab={key}", agent.id)).into_response())
        }
        Err(err) => {
            let status = crate::http::status_of(err.code);
            let feedback = Feedback {
                error: Some(&err.message),
                ..feedback
            };
            Ok(render(viewer, agent, tab, &feedback, status))
        }
    }
}

/// The Quick Setup form.
#[derive(Deserialize)]
pub(crate) struct QuickForm {
    #[serde(default)]
    system_prompt: String,
    model: String,
    #[serde(default)]
    api_key: Option<Secret>,
}

/// `POST /agents/{id}/config/quick`.
pub(crate) async fn save_quick(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<QuickForm>,
) -> PageResult {
    let agent = owned(&state, &viewer, &raw).await?;
    let secret_name = model_secret(&form.model)?;
    let mut files: Vec<WorkspaceFile> = agent
        .workspace_files
        .iter()
        .filter(|f| f.path != "SOUL.md")
        .cloned()
        .collect();
    files.extend(soul(&form.system_prompt));
    let mut config = agent.openclaw_config.clone();
    if !config.is_object() {
        config = serde_json::json!({});
    }
    config["agents"]["defaults"]["model"] = serde_json::Value::String(form.model.clone());
    let secrets = form
        .api_key
        .as_ref()
        .filter(|k| !k.expose().trim().is_empty())
        .map(|k| BTreeMap::from([(secret_name.to_owned(), Secret::new(k.expose().trim()))]));
    let update = ConfigUpdate {
        openclaw_config: Some(config),
        workspace_files: Some(files),
        secrets,
    };
    let feedback = Feedback {
        text: Some(&form.system_prompt),
        ..Feedback::default()
    };
    save(&state, &viewer, &agent, update, Tab::Quick, feedback).await
}

/// The Advanced form.
#[derive(Deserialize)]
pub(crate) struct AdvancedForm {
    config: String,
}

/// `POST /agents/{id}/config/advanced`: the JSON5 text, validated by the platform.
pub(crate) async fn save_advanced(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<AdvancedForm>,
) -> PageResult {
    let agent = owned(&state, &viewer, &raw).await?;
    let update = ConfigUpdate {
        openclaw_config: Some(serde_json::Value::String(form.config.clone())),
        ..ConfigUpdate::default()
    };
    let feedback = Feedback {
        text: Some(&form.config),
        ..Feedback::default()
    };
    save(&state, &viewer, &agent, update, Tab::Advanced, feedback).await
}

/// The file editor's form.
#[derive(Deserialize)]
pub(crate) struct FileForm {
    path: String,
    #[serde(default)]
    content: String,
}

/// `POST /agents/{id}/files`: creates or replaces one file.
pub(crate) async fn save_file(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<FileForm>,
) -> PageResult {
    let agent = owned(&state, &viewer, &raw).await?;
    let content = form.content.replace("\r\n", "\n");
    let files = with_file(&agent, form.path.trim(), content);
    let feedback = Feedback {
        text: Some(&form.content),
        path: Some(&form.path),
        ..Feedback::default()
    };
    let update = files_update(files);
    save(&state, &viewer, &agent, update, Tab::Files, feedback).await
}

fn files_update(files: Vec<WorkspaceFile>) -> ConfigUpdate {
    ConfigUpdate {
        workspace_files: Some(files),
        ..ConfigUpdate::default()
    }
}

/// The agent's files with `path` replaced by (or added as) `content`.
fn with_file(agent: &AgentRecord, path: &str, content: String) -> Vec<WorkspaceFile> {
    let mut files: Vec<WorkspaceFile> = agent
        .workspace_files
        .iter()
        .filter(|f| f.path != path)
        .cloned()
        .collect();
    files.push(WorkspaceFile {
        path: path.to_owned(),
        content,
    });
    files
}

/// The delete button's form.
#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    path: String,
}

/// `POST /agents/{id}/files/delete`.
pub(crate) async fn delete_file(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { viewer, form }: Posted<DeleteForm>,
) -> PageResult {
    let agent = owned(&state, &viewer, &raw).await?;
    if file(&agent, &form.path).is_none() {
        return Err(PlatformError::not_found(format!("workspace file {:?}", form.path)).into());
    }
    let files = agent
        .workspace_files
        .iter()
        .filter(|f| f.path != form.path)
        .cloned()
        .collect();
    save(
        &state,
        &viewer,
        &agent,
        files_update(files),
        Tab::Files,
        Feedback::default(),
    )
    .await
}

/// What an upload carried.
#[derive(Default)]
struct Upload {
    csrf: String,
    folder: String,
    name: String,
    content: Option<Vec<u8>>,
}

/// `POST /agents/{id}/files/upload`: one text file (multipart), at most 10 MB.
pub(crate) async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> PageResult {
    let id: AgentId = agent_id(&raw)?;
    let upload = read_upload(multipart).await;
    let upload = match upload {
        Ok(upload) => upload,
        Err((status, message)) => {
            let agent = state.platform.owned_agent(&viewer.account, id).await?;
            let feedback = Feedback {
                error: Some(&message),
                ..Feedback::default()
            };
            return Ok(render(&viewer, &agent, Tab::Files, &feedback, status));
        }
    };
    check_csrf(&viewer, &upload.csrf)?;
    let agent = state.platform.owned_agent(&viewer.account, id).await?;
    let path = match upload.folder.trim().trim_matches('/') {
        "" => upload.name.clone(),
        folder => format!("{folder}/{}", upload.name),
    };
    let content = String::from_utf8(upload.content.unwrap_or_default()).map_err(|_| {
        PlatformError::bad_request(format!("{path}: only UTF-8 text files can be uploaded"))
    });
    let content = match content {
        Ok(content) => content,
        Err(err) => {
            let feedback = Feedback {
                error: Some(&err.message),
                ..Feedback::default()
            };
            return Ok(render(
                &viewer,
                &agent,
                Tab::Files,
                &feedback,
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let files = with_file(&agent, &path, content);
    save(
        &state,
        &viewer,
        &agent,
        files_update(files),
        Tab::Files,
        Feedback::default(),
    )
    .await
}

/// Reads the upload's fields, refusing a file over the per-file limit with a message that
/// says so.
async fn read_upload(
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Upload, (StatusCode, String)> {
    let max = WorkspaceLimits::DEFAULT.max_file_bytes as usize;
    let too_large = || {
        let message = format!(
            "upload rejected: a workspace file may be at most {} ({max} bytes)",
            kib(max)
        );
        (StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let mut multipart = multipart.map_err(|err| {
        let message = format!("upload rejected: {}", err.body_text());
        (StatusCode::BAD_REQUEST, message)
    })?;
    let mut upload = Upload::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(too_large()),
        };
        match field.name().unwrap_or("") {
            "csrf" => upload.csrf = field.text().await.map_err(|_| too_large())?,
            "folder" => upload.folder = field.text().await.map_err(|_| too_large())?,
            "file" => {
                upload.name = field.file_name().unwrap_or("upload.txt").to_owned();
                let mut field = field;
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|_| too_large())? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > max {
                        let message = format!(
                            "upload rejected: {} is larger than {}: a workspace file may be at most {max} bytes",
                            upload.name,
                            kib(max)
                        );
                        return Err((StatusCode::PAYLOAD_TOO_LARGE, message));
                    }
                }
                upload.content = Some(bytes);
            }
            _ => {}
        }
    }
    if upload.content.is_none() {
        let message = "upload rejected: choose a file to upload".to_owned();
        return Err((StatusCode::BAD_REQUEST, message));
    }
    Ok(upload)
}
