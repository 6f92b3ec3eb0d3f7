//! The agent lifecycle: named transitions and properties over random event sequences.

use proptest::prelude::*;
use sparebox_core::agent::{AgentState, DeployStage};
use sparebox_core::command::CommandKind;
use sparebox_core::lifecycle::{
    transition, AgentEvent, AgentLifecycle, HostReport, MAX_REASON_CHARS,
};

use AgentLifecycle as S;
use CommandKind::*;

fn acked(kind: CommandKind) -> AgentEvent {
    AgentEvent::CommandAcked { kind }
}

fn sent(kind: CommandKind) -> AgentEvent {
    AgentEvent::CommandSent { kind }
}

fn report(r: HostReport) -> AgentEvent {
    AgentEvent::Reported(r)
}

fn deploying(stage: DeployStage) -> HostReport {
    HostReport::Deploying { stage }
}

fn run(events: &[AgentEvent]) -> AgentLifecycle {
    events
        .iter()
        .fold(S::PendingDeploy, |s, e| transition(&s, e).unwrap())
}

#[test]
fn happy_deploy_walks_the_stages_to_running() {
    let mut s = transition(&S::PendingDeploy, &sent(Deploy)).unwrap();
    assert_eq!(
        s,
        S::Deploying {
            stage: DeployStage::FetchingConfig
        }
    );
    for stage in &DeployStage::ALL[1..5] {
        s = transition(&s, &report(deploying(*stage))).unwrap();
        assert_eq!(s.state(), AgentState::Deploying);
        assert_eq!(s.progress_percent(), Some(stage.progress_percent()));
    }
    s = transition(&s, &acked(Deploy)).unwrap();
    assert_eq!(s, S::Running);
}

#[test]
fn intermediate_deploy_stage_never_marks_the_agent_running() {
    for stage in &DeployStage::ALL[..5] {
        let s = transition(&S::PendingDeploy, &report(deploying(*stage))).unwrap();
        assert_ne!(s, S::Running, "{stage}");
    }
    let ready = transition(
        &S::Deploying {
            stage: DeployStage::HealthCheck,
        },
        &report(deploying(DeployStage::Ready)),
    );
    assert_eq!(ready.unwrap(), S::Running);
}

#[test]
fn start_ack_before_anything_was_deployed_is_illegal() {
    for kind in [Start, Stop, Restart, UpdateConfig] {
        let err = transition(&S::PendingDeploy, &acked(kind)).unwrap_err();
        assert_eq!(err.from, AgentState::PendingDeploy);
        assert_eq!(
            err.to_string(),
            format!("agent in state pending_deploy: {kind} acked is not allowed")
        );
    }
}

#[test]
fn stop_and_start_acks_move_between_running_and_stopped() {
    let s = run(&[sent(Deploy), acked(Deploy), acked(Stop)]);
    assert_eq!(s, S::Stopped);
    assert_eq!(transition(&s, &acked(Start)).unwrap(), S::Running);
    assert_eq!(transition(&s, &acked(Restart)).unwrap(), S::Running);
}

#[test]
fn config_update_keeps_a_stopped_agent_stopped() {
    let s = run(&[acked(Deploy), acked(Stop)]);
    assert_eq!(transition(&s, &acked(UpdateConfig)).unwrap(), S::Stopped);
    assert_eq!(
        transition(&S::Running, &acked(UpdateConfig)).unwrap(),
        S::Running
    );
}

#[test]
fn failed_command_puts_the_agent_in_error_with_its_reason() {
    let e = AgentEvent::CommandFailed {
        kind: Deploy,
        reason: "image pull denied".into(),
    };
    let s = transition(
        &S::Deploying {
            stage: DeployStage::Pulling,
        },
        &e,
    )
    .unwrap();
    assert_eq!(s.error_reason(), Some("deploy failed: image pull denied"));
}

#[test]
fn failed_upgrade_logs_or_backup_leave_a_running_agent_running() {
    for kind in [Upgrade, Logs, Backup] {
        let e = AgentEvent::CommandFailed {
            kind,
            reason: "rolled back: not healthy within 120s".into(),
        };
        assert_eq!(transition(&S::Running, &e).unwrap(), S::Running, "{kind}");
    }
}

