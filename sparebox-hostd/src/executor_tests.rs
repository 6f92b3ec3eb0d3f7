use std::fs;

use sparebox_core::{AgentId, CommandId, CommandKind};
use sparebox_protocol::{AckStatus, RuntimeStatus};
use sparebox_runtime::fake::{FakeCall, FakeOp};
use sparebox_runtime::ContainerState;

use crate::client::ClientError;
use crate::report::agent_reports;
use crate::testing::{command, FakeServer, Harness, IMAGE};

async fn deploy(harness: &Harness, agent: AgentId) -> sparebox_protocol::CommandAck {
    harness
        .executor
        .execute(&command(CommandKind::Deploy, agent))
        .await
}

#[tokio::test]
async fn deploy_happy_path_acks_and_reports_running() {
    let harness = Harness::new(FakeServer::with_files(&[("SOUL.md", "be kind")]), true);
    let agent = AgentId::new_random();

    let ack = deploy(&harness, agent).await;

    assert_eq!((ack.status, ack.error.as_deref()), (AckStatus::Acked, None));
    let calls = harness.runtime.mutations();
    assert!(matches!(&calls[0], FakeCall::EnsureImage(image) if image == IMAGE));
    let FakeCall::CreateAndStart(spec) = &calls[1] else {
        panic!("expected a create, got {calls:?}");
    };
    assert_eq!(spec.gateway_port, harness.first_port());
    assert_eq!(spec.secret_env["ANTHROPIC_API_KEY"].expose(), "sk-ant-test");
    assert_eq!(spec.state_dir, harness.state_dir(agent));
    let soul = harness.state_dir(agent).join("workspace/SOUL.md");
    assert_eq!(fs::read_to_string(soul).unwrap(), "be kind");
    assert!(harness.state_dir(agent).join("openclaw.json").is_file());

    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, RuntimeStatus::Running);
    assert_eq!(reports[0].gateway_port, Some(harness.first_port()));
    assert!(reports[0].container_id.is_some());
    assert_eq!(reports[0].ram_limit_mb, Some(2048));
}

#[tokio::test]
async fn failing_pull_fails_the_deploy_naming_the_stage() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    harness
        .runtime
        .fail_next(FakeOp::EnsureImage, "registry unreachable");

    let ack = deploy(&harness, agent).await;

    assert_eq!(ack.status, AckStatus::Failed);
    let error = ack.error.unwrap();
    assert!(
        error.starts_with(&format!("deploy agent {agent}: pulling: ")),
        "{error}"
    );
    assert!(error.contains("registry unreachable"), "{error}");
    assert_eq!(harness.runtime.count(FakeOp::CreateAndStart), 0);
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports[0].status, RuntimeStatus::Error);
    assert_eq!(reports[0].error.as_deref(), Some(error.as_str()));
}

#[tokio::test(start_paused = true)]
async fn unhealthy_agent_fails_at_health_check_after_the_timeout() {
    let harness = Harness::new(FakeServer::default(), false);
    let agent = AgentId::new_random();

    let ack = deploy(&harness, agent).await;

    let error = ack.error.unwrap();
    assert_eq!(
        error,
        format!("deploy agent {agent}: health_check: not healthy after 30s: connection refused")
    );
}

#[tokio::test]
async fn unreachable_config_fails_at_fetching_config() {
    let harness = Harness::new(FakeServer::default(), true);
    *harness.server.bundle_error.lock().unwrap() = Some(ClientError::Status {
        status: 404,
        message: "not_found: no such agent".into(),
    });
    let agent = AgentId::new_random();

    let error = deploy(&harness, agent).await.error.unwrap();

    assert!(
        error.starts_with(&format!("deploy agent {agent}: fetching_config: ")),
        "{error}"
    );
    assert!(harness.runtime.mutations().is_empty());
}

#[tokio::test]
async fn expired_bundle_is_refused() {
    let harness = Harness::new(FakeServer::default(), true);
    harness
        .server
        .expired
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let error = deploy(&harness, AgentId::new_random()).await.error.unwrap();

    assert!(
        error.contains("fetching_config: bundle for command"),
        "{error}"
    );
    assert!(error.contains("expired at"), "{error}");
    assert!(harness.runtime.mutations().is_empty());
}

