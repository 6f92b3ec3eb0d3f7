//! The daemon's shared state: managed agents, their transient phase, and acks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use sparebox_core::{AgentId, CommandId, DeployStage};
use sparebox_protocol::{AgentEventReport, Command, CommandAck};
use tokio::time::Instant;

use crate::journal::{
    AgentRecord, InFlightCommand, Journal, JournalError, EVENTS_CAPACITY, EXECUTED_CAPACITY,
    JOURNAL_VERSION,
};

/// What is happening to an agent right now, beyond what its container shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A deploy or configuration update is at this stage.
    Deploying(DeployStage),
    /// The last command on the agent failed with this message.
    Failed(String),
}

/// What a dispatched command turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// New: run it.
    Run,
    /// Already executed: its ack was queued again.
    Reacked,
    /// Queued or running already: nothing to do.
    InFlight,
}

#[derive(Debug)]
struct Inner {
    journal: Journal,
    phases: BTreeMap<AgentId, Phase>,
    in_flight: HashMap<CommandId, AgentId>,
    /// Desired agents with neither a record nor a container, reported as missing.
    missing: BTreeSet<AgentId>,
    /// When a command on the agent last finished, by the tokio clock.
    last_command: HashMap<AgentId, Instant>,
    /// Agents the reconciler has queued work for and not finished.
    converging: BTreeSet<AgentId>,
}

/// The state shared by the heartbeat loop and the command workers. Cloning shares it.
///
/// The lock is only held for short, synchronous updates, never across an await; the
/// journal is written by [`SharedState::persist`], one writer at a time.
#[derive(Debug, Clone)]
pub struct SharedState {
    inner: Arc<Mutex<Inner>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    path: PathBuf,
}