#[test]
fn logs_and_backup_acks_change_nothing_but_need_a_deployed_agent() {
    for kind in [Logs, Backup] {
        assert_eq!(transition(&S::Stopped, &acked(kind)).unwrap(), S::Stopped);
        assert!(transition(&S::PendingDeploy, &acked(kind)).is_err());
    }
    assert_eq!(
        transition(&S::Stopped, &acked(Upgrade)).unwrap(),
        S::Stopped
    );
}

#[test]
fn expired_deploy_is_an_error_but_other_expiries_change_nothing() {
    let s = transition(
        &S::Deploying {
            stage: DeployStage::Pulling,
        },
        &AgentEvent::CommandExpired { kind: Deploy },
    );
    assert_eq!(s.unwrap().state(), AgentState::Error);
    assert_eq!(
        transition(&S::Running, &AgentEvent::CommandExpired { kind: Stop }).unwrap(),
        S::Running
    );
}

#[test]
fn oom_exit_is_reported_as_such() {
    let s = transition(
        &S::Running,
        &report(HostReport::Exited { oom_killed: true }),
    )
    .unwrap();
    assert_eq!(
        s.error_reason(),
        Some("killed for exceeding its memory limit")
    );
}

#[test]
fn host_loss_then_return_follows_the_reports() {
    let s = transition(&S::Running, &AgentEvent::HostLost).unwrap();
    assert_eq!(s, S::HostOffline);
    assert_eq!(
        transition(&s, &report(HostReport::Stopped)).unwrap(),
        S::Stopped
    );
}

#[test]
fn undeploy_request_survives_late_results_and_host_loss() {
    let s = transition(&S::Running, &AgentEvent::UndeployRequested).unwrap();
    for e in [
        acked(Start),
        report(HostReport::Running),
        AgentEvent::HostLost,
        sent(Deploy),
    ] {
        assert_eq!(transition(&s, &e).unwrap(), S::Undeploying, "{e}");
    }
    assert_eq!(transition(&s, &acked(Undeploy)).unwrap(), S::Undeployed);
}

#[test]
fn failed_undeploy_is_an_error_that_still_holds_the_slot() {
    let e = AgentEvent::CommandFailed {
        kind: Undeploy,
        reason: "device busy".into(),
    };
    let s = transition(&S::Undeploying, &e).unwrap();
    assert_eq!(s.error_reason(), Some("undeploy failed: device busy"));
    assert!(s.state().holds_slot());
}

#[test]
fn undeployed_agent_reported_running_is_illegal() {
    let err = transition(&S::Undeployed, &report(HostReport::Running)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent in state undeployed: report running is not allowed"
    );
    assert!(transition(&S::Undeployed, &AgentEvent::UndeployRequested).is_err());
}

#[test]
fn only_a_failed_agent_can_be_retried() {
    let failed = AgentLifecycle::error("deploy failed: health_check: timed out");
    assert_eq!(
        transition(&failed, &AgentEvent::RetryRequested).unwrap(),
        S::PendingDeploy
    );
    for s in [S::Running, S::Stopped, S::PendingDeploy, S::HostOffline] {
        assert!(transition(&s, &AgentEvent::RetryRequested).is_err(), "{s}");
    }
    assert!(transition(&S::Undeployed, &sent(Deploy)).is_err());
    assert_eq!(
        transition(&S::Undeployed, &acked(Undeploy)).unwrap(),
        S::Undeployed
    );
    assert_eq!(
        transition(&S::Undeployed, &report(HostReport::Missing)).unwrap(),
        S::Undeployed
    );
}

fn kind() -> impl Strategy<Value = CommandKind> {
    prop::sample::select(CommandKind::ALL.to_vec())
}

fn stage() -> impl Strategy<Value = DeployStage> {
    prop::sample::select(DeployStage::ALL.to_vec())
}

