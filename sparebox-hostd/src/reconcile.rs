//! Reconciliation: bringing the agents on this host in line with what the server wants.
//!
//! The rules, applied at start-up (adoption only) and after heartbeat responses that carry
//! the server's desired state (at most every [`DaemonConfig::reconcile_interval`]):
//!
//! - **Adopt**: a container the runtime lists (label `dev.sparebox.agent-id`) that the
//!   journal does not know gets a journal record again, with the tier the server gives (or
//!   the one its memory limit matches) and a gateway port from the range.
//! - **Converge**: an agent desired `running` whose container is stopped or exited is
//!   started; one desired `stopped` that runs is stopped. An agent with a command pending
//!   on the server, queued or running here, finished here less than
//!   [`DaemonConfig::settle`] ago, or whose last command failed, is left alone.
//! - **Missing**: a desired agent with neither a record nor a container is reported
//!   `missing`. Only a deploy command brings the bundle a container needs, so the server
//!   re-queues a deploy for it.
//! - **Orphans**: a managed agent the server's list does not name is removed (container,
//!   files, record) once it has been absent for [`DaemonConfig::orphan_grace`].
//!
//! Without a list from the server (`None`) nothing but adoption happens: an old server
//! that does not send one never makes the daemon remove anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use sparebox_core::{AgentId, Tier};
use sparebox_protocol::{DesiredAgent, DesiredState};
use sparebox_runtime::{ContainerInfo, ContainerState, Runtime};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::DaemonConfig;
use crate::journal::AgentRecord;
use crate::ports;
use crate::state::{Phase, SharedState};

/// A step the reconciler takes on one agent, carried out in the agent's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Converge {
    /// Start its stopped or exited container.
    Start,
    /// Stop its running container.
    Stop,
    /// Remove its container and files and forget it.
    Remove,
}

/// What one reconciliation found and decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Agents whose containers were adopted into the journal.
    pub adopted: Vec<AgentId>,
    /// Steps to take, one per agent at most.
    pub steps: Vec<(AgentId, Converge)>,
}

