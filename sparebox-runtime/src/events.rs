//! Lifecycle events of managed agents, as a runtime observes them.
//!
//! [`crate::Runtime::events`] yields these for every agent the runtime manages, as they
//! happen; it does not replay the past. A caller that starts listening late, or whose
//! stream ended (the engine restarted), should reconcile with [`crate::Runtime::list`]
//! and subscribe again.

use chrono::{DateTime, Utc};
use sparebox_core::AgentId;

/// One thing that happened to an agent's container or process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// The agent it happened to.
    pub agent: AgentId,
    /// What happened.
    pub kind: RuntimeEventKind,
    /// When the runtime says it happened.
    pub at: DateTime<Utc>,
}

/// What happened to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeEventKind {
    /// It was started on request (create, start, restart).
    Started,
    /// It was started again by the runtime after it died on its own (restart policy,
    /// crash backoff).
    Restarted {
        /// How many times the runtime has restarted it so far.
        restart_count: u32,
    },
    /// Its main process ended, on request or on its own.
    Died {
        /// The exit code, when the runtime knows it.
        exit_code: Option<i64>,
        /// Whether the engine says the exit was an out-of-memory kill (its `OOMKilled` flag,
        /// never inferred from exit code 137).
        oom_killed: bool,
    },
    /// The kernel killed a process of the agent for exceeding its memory limit (the
    /// engine's `oom` event), or the profile runtime's watchdog killed it for the same
    /// reason. The agent may keep running when the victim was not its main process.
    OomKilled,
    /// The runtime gave up restarting it after repeated quick failures.
    CrashLoop {
        /// Consecutive quick failures seen.
        failures: u32,
    },
}
