//! Turning the runtime's lifecycle events into reports for the server.
//!
//! A task follows [`Runtime::events`] and queues each started, died, OOM-killed or
//! restarted event in the journal; heartbeats carry them until one is answered. When the
//! stream ends (the engine restarted or went away) it subscribes again after a growing
//! pause, from 1 s up to a minute; events in between are lost, but the status reports
//! (restart count, OOM flag, state) still show what happened.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sparebox_protocol::{AgentEventKind, AgentEventReport};
use sparebox_runtime::{Runtime, RuntimeEvent, RuntimeEventKind};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::state::SharedState;

/// The report for `event`, or `None` for kinds the protocol does not carry (a crash loop
/// shows in the status report instead).
pub(crate) fn report(event: &RuntimeEvent) -> Option<AgentEventReport> {
    let (kind, exit_code) = match event.kind {
        RuntimeEventKind::Started => (AgentEventKind::Started, None),
        RuntimeEventKind::Restarted { .. } => (AgentEventKind::Restarted, None),
        RuntimeEventKind::Died {
            exit_code,
            oom_killed: true,
        } => (AgentEventKind::OomKilled, exit_code),
        RuntimeEventKind::Died { exit_code, .. } => (AgentEventKind::Died, exit_code),
        RuntimeEventKind::OomKilled => (AgentEventKind::OomKilled, None),
        RuntimeEventKind::CrashLoop { .. } => return None,
    };
    Some(AgentEventReport {
        agent_id: event.agent,
        kind,
        at: event.at,
        exit_code,
    })
}

/// Follows the runtime's events for as long as the task lives.
pub(crate) async fn follow(runtime: Arc<dyn Runtime>, state: SharedState) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let mut stream = runtime.events();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    backoff.reset();
                    let Some(report) = report(&event) else {
                        continue;
                    };
                    info!(agent.id = %event.agent, event = ?report.kind, exit_code = ?report.exit_code, "agent event");
                    state.push_event(report);
                    if let Err(err) = state.persist().await {
                        error!(error = %err, "could not write the journal");
                    }
                }
                Err(err) => debug!(error = %err, "engine event stream hiccup"),
            }
        }
        let pause = backoff.next_delay();
        if backoff.failures() == 2 {
            warn!(retry_in = ?pause, "engine event stream ended; subscribing again");
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sparebox_core::AgentId;

    use super::*;

    fn event(kind: RuntimeEventKind) -> RuntimeEvent {
        RuntimeEvent {
            agent: AgentId::new_random(),
            kind,
            at: Utc::now(),
        }
    }

    #[test]
    fn oom_comes_from_the_engine_flag_not_the_exit_code() {
        let oom = report(&event(RuntimeEventKind::Died {
            exit_code: Some(137),
            oom_killed: true,
        }))
        .unwrap();
        assert_eq!(
            (oom.kind, oom.exit_code),
            (AgentEventKind::OomKilled, Some(137))
        );
        let killed = report(&event(RuntimeEventKind::Died {
            exit_code: Some(137),
            oom_killed: false,
        }))
        .unwrap();
        assert_eq!(killed.kind, AgentEventKind::Died);
    }

    #[test]
    fn restarts_and_starts_are_reported_and_crash_loops_are_not() {
        let restarted = event(RuntimeEventKind::Restarted { restart_count: 3 });
        assert_eq!(report(&restarted).unwrap().kind, AgentEventKind::Restarted);
        assert_eq!(
            report(&event(RuntimeEventKind::Started)).unwrap().kind,
            AgentEventKind::Started
        );
        assert!(report(&event(RuntimeEventKind::CrashLoop { failures: 5 })).is_none());
    }
}
