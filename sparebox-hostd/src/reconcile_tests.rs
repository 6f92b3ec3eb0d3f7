use std::sync::Arc;
use std::time::Duration;

use sparebox_core::{AgentId, CommandKind, Tier};
use sparebox_protocol::{AckStatus, DesiredAgent, DesiredState, RuntimeStatus};
use sparebox_runtime::fake::{FakeOp, FakeRuntime};
use sparebox_runtime::ContainerState;

use super::{Converge, Plan, Reconciler};
use crate::report::agent_reports;
use crate::testing::{command, FakeServer, Harness, IMAGE};

fn reconciler(harness: &Harness) -> Reconciler {
    Reconciler::new(
        harness.runtime.clone(),
        harness.executor.state.clone(),
        harness.executor.config.clone(),
    )
}

fn desired(agent: AgentId, state: DesiredState) -> DesiredAgent {
    DesiredAgent {
        agent_id: agent,
        tier: Tier::Standard,
        state,
        command_pending: false,
    }
}

/// A container for `agent` made by an earlier daemon, in `state`.
fn existing(harness: &Harness, agent: AgentId, state: ContainerState) {
    let mut info = FakeRuntime::running_container(agent, format!("c-{agent}"), IMAGE);
    info.state = state;
    info.memory_limit_bytes = Some(1024 * 1024 * 1024);
    harness.runtime.insert_container(info);
}

async fn deployed(harness: &Harness, agent: AgentId) {
    let ack = harness
        .executor
        .execute(&command(CommandKind::Deploy, agent))
        .await;
    assert_eq!(ack.status, AckStatus::Acked, "{:?}", ack.error);
}

#[tokio::test]
async fn container_unknown_to_the_journal_is_adopted_with_its_tier() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    existing(&harness, agent, ContainerState::Running);

    let plan = reconciler(&harness).reconcile(None).await;

    assert_eq!(plan.adopted, [agent]);
    let record = harness.executor.state.agent(agent).unwrap();
    assert_eq!(record.tier, Tier::Lite, "from the 1 GiB memory limit");
    assert!(record.gateway_port >= harness.first_port());
    assert!(!record.stopped);
    let journal = crate::journal::Journal::load(&harness.executor.config.journal_path()).unwrap();
    assert_eq!(journal.agents.len(), 1, "adoption is durable");
}

#[tokio::test]
async fn without_a_desired_state_nothing_is_started_stopped_or_removed() {
    let harness = Harness::new(FakeServer::default(), true);
    let known = AgentId::new_random();
    deployed(&harness, known).await;
    harness
        .runtime
        .set_state(known, ContainerState::Exited, false);
    existing(&harness, AgentId::new_random(), ContainerState::Running);
    let mutations = harness.runtime.mutations().len();

    let reconciler = reconciler(&harness);
    for _ in 0..3 {
        let plan = reconciler.reconcile(None).await;
        assert!(plan.steps.is_empty(), "{plan:?}");
    }

    assert_eq!(harness.runtime.mutations().len(), mutations);
}

#[tokio::test(start_paused = true)]
async fn agent_desired_running_whose_container_exited_is_started() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    existing(&harness, agent, ContainerState::Exited);
    let reconciler = reconciler(&harness);

    let plan = reconciler
        .reconcile(Some(&[desired(agent, DesiredState::Running)]))
        .await;

    assert_eq!(plan.steps, [(agent, Converge::Start)]);
    harness.executor.converge(agent, Converge::Start).await;
    assert_eq!(
        harness.runtime.container(agent).unwrap().state,
        ContainerState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn agent_desired_stopped_that_runs_is_stopped_and_reports_stopped() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    existing(&harness, agent, ContainerState::Running);
    let reconciler = reconciler(&harness);

    let plan = reconciler
        .reconcile(Some(&[desired(agent, DesiredState::Stopped)]))
        .await;

    assert_eq!(plan.adopted, [agent]);
    assert_eq!(plan.steps, [(agent, Converge::Stop)]);
    harness.executor.converge(agent, Converge::Stop).await;
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports[0].status, RuntimeStatus::Stopped);
    let again = reconciler
        .reconcile(Some(&[desired(agent, DesiredState::Stopped)]))
        .await;
    assert_eq!(again, Plan::default(), "a stopped agent stays stopped");
}

#[tokio::test(start_paused = true)]
async fn agent_with_a_command_pending_is_left_alone() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    existing(&harness, agent, ContainerState::Exited);
    let mut wanted = desired(agent, DesiredState::Running);
    wanted.command_pending = true;

    let plan = reconciler(&harness).reconcile(Some(&[wanted])).await;

    assert!(plan.steps.is_empty(), "{plan:?}");
}

#[tokio::test(start_paused = true)]
async fn agent_just_stopped_by_a_command_is_not_started_until_it_settles() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deployed(&harness, agent).await;
    let stop = command(CommandKind::Stop, agent);
    harness.executor.state.admit(&stop);
    harness.executor.run_command(stop).await;
    let reconciler = reconciler(&harness);
    // The server's list was computed before it got the stop's ack.
    let stale = [desired(agent, DesiredState::Running)];

    assert!(reconciler.reconcile(Some(&stale)).await.steps.is_empty());
    tokio::time::advance(harness.executor.config.settle).await;
    let plan = reconciler.reconcile(Some(&stale)).await;

    assert_eq!(plan.steps, [(agent, Converge::Start)]);
}

