//! What Sparebox reports about a container, from the engine's inspect response.

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use chrono::{DateTime, Datelike, Utc};
use sparebox_core::{AgentId, Tier};
use sparebox_protocol::IsolationMode;

use super::network::AGENT_NETWORK;
use super::podman::agent_network_name;
use super::verify;
use crate::{ContainerInfo, ContainerState, AGENT_LABEL, TIER_LABEL};

fn parse_time(value: Option<&str>) -> Option<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(value?)
        .ok()?
        .with_timezone(&Utc);
    // The engine reports "0001-01-01T00:00:00Z" for never.
    (time.year() > 1).then_some(time)
}

fn container_state(status: Option<ContainerStateStatusEnum>) -> ContainerState {
    match status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        _ => ContainerState::Other,
    }
}

/// What Sparebox reports about an inspected container. The agent comes from its label, or
/// `fallback` when the label is missing; `None` when neither names one. `mode` decides which
/// network the container must be on: the shared [`AGENT_NETWORK`] on Docker, its own
/// network on Podman.
pub(crate) fn container_info(
    container: &ContainerInspectResponse,
    fallback: Option<AgentId>,
    mode: IsolationMode,
) -> Option<ContainerInfo> {
    let labels = container.config.as_ref().and_then(|c| c.labels.as_ref());
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let agent = label(AGENT_LABEL)
        .and_then(|id| id.parse().ok())
        .or(fallback)?;
    let tier = label(TIER_LABEL).and_then(|t| t.parse::<Tier>().ok());

    let state = container.state.clone().unwrap_or_default();
    let status = container_state(state.status);
    let memory_limit = container
        .host_config
        .as_ref()
        .and_then(|h| h.memory)
        .filter(|&m| m > 0)
        .and_then(|m| u64::try_from(m).ok());

    Some(ContainerInfo {
        agent,
        container_id: container.id.clone().unwrap_or_default(),
        state: status,
        image: container
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        started_at: parse_time(state.started_at.as_deref()),
        restart_count: container
            .restart_count
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        oom_killed: state.oom_killed.unwrap_or(false),
        exit_code: (status == ContainerState::Exited)
            .then_some(state.exit_code)
            .flatten(),
        memory_limit_bytes: memory_limit,
        // The engine copies the image's labels into the container's.
        openclaw_version: crate::openclaw_version_from_labels(label),
        image_id: container.image.clone().filter(|id| !id.is_empty()),
        isolation: {
            let network = expected_network(agent, mode);
            let mut report = verify::verify_isolation(tier, container, &network);
            if mode == IsolationMode::Podman {
                super::podman::adjust_report(&mut report, container, &network, None);
            }
            report
        },
    })
}

/// The only network an agent's container may be attached to.
fn expected_network(agent: AgentId, mode: IsolationMode) -> String {
    match mode {
        IsolationMode::Podman => agent_network_name(agent),
        _ => AGENT_NETWORK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_start_time_means_never_started() {
        assert_eq!(parse_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(parse_time(Some("2026-12-03T13:20:01.123456789Z")).is_some());
        assert_eq!(parse_time(None), None);
    }

    #[test]
    fn oom_flag_comes_from_engine_state_not_exit_code() {
        let exited_137: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "abc",
            "Config": {"Labels": {AGENT_LABEL: "0f8fad5b-d9cb-469f-a165-70867728950e", TIER_LABEL: "lite"}},
            "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": false}
        }))
        .unwrap();
        let info = container_info(&exited_137, None, IsolationMode::Docker).unwrap();
        assert!(!info.oom_killed);
        assert_eq!(info.exit_code, Some(137));
        assert_eq!(info.state, ContainerState::Exited);

        let oom: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Config": {"Labels": {AGENT_LABEL: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
            "State": {"Status": "running", "ExitCode": 0, "OOMKilled": true}
        }))
        .unwrap();
        let info = container_info(&oom, None, IsolationMode::Docker).unwrap();
        assert!(info.oom_killed);
        assert_eq!(info.exit_code, None);
    }

    #[test]
    fn container_without_agent_label_or_fallback_is_not_reported() {
        let container = ContainerInspectResponse::default();
        assert!(container_info(&container, None, IsolationMode::Docker).is_none());
        let agent = AgentId::new_random();
        assert_eq!(
            container_info(&container, Some(agent), IsolationMode::Docker)
                .unwrap()
                .agent,
            agent
        );
    }
}