#[tokio::test]
async fn bundle_that_fails_its_signature_is_refused_before_anything_runs() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    let mut deploy_command = command(CommandKind::Deploy, agent);
    // A key that is not the one the bundle was sealed with: as if the bundle had been
    // altered in transit or served for another command.
    deploy_command.session_key = Some(crate::testing::session_key(CommandId::new_random()));

    let ack = harness.executor.execute(&deploy_command).await;

    let error = ack.error.unwrap();
    assert!(error.contains("fetching_config"), "{error}");
    assert!(error.contains("signature"), "{error}");
    assert!(!error.contains("sk-ant-test"), "{error}");
    assert!(harness.runtime.mutations().is_empty());
}

#[tokio::test]
async fn replayed_bundle_is_refused() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    let deploy_command = command(CommandKind::Deploy, agent);
    let first = harness.executor.execute(&deploy_command).await;
    assert_eq!(first.status, AckStatus::Acked, "{:?}", first.error);
    let mutations = harness.runtime.mutations().len();

    // The same command's bundle a second time, bypassing the journal's executed-command
    // check, is refused by the replay guard.
    let again = harness.executor.execute(&deploy_command).await;

    let error = again.error.unwrap();
    assert!(error.contains("already"), "{error}");
    assert_eq!(harness.runtime.mutations().len(), mutations);
}

#[tokio::test]
async fn workspace_path_attack_is_refused_and_writes_nothing() {
    let files = [("SOUL.md", "fine"), ("../../escape.md", "pwned")];
    let harness = Harness::new(FakeServer::with_files(&files), true);
    let agent = AgentId::new_random();

    let ack = deploy(&harness, agent).await;

    let error = ack.error.unwrap();
    assert!(error.contains("creating: workspace path"), "{error}");
    assert!(!harness.state_dir(agent).join("workspace/SOUL.md").exists());
    assert!(!harness.dir.path().join("agents/escape.md").exists());
    assert_eq!(harness.runtime.count(FakeOp::CreateAndStart), 0);
}

#[tokio::test]
async fn symlink_planted_in_the_agent_dir_is_not_followed() {
    let harness = Harness::new(FakeServer::with_files(&[("SOUL.md", "pwned")]), true);
    let agent = AgentId::new_random();
    let outside = harness.dir.path().join("host-secret.txt");
    fs::write(&outside, "original").unwrap();
    let workspace = harness.state_dir(agent).join("workspace");
    fs::create_dir_all(&workspace).unwrap();
    std::os::unix::fs::symlink(&outside, workspace.join("SOUL.md")).unwrap();

    let ack = deploy(&harness, agent).await;

    assert_eq!(ack.status, AckStatus::Failed);
    assert!(ack.error.unwrap().contains("symlink"));
    assert_eq!(fs::read_to_string(&outside).unwrap(), "original");
}

#[tokio::test]
async fn redelivered_deploy_replaces_the_existing_container_instead_of_adding_one() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    let old = sparebox_runtime::fake::FakeRuntime::running_container(agent, "old".into(), IMAGE);
    harness.runtime.insert_container(old);

    let ack = deploy(&harness, agent).await;

    assert_eq!(ack.status, AckStatus::Acked);
    let containers = harness.runtime.containers();
    assert_eq!(containers.len(), 1);
    assert_ne!(containers[0].container_id, "old");
}

#[tokio::test]
async fn update_config_recreates_the_container_on_the_same_port() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deploy(&harness, agent).await;
    let first = harness.runtime.container(agent).unwrap().container_id;

    let update = command(CommandKind::UpdateConfig, agent);
    let ack = harness.executor.execute(&update).await;

    assert_eq!(ack.status, AckStatus::Acked, "{:?}", ack.error);
    let creates: Vec<_> = harness
        .runtime
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            FakeCall::CreateAndStart(spec) => Some(spec.gateway_port),
            _ => None,
        })
        .collect();
    assert_eq!(creates, [harness.first_port(), harness.first_port()]);
    assert_eq!(harness.runtime.count(FakeOp::Remove), 1);
    assert_ne!(
        harness.runtime.container(agent).unwrap().container_id,
        first
    );
}

#[tokio::test]
async fn update_config_for_an_unknown_agent_fails() {
    let harness = Harness::new(FakeServer::default(), true);
    let update = command(CommandKind::UpdateConfig, AgentId::new_random());
    let ack = harness.executor.execute(&update).await;
    assert!(ack.error.unwrap().contains("not deployed on this host"));
}