#[tokio::test(start_paused = true)]
async fn agent_busy_with_a_command_is_left_alone() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    existing(&harness, agent, ContainerState::Exited);
    harness
        .executor
        .state
        .admit(&command(CommandKind::Start, agent));

    let plan = reconciler(&harness)
        .reconcile(Some(&[desired(agent, DesiredState::Running)]))
        .await;

    assert_eq!(plan, Plan::default(), "neither adopted nor started");
}

#[tokio::test(start_paused = true)]
async fn desired_agent_without_container_is_reported_missing() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();

    let plan = reconciler(&harness)
        .reconcile(Some(&[desired(agent, DesiredState::Running)]))
        .await;

    assert!(plan.steps.is_empty());
    let reports = agent_reports(harness.runtime.as_ref(), &harness.executor.state).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].agent_id, reports[0].status),
        (agent, RuntimeStatus::Missing)
    );
}

#[tokio::test(start_paused = true)]
async fn unlisted_agent_is_removed_only_after_the_grace_period() {
    let harness = Harness::new(FakeServer::with_files(&[("SOUL.md", "x")]), true);
    let orphan = AgentId::new_random();
    deployed(&harness, orphan).await;
    let reconciler = reconciler(&harness);
    let grace = harness.executor.config.orphan_grace;
    assert_eq!(grace, Duration::from_secs(600), "ten minutes by default");

    assert!(reconciler.reconcile(Some(&[])).await.steps.is_empty());
    tokio::time::advance(grace - Duration::from_secs(1)).await;
    assert!(reconciler.reconcile(Some(&[])).await.steps.is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    let plan = reconciler.reconcile(Some(&[])).await;

    assert_eq!(plan.steps, [(orphan, Converge::Remove)]);
    harness.executor.converge(orphan, Converge::Remove).await;
    assert!(harness.runtime.container(orphan).is_none());
    assert!(
        !harness.state_dir(orphan).exists(),
        "its directory is deleted"
    );
    assert!(harness.executor.state.agent(orphan).is_none());
}

#[tokio::test(start_paused = true)]
async fn agent_listed_again_within_the_grace_period_is_kept() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    deployed(&harness, agent).await;
    tokio::time::advance(Duration::from_secs(120)).await;
    let reconciler = reconciler(&harness);
    let grace = harness.executor.config.orphan_grace;

    reconciler.reconcile(Some(&[])).await;
    tokio::time::advance(grace / 2).await;
    reconciler
        .reconcile(Some(&[desired(agent, DesiredState::Running)]))
        .await;
    tokio::time::advance(grace / 2).await;
    let plan = reconciler.reconcile(Some(&[])).await;

    assert!(plan.steps.is_empty(), "the clock started over: {plan:?}");
    assert_eq!(harness.runtime.count(FakeOp::Remove), 0);
}

#[tokio::test(start_paused = true)]
async fn reconciliation_is_rate_limited() {
    let harness = Harness::new(FakeServer::default(), true);
    let reconciler = reconciler(&harness);

    assert!(reconciler.take_turn());
    assert!(!reconciler.take_turn());
    tokio::time::advance(harness.executor.config.reconcile_interval).await;

    assert!(reconciler.take_turn());
}

#[tokio::test(start_paused = true)]
async fn failed_deploy_left_for_inspection_is_not_restarted() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = AgentId::new_random();
    harness
        .runtime
        .fail_next(FakeOp::EnsureImage, "registry unreachable");
    let ack = harness
        .executor
        .execute(&command(CommandKind::Deploy, agent))
        .await;
    assert_eq!(ack.status, AckStatus::Failed);
    existing(&harness, agent, ContainerState::Exited);

    let plan = reconciler(&harness)
        .reconcile(Some(&[desired(agent, DesiredState::Running)]))
        .await;

    assert!(plan.steps.is_empty(), "{plan:?}");
}

#[tokio::test(start_paused = true)]
async fn daemon_converges_from_the_desired_state_in_a_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(FakeRuntime::new());
    let server = Arc::new(FakeServer::default());
    let (exited, running) = (AgentId::new_random(), AgentId::new_random());
    for (agent, state) in [
        (exited, ContainerState::Exited),
        (running, ContainerState::Running),
    ] {
        let mut info = FakeRuntime::running_container(agent, format!("c-{agent}"), IMAGE);
        info.state = state;
        runtime.insert_container(info);
    }
    let mut answer = crate::testing::response(Vec::new(), Vec::new());
    answer.desired_agents = Some(vec![
        desired(exited, DesiredState::Running),
        desired(running, DesiredState::Stopped),
    ]);
    server.script(Ok(answer));

    crate::daemon::tests::run_until(
        dir.path(),
        runtime.clone(),
        server.clone(),
        Arc::new(crate::testing::Probe(true)),
        3,
    )
    .await
    .unwrap();

    assert_eq!(
        runtime.container(exited).unwrap().state,
        ContainerState::Running
    );
    assert_eq!(
        runtime.container(running).unwrap().state,
        ContainerState::Exited
    );
    let last = server.heartbeats().pop().unwrap();
    let status = |agent| {
        last.agent_statuses
            .iter()
            .find(|r| r.agent_id == agent)
            .map(|r| r.status)
    };
    assert_eq!(status(exited), Some(RuntimeStatus::Running));
    assert_eq!(status(running), Some(RuntimeStatus::Stopped));
}
