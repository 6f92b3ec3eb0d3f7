//! Agent lifecycle events from the engine's event API, filtered by the agent label.
//!
//! The engine reports `start`, `die` and `oom` for containers. A `die` is followed by an
//! inspect of the container so [`RuntimeEventKind::Died::oom_killed`] comes from the
//! engine's `OOMKilled` flag, never from the exit code. A `start` whose container has a
//! non-zero restart count was done by the restart policy (an explicit start resets the
//! count), and becomes [`RuntimeEventKind::Restarted`].
//!
//! Podman (4.3) differs: its label filter wants `key=value`, so events are filtered by the
//! agent label here instead; it says `died` and `containerExitCode`; and it writes events
//! only when its `events_logger` works (the journald default loses them on machines without
//! systemd's journal; `scripts/ensure-podman.sh` sets `events_logger = "file"`). On Podman a
//! `died` also restores netavark's isolation jump at once (see [`super::podman`]), so while
//! someone listens to the events the window in which agents can reach each other after an
//! agent died is the event's latency.

use std::collections::HashMap;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sparebox_core::AgentId;

use crate::{RuntimeError, RuntimeEvent, RuntimeEventKind, RuntimeResult, AGENT_LABEL};

/// What a raw engine event means before the container is inspected.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Start,
    Die { exit_code: Option<i64> },
    Oom,
}

/// The stream behind [`crate::Runtime::events`] for a Docker or Podman engine.
pub(crate) fn agent_events(
    docker: Docker,
    podman: bool,
) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
    let mut filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    if !podman {
        filters.insert("label".to_owned(), vec![AGENT_LABEL.to_owned()]);
    }
    // The request is only sent when the stream is first polled; `since` makes events from
    // the moment of this call count even so (whole seconds: both engines parse that).
    let options = EventsOptions {
        since: Some(Utc::now().timestamp().to_string()),
        until: None,
        filters: Some(filters),
    };
    let raw = docker.events(Some(options)).boxed();
    futures::stream::unfold(Some((raw, docker)), move |state| async move {
        let (mut raw, docker) = state?;
        loop {
            match raw.next().await? {
                Ok(message) => {
                    if let Some(event) = translate(&docker, &message, podman).await {
                        return Some((Ok(event), Some((raw, docker))));
                    }
                }
                Err(err) => {
                    let err = RuntimeError::Unavailable(format!("engine events: {err}"));
                    return Some((Err(err), None));
                }
            }
        }
    })
    .boxed()
}

async fn translate(docker: &Docker, message: &EventMessage, podman: bool) -> Option<RuntimeEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let actor = message.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    let agent: AgentId = attributes.get(AGENT_LABEL)?.parse().ok()?;
    let action = action(message.action.as_deref()?, attributes)?;
    let at = event_time(message);
    let id = actor.id.as_deref().unwrap_or_default();

    let kind = match action {
        Action::Oom => RuntimeEventKind::OomKilled,
        Action::Die { exit_code } => {
            if podman {
                if let Err(err) = super::podman::ensure_isolation_jump().await {
                    tracing::warn!(agent.id = %agent, error = %err, "agent network isolation not restored after a container died");
                }
            }
            let state = inspect_state(docker, id).await;
            RuntimeEventKind::Died {
                exit_code: exit_code.or(state.exit_code),
                oom_killed: state.oom_killed,
            }
        }
        Action::Start => match inspect_state(docker, id).await.restart_count {
            0 => RuntimeEventKind::Started,
            restart_count => RuntimeEventKind::Restarted { restart_count },
        },
    };
    Some(RuntimeEvent { agent, kind, at })
}

/// The actions Sparebox reports; Podman says `died` where Docker says `die`.
fn action(name: &str, attributes: &HashMap<String, String>) -> Option<Action> {
    match name {
        "start" => Some(Action::Start),
        "die" | "died" => Some(Action::Die {
            exit_code: attributes
                .get("exitCode")
                .or_else(|| attributes.get("containerExitCode"))
                .and_then(|c| c.parse().ok()),
        }),
        "oom" => Some(Action::Oom),
        _ => None,
    }
}

fn event_time(message: &EventMessage) -> DateTime<Utc> {
    message
        .time_nano
        .map(DateTime::from_timestamp_nanos)
        .or_else(|| message.time.and_then(|s| DateTime::from_timestamp(s, 0)))
        .unwrap_or_else(Utc::now)
}

#[derive(Debug, Default)]
struct StateAfterEvent {
    exit_code: Option<i64>,
    oom_killed: bool,
    restart_count: u32,
}

/// The container's state right after an event; all defaults when it is already gone.
async fn inspect_state(docker: &Docker, id: &str) -> StateAfterEvent {
    let Ok(container) = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    else {
        return StateAfterEvent::default();
    };
    let state = container.state.unwrap_or_default();
    StateAfterEvent {
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        restart_count: container
            .restart_count
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn die_carries_the_exit_code_attribute_and_podman_spelling_is_accepted() {
        let attributes = HashMap::from([("exitCode".to_owned(), "137".to_owned())]);
        assert_eq!(
            action("die", &attributes),
            Some(Action::Die {
                exit_code: Some(137)
            })
        );
        assert_eq!(
            action("died", &HashMap::new()),
            Some(Action::Die { exit_code: None })
        );
        assert_eq!(action("oom", &attributes), Some(Action::Oom));
        assert_eq!(action("exec_start: sh", &attributes), None);
    }

    #[test]
    fn event_time_prefers_nanoseconds() {
        let message = EventMessage {
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_500_000_000),
            ..Default::default()
        };
        assert_eq!(event_time(&message).timestamp_subsec_millis(), 500);
    }
}