#[tokio::test]
async fn stopped_agent_reports_stopped_and_start_brings_it_back() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deploy(&harness, agent).await;

    let stop = harness
        .executor
        .execute(&command(CommandKind::Stop, agent))
        .await;
    assert_eq!(stop.status, AckStatus::Acked);
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports[0].status, RuntimeStatus::Stopped);
    assert!(harness
        .runtime
        .calls()
        .iter()
        .any(|c| matches!(c, FakeCall::Stop(_, grace) if grace.as_secs() == 10)));

    harness
        .executor
        .execute(&command(CommandKind::Start, agent))
        .await;
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports[0].status, RuntimeStatus::Running);
}

#[tokio::test]
async fn crashed_agent_reports_exited_with_the_oom_flag() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deploy(&harness, agent).await;
    harness
        .runtime
        .set_state(agent, ContainerState::Exited, true);

    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;

    assert_eq!(reports[0].status, RuntimeStatus::Exited);
    assert!(reports[0].oom_killed);
}

#[tokio::test]
async fn undeploy_removes_container_files_and_port() {
    let harness = Harness::new(FakeServer::with_files(&[("SOUL.md", "x")]), true);
    let agent = AgentId::new_random();
    deploy(&harness, agent).await;

    let ack = harness
        .executor
        .execute(&command(CommandKind::Undeploy, agent))
        .await;

    assert_eq!(ack.status, AckStatus::Acked);
    assert!(harness.runtime.container(agent).is_none());
    assert!(!harness
        .dir
        .path()
        .join("agents")
        .join(agent.to_string())
        .exists());
    assert!(harness.executor.state.assigned_ports().is_empty());
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert!(reports.is_empty());
}

#[tokio::test]
async fn second_agent_gets_the_next_port() {
    let harness = Harness::new(FakeServer::default(), true);
    deploy(&harness, AgentId::new_random()).await;
    deploy(&harness, AgentId::new_random()).await;
    let mut ports = harness.executor.state.assigned_ports().into_iter();
    let first = ports.next().unwrap();
    assert!(ports.next().unwrap() > first);
}

#[tokio::test]
async fn update_with_a_bad_path_leaves_the_running_agent_alone() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deploy(&harness, agent).await;
    let running = harness.runtime.container(agent).unwrap().container_id;
    *harness.server.files.lock().unwrap() = vec![sparebox_protocol::WorkspaceFile {
        path: "/etc/cron.d/evil".into(),
        content: "x".into(),
    }];

    let update = command(CommandKind::UpdateConfig, agent);
    let ack = harness.executor.execute(&update).await;

    let error = ack.error.unwrap();
    assert!(
        error.starts_with(&format!("update_config agent {agent}: creating: ")),
        "{error}"
    );
    assert_eq!(harness.runtime.count(FakeOp::Remove), 0);
    assert_eq!(
        harness.runtime.container(agent).unwrap().container_id,
        running
    );
}

/// A container that shows up while the daemon creates the agent's (the engine finishing a
/// create that a killed daemon had asked for) is replaced instead of failing the deploy.
#[tokio::test]
async fn a_container_that_appeared_during_creation_is_replaced_once() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    let spec = sparebox_runtime::AgentSpec {
        agent,
        tier: sparebox_core::Tier::Lite,
        image: IMAGE.to_owned(),
        gateway_port: harness.first_port(),
        state_dir: harness.state_dir(agent),
        env: Default::default(),
        secret_env: Default::default(),
    };
    let late =
        sparebox_runtime::fake::FakeRuntime::running_container(agent, "late".to_owned(), IMAGE);
    harness.runtime.insert_container(late);

    let created = harness.executor.create_container(&spec).await.unwrap();

    assert_ne!(created.container_id, "late");
    assert_eq!(harness.runtime.count(FakeOp::CreateAndStart), 2);
    assert_eq!(harness.runtime.count(FakeOp::Remove), 1);
    assert_eq!(harness.runtime.containers().len(), 1);

    // A creation that fails with no container in the way is not retried.
    let other = AgentId::new_random();
    harness
        .runtime
        .fail_next(FakeOp::CreateAndStart, "no space left on device");
    let err = harness
        .executor
        .create_container(&sparebox_runtime::AgentSpec {
            agent: other,
            ..spec
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(harness.runtime.count(FakeOp::CreateAndStart), 3);
}
