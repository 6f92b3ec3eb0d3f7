//! Upgrades and logs against the recording fake runtime.

use std::sync::Arc;

use async_trait::async_trait;
use sparebox_core::{AgentId, CommandKind};
use sparebox_protocol::{AckStatus, CommandParams};
use sparebox_runtime::fake::{FakeCall, FakeRuntime};

use crate::health::HealthProbe;
use crate::testing::{command, FakeServer, Harness, IMAGE};

const BROKEN: &str = "ghcr.io/openclaw/openclaw:broken";
const NEXT: &str = "ghcr.io/openclaw/openclaw:next";

/// Healthy unless some container runs [`BROKEN`].
struct HealthyUnlessBroken(Arc<FakeRuntime>);

#[async_trait]
impl HealthProbe for HealthyUnlessBroken {
    async fn probe(&self, _port: u16) -> Result<(), String> {
        match self.0.containers().iter().any(|c| c.image == BROKEN) {
            true => Err("not healthy yet (status 503)".to_owned()),
            false => Ok(()),
        }
    }
}

async fn deployed() -> (Harness, AgentId) {
    let mut harness = Harness::new(FakeServer::default(), true);
    harness.executor.health = Arc::new(HealthyUnlessBroken(harness.runtime.clone()));
    let mut config = (*harness.executor.config).clone();
    config.upgrade_health_timeout = std::time::Duration::from_secs(2);
    config.health_poll_interval = std::time::Duration::from_millis(50);
    harness.executor.config = Arc::new(config);
    let agent = AgentId::new_random();
    let deploy = command(CommandKind::Deploy, agent);
    assert_eq!(
        harness.executor.execute(&deploy).await.status,
        AckStatus::Acked
    );
    (harness, agent)
}

async fn upgrade_to(
    harness: &Harness,
    agent: AgentId,
    image: &str,
) -> sparebox_protocol::CommandAck {
    *harness.server.image.lock().unwrap() = Some(image.to_owned());
    harness
        .executor
        .execute(&command(CommandKind::Upgrade, agent))
        .await
}

#[tokio::test]
async fn upgrade_to_a_healthy_image_keeps_it_with_the_same_port_and_secrets() {
    let (harness, agent) = deployed().await;

    let ack = upgrade_to(&harness, agent, NEXT).await;

    assert_eq!((ack.status, ack.error.as_deref()), (AckStatus::Acked, None));
    assert_eq!(harness.runtime.container(agent).unwrap().image, NEXT);
    let created: Vec<_> = harness
        .runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::CreateAndStart(spec) => Some(spec),
            _ => None,
        })
        .collect();
    let (first, last) = (created.first().unwrap(), created.last().unwrap());
    assert_eq!(
        created.len(),
        2,
        "the deploy's container, then the upgrade's"
    );
    assert_eq!(last.gateway_port, first.gateway_port);
    assert_eq!(last.secret_env["ANTHROPIC_API_KEY"].expose(), "sk-ant-test");
    assert_eq!(last.state_dir, harness.state_dir(agent));
}

#[tokio::test]
async fn upgrade_to_an_unhealthy_image_goes_back_and_fails_without_marking_the_agent() {
    let (harness, agent) = deployed().await;

    let ack = upgrade_to(&harness, agent, BROKEN).await;

    assert_eq!(ack.status, AckStatus::Failed);
    let error = ack.error.unwrap();
    assert!(
        error.contains(&format!("rolled back to {IMAGE}")),
        "{error}"
    );
    assert!(error.contains("not healthy after 2s"), "{error}");
    assert_eq!(harness.runtime.container(agent).unwrap().image, IMAGE);
    assert_eq!(harness.executor.state.phases().get(&agent), None);
}

#[tokio::test]
async fn upgrade_of_an_agent_that_exits_on_the_new_image_fails_early() {
    let (harness, agent) = deployed().await;
    let runtime = harness.runtime.clone();
    // The new container dies right after it starts, as OpenClaw does on a config it
    // refuses; the probe never succeeds on it.
    let watcher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if runtime.container(agent).is_some_and(|c| c.image == BROKEN) {
                runtime.set_state(agent, sparebox_runtime::ContainerState::Exited, false);
                return;
            }
        }
    });

    let ack = upgrade_to(&harness, agent, BROKEN).await;
    watcher.await.unwrap();

    let error = ack.error.unwrap();
    assert!(error.contains("its container exited"), "{error}");
    assert_eq!(harness.runtime.container(agent).unwrap().image, IMAGE);
}

#[tokio::test]
async fn logs_are_redacted_capped_and_uploaded_before_the_ack() {
    let (harness, agent) = deployed().await;
    harness.runtime.set_logs(
        agent,
        "old line\nkey is sk-ant-test here\nnewest line\n"
            .as_bytes()
            .to_vec(),
    );
    let mut logs = command(CommandKind::Logs, agent);
    logs.params = Some(CommandParams::logs(2, None, 1024).unwrap());

    let ack = harness.executor.execute(&logs).await;

    assert_eq!((ack.status, ack.error.as_deref()), (AckStatus::Acked, None));
    let uploaded = harness.server.uploaded_logs.lock().unwrap().clone();
    assert_eq!(
        uploaded,
        [(
            logs.id,
            "key is [redacted] here\nnewest line\n".to_owned(),
            false
        )]
    );

    logs.id = sparebox_core::CommandId::new_random();
    logs.params = Some(CommandParams::logs(5, None, 12).unwrap());
    harness.executor.execute(&logs).await;
    let (_, text, truncated) = harness.server.uploaded_logs.lock().unwrap()[1].clone();
    assert_eq!((text.as_str(), truncated), ("newest line\n", true));
}

#[tokio::test]
async fn logs_without_parameters_or_out_of_bounds_fail() {
    let (harness, agent) = deployed().await;
    let mut logs = command(CommandKind::Logs, agent);
    let ack = harness.executor.execute(&logs).await;
    assert!(ack.error.unwrap().contains("no logs parameters"));
    logs.id = sparebox_core::CommandId::new_random();
    logs.params = Some(CommandParams::Logs {
        tail_lines: 1_000_000,
        since_seconds: None,
        max_bytes: 10,
    });
    let ack = harness.executor.execute(&logs).await;
    assert!(ack.error.unwrap().contains("tailLines"));
    assert!(harness.server.uploaded_logs.lock().unwrap().is_empty());
}