/// Short reasons of any characters, one in four repeated past [`MAX_REASON_CHARS`].
fn reason() -> impl Strategy<Value = String> {
    ("[a-zé \\t\\x00]{0,24}", 0u8..4).prop_map(|(s, n)| if n == 0 { s.repeat(80) } else { s })
}

fn host_report() -> impl Strategy<Value = HostReport> {
    prop_oneof![
        stage().prop_map(|stage| HostReport::Deploying { stage }),
        Just(HostReport::Running),
        Just(HostReport::Stopped),
        any::<bool>().prop_map(|oom_killed| HostReport::Exited { oom_killed }),
        Just(HostReport::Missing),
        reason().prop_map(|reason| HostReport::Error { reason }),
    ]
}

fn event() -> impl Strategy<Value = AgentEvent> {
    prop_oneof![
        kind().prop_map(|kind| AgentEvent::CommandSent { kind }),
        kind().prop_map(|kind| AgentEvent::CommandAcked { kind }),
        (kind(), reason()).prop_map(|(kind, reason)| AgentEvent::CommandFailed { kind, reason }),
        kind().prop_map(|kind| AgentEvent::CommandExpired { kind }),
        host_report().prop_map(AgentEvent::Reported),
        Just(AgentEvent::HostLost),
        Just(AgentEvent::UndeployRequested),
        Just(AgentEvent::RetryRequested),
    ]
}

fn assert_valid(s: &AgentLifecycle) -> Result<(), TestCaseError> {
    match s {
        S::Deploying { stage } => prop_assert_ne!(*stage, DeployStage::Ready),
        S::Error { reason } => {
            prop_assert!(!reason.trim().is_empty());
            prop_assert!(reason.chars().count() <= MAX_REASON_CHARS);
        }
        _ => {}
    }
    let back = AgentLifecycle::from_parts(s.state(), s.deploy_stage(), s.error_reason());
    prop_assert_eq!(back.as_ref(), Ok(s));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_event_sequence_leaves_a_valid_state(events in prop::collection::vec(event(), 0..40)) {
        let mut s = S::PendingDeploy;
        for e in &events {
            let was_undeployed = s == S::Undeployed;
            match transition(&s, e) {
                Ok(next) => s = next,
                Err(err) => prop_assert_eq!(err.from, s.state()),
            }
            assert_valid(&s)?;
            prop_assert!(!was_undeployed || s == S::Undeployed, "left undeployed on {}", e);
        }
    }

    #[test]
    fn host_coming_back_reaches_the_state_its_reports_show(
        events in prop::collection::vec(event(), 0..30),
        comeback in host_report(),
    ) {
        let s = events.iter().fold(S::PendingDeploy, |s, e| transition(&s, e).unwrap_or(s));
        if !matches!(s, S::Undeploying | S::Undeployed) {
            let offline = transition(&s, &AgentEvent::HostLost).unwrap();
            prop_assert_eq!(&offline, &S::HostOffline);
            let back = transition(&offline, &AgentEvent::Reported(comeback.clone())).unwrap();
            prop_assert_eq!(back, comeback.shown_state());
        }
    }

    #[test]
    fn only_ready_running_reports_and_completed_commands_make_an_agent_running(
        events in prop::collection::vec(event(), 0..30),
        last in event(),
    ) {
        let s = events.iter().fold(S::PendingDeploy, |s, e| transition(&s, e).unwrap_or(s));
        if let Ok(S::Running) = transition(&s, &last) {
            let allowed = s == S::Running && !matches!(last, AgentEvent::Reported(_) | AgentEvent::HostLost | AgentEvent::UndeployRequested | AgentEvent::CommandFailed { kind: Deploy | Start | Stop | Restart | Undeploy | UpdateConfig | Restore, .. })
                || matches!(
                    last,
                    AgentEvent::CommandAcked { kind: Deploy | Start | Restart | UpdateConfig | Upgrade | Restore }
                        | AgentEvent::Reported(HostReport::Running)
                        | AgentEvent::Reported(HostReport::Deploying { stage: DeployStage::Ready })
                );
            prop_assert!(allowed, "{} from {}", last, s);
        }
    }
}
