//! The daemon's shared state: managed agents, their transient phase, and acks.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use sparebox_core::{AgentId, CommandId, DeployStage};
use sparebox_protocol::CommandAck;

use crate::journal::{AgentRecord, Journal, JournalError, EXECUTED_CAPACITY, JOURNAL_VERSION};

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
    in_flight: HashSet<CommandId>,
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
    pub fn new(mut journal: Journal, path: PathBuf) -> Self {
        journal.version = JOURNAL_VERSION;
        Self {
            inner: Arc::new(Mutex::new(Inner {
                journal,
                phases: BTreeMap::new(),
                in_flight: HashSet::new(),
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

    /// Decides what to do with a command the server delivered.
    pub fn admit(&self, id: CommandId) -> Admission {
        let mut inner = self.lock();
        if inner.in_flight.contains(&id) {
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
                inner.in_flight.insert(id);
                Admission::Run
            }
        }
    }

    /// Records a finished command: remembered as executed, queued for the next heartbeat.
    pub fn finish(&self, ack: CommandAck) {
        let mut inner = self.lock();
        inner.in_flight.remove(&ack.id);
        let journal = &mut inner.journal;
        journal.executed.retain(|done| done.id != ack.id);
        journal.executed.push_back(ack.clone());
        while journal.executed.len() > EXECUTED_CAPACITY {
            journal.executed.pop_front();
        }
        journal.pending_acks.retain(|pending| pending.id != ack.id);
        journal.pending_acks.push(ack);
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

    #[test]
    fn executed_command_is_reacked_not_rerun() {
        let state = state();
        let id = CommandId::new_random();
        assert_eq!(state.admit(id), Admission::Run);
        assert_eq!(state.admit(id), Admission::InFlight);
        state.finish(acked(id));
        assert!(state.confirm(&[id]));
        assert!(state.pending_acks().is_empty());
        assert_eq!(state.admit(id), Admission::Reacked);
        assert_eq!(state.pending_acks(), vec![acked(id)]);
    }

    #[test]
    fn ack_stays_pending_until_confirmed() {
        let state = state();
        let (a, b) = (CommandId::new_random(), CommandId::new_random());
        state.admit(a);
        state.admit(b);
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
        let first = CommandId::new_random();
        state.finish(acked(first));
        for _ in 0..EXECUTED_CAPACITY {
            state.finish(acked(CommandId::new_random()));
        }
        assert_eq!(state.admit(first), Admission::Run);
    }
}