impl SharedState {
    /// State starting from `journal`, persisted to `path`.
    ///
    /// Commands the journal lists as in flight count as queued: the daemon resumes them.
    pub fn new(mut journal: Journal, path: PathBuf) -> Self {
        journal.version = JOURNAL_VERSION;
        let in_flight = journal
            .in_flight
            .iter()
            .map(|command| (command.id, command.agent_id))
            .collect();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                journal,
                phases: BTreeMap::new(),
                in_flight,
                missing: BTreeSet::new(),
                last_command: HashMap::new(),
                converging: BTreeSet::new(),
            })),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            path,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a single assignment or push, so a panic elsewhere cannot leave the
        // state half-changed; keep going with it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the journal as it is now.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when the write fails; the state in memory is unchanged.
    pub async fn persist(&self) -> Result<(), JournalError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.lock().journal.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || snapshot.save(&path))
            .await
            .unwrap_or_else(|join| {
                Err(JournalError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(join.to_string()),
                })
            })
    }

    /// Decides what to do with a command the server delivered. A command to run is
    /// recorded as in flight in the journal (written by the caller's next
    /// [`SharedState::persist`]).
    pub fn admit(&self, command: &Command) -> Admission {
        let id = command.id;
        let mut inner = self.lock();
        if inner.in_flight.contains_key(&id) {
            return Admission::InFlight;
        }
        let done = inner
            .journal
            .executed
            .iter()
            .find(|ack| ack.id == id)
            .cloned();
        match done {
            Some(ack) => {
                if !inner.journal.pending_acks.iter().any(|a| a.id == id) {
                    inner.journal.pending_acks.push(ack);
                }
                Admission::Reacked
            }
            None => {
                inner.in_flight.insert(id, command.agent_id);
                inner.journal.in_flight.push(InFlightCommand::new(command));
                Admission::Run
            }
        }
    }

    /// Records a finished command: remembered as executed, queued for the next heartbeat.
    pub fn finish(&self, ack: CommandAck) {
        let mut inner = self.lock();
        if let Some(agent) = inner.in_flight.remove(&ack.id) {
            inner.last_command.insert(agent, Instant::now());
        }
        let journal = &mut inner.journal;
        journal.in_flight.retain(|command| command.id != ack.id);
        journal.executed.retain(|done| done.id != ack.id);
        journal.executed.push_back(ack.clone());
        while journal.executed.len() > EXECUTED_CAPACITY {
            journal.executed.pop_front();
        }
        journal.pending_acks.retain(|pending| pending.id != ack.id);
        journal.pending_acks.push(ack);
    }

    /// Records that the in-flight command `id` reached `stage` (persisted by the caller).
    pub fn record_stage(&self, id: CommandId, stage: DeployStage) {
        let mut inner = self.lock();
        if let Some(command) = inner.journal.in_flight.iter_mut().find(|c| c.id == id) {
            command.stage = Some(stage);
        }
    }

    /// Commands started and not finished, as the journal has them.
    pub fn in_flight_commands(&self) -> Vec<InFlightCommand> {
        self.lock().journal.in_flight.clone()
    }

    /// Whether a command for `agent` is queued or running, or the reconciler is acting
    /// on it.
    pub fn is_agent_busy(&self, agent: AgentId) -> bool {
        let inner = self.lock();
        inner.converging.contains(&agent) || inner.in_flight.values().any(|a| *a == agent)
    }

    /// Marks `agent` as being acted on by the reconciler (`true`) or done (`false`).
    /// Returns false when it was already marked.
    pub fn set_converging(&self, agent: AgentId, on: bool) -> bool {
        let mut inner = self.lock();
        if on {
            inner.converging.insert(agent)
        } else {
            inner.converging.remove(&agent)
        }
    }

    /// When a command on `agent` last finished, if one did since the daemon started.
    pub fn last_command(&self, agent: AgentId) -> Option<Instant> {
        self.lock().last_command.get(&agent).copied()
    }

    /// Replaces the set of desired agents that have neither a record nor a container.
    pub fn set_missing(&self, missing: BTreeSet<AgentId>) {
        self.lock().missing = missing;
    }

    /// Desired agents that have neither a record nor a container.
    pub fn missing(&self) -> BTreeSet<AgentId> {
        self.lock().missing.clone()
    }

    /// Forgets acks the server confirmed. Returns whether any was forgotten.
    pub fn confirm(&self, confirmed: &[CommandId]) -> bool {
        let confirmed: BTreeSet<_> = confirmed.iter().collect();
        let mut inner = self.lock();
        let before = inner.journal.pending_acks.len();
        inner
            .journal
            .pending_acks
            .retain(|ack| !confirmed.contains(&ack.id));
        inner.journal.pending_acks.len() != before
    }

    /// Queues an engine event for the next heartbeats, dropping the oldest beyond
    /// [`EVENTS_CAPACITY`].
    pub fn push_event(&self, event: AgentEventReport) {
        let mut inner = self.lock();
        let events = &mut inner.journal.pending_events;
        events.push(event);
        let excess = events.len().saturating_sub(EVENTS_CAPACITY);
        events.drain(..excess);
    }

    /// Engine events not yet delivered.
    pub fn pending_events(&self) -> Vec<AgentEventReport> {
        self.lock().journal.pending_events.clone()
    }

    /// Forgets events a heartbeat the server answered carried. Returns whether any was
    /// forgotten.
    pub fn confirm_events(&self, delivered: &[AgentEventReport]) -> bool {
        let mut inner = self.lock();
        let before = inner.journal.pending_events.len();
        inner
            .journal
            .pending_events
            .retain(|event| !delivered.contains(event));
        inner.journal.pending_events.len() != before
    }

    /// Acks not yet confirmed.
    pub fn pending_acks(&self) -> Vec<CommandAck> {
        self.lock().journal.pending_acks.clone()
    }

    /// Whether a command is queued or running.
    pub fn is_busy(&self) -> bool {
        !self.lock().in_flight.is_empty()
    }

    /// The agent's record, if the daemon manages it.
    pub fn agent(&self, agent: AgentId) -> Option<AgentRecord> {
        let inner = self.lock();
        inner
            .journal
            .agents
            .iter()
            .find(|record| record.agent_id == agent)
            .cloned()
    }

    /// Every managed agent.
    pub fn agents(&self) -> Vec<AgentRecord> {
        self.lock().journal.agents.clone()
    }

    /// Adds or replaces the agent's record.
    pub fn put_agent(&self, record: AgentRecord) {
        let mut inner = self.lock();
        let agents = &mut inner.journal.agents;
        agents.retain(|existing| existing.agent_id != record.agent_id);
        agents.push(record);
    }

    /// Changes the agent's record, if it has one.
    pub fn update_agent(&self, agent: AgentId, change: impl FnOnce(&mut AgentRecord)) {
        let mut inner = self.lock();
        if let Some(record) = inner
            .journal
            .agents
            .iter_mut()
            .find(|record| record.agent_id == agent)
        {
            change(record);
        }
    }

    /// Forgets the agent: its record, port and phase.
    pub fn forget_agent(&self, agent: AgentId) {
        let mut inner = self.lock();
        inner
            .journal
            .agents
            .retain(|record| record.agent_id != agent);
        inner.phases.remove(&agent);
    }

    /// Ports assigned to managed agents.
    pub fn assigned_ports(&self) -> BTreeSet<u16> {
        let inner = self.lock();
        inner
            .journal
            .agents
            .iter()
            .map(|r| r.gateway_port)
            .collect()
    }

    /// Sets or clears the agent's transient phase.
    pub fn set_phase(&self, agent: AgentId, phase: Option<Phase>) {
        let mut inner = self.lock();
        match phase {
            Some(phase) => inner.phases.insert(agent, phase),
            None => inner.phases.remove(&agent),
        };
    }

    /// Every agent with a phase.
    pub fn phases(&self) -> BTreeMap<AgentId, Phase> {
        self.lock().phases.clone()
    }
}