/// Compares the runtime's containers, the journal and the server's desired state.
pub(crate) struct Reconciler {
    runtime: Arc<dyn Runtime>,
    state: SharedState,
    config: Arc<DaemonConfig>,
    /// Managed agents the server's list does not name, and since when (tokio clock).
    orphans: Mutex<HashMap<AgentId, Instant>>,
    last_run: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Reconciler {
    pub fn new(runtime: Arc<dyn Runtime>, state: SharedState, config: Arc<DaemonConfig>) -> Self {
        Self {
            runtime,
            state,
            config,
            orphans: Mutex::new(HashMap::new()),
            last_run: Mutex::new(None),
        }
    }

    /// Whether a reconciliation against a desired state may run now (rate limit); when it
    /// may, the time is taken.
    pub fn take_turn(&self) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.last_run);
        match *last {
            Some(at) if now.duration_since(at) < self.config.reconcile_interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// One reconciliation. `desired` is the server's list, or `None` when it sent none
    /// (then only adoption happens). Adoptions are written to the journal here; the
    /// returned steps are for the caller to queue.
    pub async fn reconcile(&self, desired: Option<&[DesiredAgent]>) -> Plan {
        let containers = match self.runtime.list().await {
            Ok(containers) => containers,
            Err(err) => {
                warn!(error = %err, "cannot list containers; reconciling later");
                return Plan::default();
            }
        };
        let containers: BTreeMap<AgentId, ContainerInfo> =
            containers.into_iter().map(|c| (c.agent, c)).collect();
        let wanted: Option<BTreeMap<AgentId, &DesiredAgent>> =
            desired.map(|list| list.iter().map(|d| (d.agent_id, d)).collect());

        let adopted = self.adopt(&containers, wanted.as_ref()).await;
        let Some(wanted) = wanted else {
            return Plan {
                adopted,
                steps: Vec::new(),
            };
        };
        let mut steps = self.converge(&containers, &wanted);
        steps.extend(self.orphans(&containers, &wanted));
        Plan { adopted, steps }
    }

    /// Records containers the journal does not know.
    async fn adopt(
        &self,
        containers: &BTreeMap<AgentId, ContainerInfo>,
        wanted: Option<&BTreeMap<AgentId, &DesiredAgent>>,
    ) -> Vec<AgentId> {
        let mut adopted = Vec::new();
        for (agent, container) in containers {
            if self.state.agent(*agent).is_some() || self.state.is_agent_busy(*agent) {
                continue;
            }
            let desired = wanted.and_then(|w| w.get(agent));
            let tier = desired
                .map(|d| d.tier)
                .or_else(|| tier_of(container))
                .unwrap_or(Tier::Lite);
            let assigned = self.state.assigned_ports();
            let start = self.config.port_range_start;
            let len = self.config.port_range_len;
            let spacing = self.config.port_spacing;
            let Some(port) = tokio::task::spawn_blocking(move || {
                ports::allocate(start, len, spacing, &assigned)
            })
            .await
            .ok()
            .flatten() else {
                warn!(agent.id = %agent, "no free gateway port to record for a found container");
                continue;
            };
            let stopped = desired.is_some_and(|d| d.state == DesiredState::Stopped);
            self.state.put_agent(AgentRecord {
                agent_id: *agent,
                gateway_port: port,
                tier,
                stopped,
            });
            info!(agent.id = %agent, container.id = %container.container_id, agent.tier = tier.as_str(),
                  gateway.port = port, "adopted a container the journal did not know");
            adopted.push(*agent);
        }
        if !adopted.is_empty() {
            if let Err(err) = self.state.persist().await {
                error!(error = %err, "could not write the journal");
            }
        }
        adopted
    }

    /// Whether the reconciler must leave `agent` alone for now.
    fn hands_off(&self, agent: AgentId) -> bool {
        if self.state.is_agent_busy(agent) {
            return true;
        }
        if matches!(self.state.phases().get(&agent), Some(Phase::Failed(_))) {
            return true;
        }
        self.state
            .last_command(agent)
            .is_some_and(|at| at.elapsed() < self.config.settle)
    }

    /// Start and stop steps, and the set of desired agents missing entirely.
    fn converge(
        &self,
        containers: &BTreeMap<AgentId, ContainerInfo>,
        wanted: &BTreeMap<AgentId, &DesiredAgent>,
    ) -> Vec<(AgentId, Converge)> {
        let mut steps = Vec::new();
        let mut missing = BTreeSet::new();
        for (agent, desired) in wanted {
            let agent = *agent;
            if desired.command_pending || self.hands_off(agent) {
                continue;
            }
            let Some(container) = containers.get(&agent) else {
                if self.state.agent(agent).is_none() {
                    missing.insert(agent);
                }
                continue;
            };
            let running = matches!(
                container.state,
                ContainerState::Running | ContainerState::Restarting
            );
            match desired.state {
                DesiredState::Running if !running && container.state != ContainerState::Other => {
                    info!(agent.id = %agent, "agent should run but does not; starting it");
                    steps.push((agent, Converge::Start));
                }
                DesiredState::Stopped if running => {
                    info!(agent.id = %agent, "agent was stopped by its deployer but runs; stopping it");
                    steps.push((agent, Converge::Stop));
                }
                DesiredState::Stopped => {
                    self.state.update_agent(agent, |r| r.stopped = true);
                }
                DesiredState::Running => {}
            }
        }
        if !missing.is_empty() {
            debug!(agents = missing.len(), "desired agents with no container");
        }
        self.state.set_missing(missing);
        steps
    }

    /// Remove steps for managed agents the server has not listed for the grace period.
    fn orphans(
        &self,
        containers: &BTreeMap<AgentId, ContainerInfo>,
        wanted: &BTreeMap<AgentId, &DesiredAgent>,
    ) -> Vec<(AgentId, Converge)> {
        let now = Instant::now();
        let managed: BTreeSet<AgentId> = containers
            .keys()
            .copied()
            .chain(self.state.agents().into_iter().map(|r| r.agent_id))
            .filter(|agent| !wanted.contains_key(agent))
            .collect();
        let mut orphans = lock(&self.orphans);
        orphans.retain(|agent, _| managed.contains(agent));
        let mut steps = Vec::new();
        for agent in managed {
            if self.state.is_agent_busy(agent) {
                continue;
            }
            let since = *orphans.entry(agent).or_insert_with(|| {
                warn!(agent.id = %agent, grace = ?self.config.orphan_grace,
                      "the server no longer lists this agent; removing it after the grace period");
                now
            });
            if now.duration_since(since) >= self.config.orphan_grace {
                info!(agent.id = %agent, "removing an agent the server no longer lists");
                orphans.remove(&agent);
                steps.push((agent, Converge::Remove));
            }
        }
        steps
    }
}

/// The tier whose memory matches the container's applied limit.
fn tier_of(container: &ContainerInfo) -> Option<Tier> {
    let limit = container.memory_limit_bytes?;
    Tier::ALL
        .into_iter()
        .find(|tier| tier.resources().ram_mb * 1024 * 1024 == limit)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