#[cfg(test)]
mod tests {
    use sparebox_protocol::AckStatus;

    use super::*;

    fn acked(id: CommandId) -> CommandAck {
        CommandAck {
            id,
            status: AckStatus::Acked,
            error: None,
        }
    }

    fn state() -> SharedState {
        SharedState::new(
            Journal::default(),
            PathBuf::from("/nonexistent/journal.json"),
        )
    }

    fn stop_command() -> Command {
        Command {
            id: CommandId::new_random(),
            agent_id: AgentId::new_random(),
            kind: sparebox_core::CommandKind::Stop,
            tier: sparebox_core::Tier::Lite,
            created_at: chrono::Utc::now(),
            session_key: None,
            params: None,
        }
    }

    #[test]
    fn executed_command_is_reacked_not_rerun() {
        let state = state();
        let command = stop_command();
        let id = command.id;
        assert_eq!(state.admit(&command), Admission::Run);
        assert_eq!(state.in_flight_commands().len(), 1);
        assert!(state.is_agent_busy(command.agent_id));
        assert_eq!(state.admit(&command), Admission::InFlight);
        state.finish(acked(id));
        assert!(state.in_flight_commands().is_empty());
        assert!(!state.is_agent_busy(command.agent_id));
        assert!(state.confirm(&[id]));
        assert!(state.pending_acks().is_empty());
        assert_eq!(state.admit(&command), Admission::Reacked);
        assert_eq!(state.pending_acks(), vec![acked(id)]);
    }

    #[test]
    fn ack_stays_pending_until_confirmed() {
        let state = state();
        let (a, b) = (stop_command(), stop_command());
        state.admit(&a);
        state.admit(&b);
        let (a, b) = (a.id, b.id);
        state.finish(acked(a));
        state.finish(acked(b));
        assert!(!state.confirm(&[CommandId::new_random()]));
        assert_eq!(state.pending_acks().len(), 2);
        state.confirm(&[a]);
        assert_eq!(state.pending_acks(), vec![acked(b)]);
    }

    #[test]
    fn executed_memory_is_bounded() {
        let state = state();
        let first = stop_command();
        state.finish(acked(first.id));
        for _ in 0..EXECUTED_CAPACITY {
            state.finish(acked(CommandId::new_random()));
        }
        assert_eq!(state.admit(&first), Admission::Run);
    }
}
