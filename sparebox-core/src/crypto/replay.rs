//! Refusing a bundle the daemon has already accepted once.
//!
//! A [`ReplayGuard`] remembers the command ids of accepted bundles until those bundles
//! expire (plus [`MAX_CLOCK_SKEW_SECS`], so a clock stepping back a little cannot revive
//! one). After that [`SignedBundle::verify`](super::SignedBundle::verify) refuses them
//! anyway, so forgetting them is safe. The guard lives in memory: after a daemon restart
//! it is empty, and the daemon's own record of executed commands has to take over.
//!
//! A replay is not always an attack: the server re-delivers a command whose ack it did
//! not receive, with the same command id. The daemon should answer such a re-delivery
//! with the result it already has rather than apply the bundle twice.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;

use super::bundle::MAX_CLOCK_SKEW_SECS;
use crate::CommandId;

/// Remembers accepted command ids, at most `capacity` at a time.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    seen: HashMap<CommandId, DateTime<Utc>>,
    capacity: usize,
}

impl ReplayGuard {
    /// The default capacity: far more bundles than a host receives within one
    /// bundle lifetime.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A guard that remembers at most `capacity` unexpired commands (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `command` as used until `expires_at`, or refuses it if already used.
    /// Call it after [`SignedBundle::verify`](super::SignedBundle::verify) succeeded and
    /// before acting on the bundle.
    ///
    /// # Errors
    ///
    /// [`ReplayError::Replayed`] for a command seen before, or [`ReplayError::Full`] when
    /// `capacity` unexpired commands are remembered already (the command is refused
    /// rather than forgetting one that could still be replayed).
    pub fn admit(
        &mut self,
        command: CommandId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ReplayError> {
        if self.seen.contains_key(&command) {
            return Err(ReplayError::Replayed(command));
        }
        if self.seen.len() >= self.capacity {
            self.forget_expired(now);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full {
                capacity: self.capacity,
            });
        }
        self.seen.insert(command, expires_at);
        Ok(())
    }

    /// Whether `command` is remembered.
    pub fn contains(&self, command: CommandId) -> bool {
        self.seen.contains_key(&command)
    }

    /// How many commands are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no command is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets commands whose bundles can no longer verify at `now`.
    pub fn forget_expired(&mut self, now: DateTime<Utc>) {
        let cutoff = now - Duration::seconds(MAX_CLOCK_SKEW_SECS);
        self.seen.retain(|_, expires_at| *expires_at > cutoff);
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// Why [`ReplayGuard::admit`] refused a command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The command's bundle was accepted before.
    #[error("bundle for command {0} was already used")]
    Replayed(CommandId),
    /// Too many unexpired commands are remembered.
    #[error("replay guard is full ({capacity} unexpired commands)")]
    Full {
        /// The guard's capacity.
        capacity: usize,
    },
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn replayed_command_is_refused() {
        let mut guard = ReplayGuard::default();
        let command = CommandId::new_random();
        guard.admit(command, t(300), t(0)).unwrap();
        assert_eq!(
            guard.admit(command, t(300), t(1)),
            Err(ReplayError::Replayed(command))
        );
    }

    #[test]
    fn expired_entries_are_forgotten_only_when_room_is_needed() {
        let mut guard = ReplayGuard::new(2);
        let first = CommandId::new_random();
        guard.admit(first, t(10), t(0)).unwrap();
        guard.admit(CommandId::new_random(), t(500), t(0)).unwrap();
        assert!(guard.contains(first));

        let late = t(10 + MAX_CLOCK_SKEW_SECS + 1);
        guard.admit(CommandId::new_random(), t(900), late).unwrap();
        assert!(!guard.contains(first));
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn full_guard_refuses_rather_than_forgets_live_commands() {
        let mut guard = ReplayGuard::new(1);
        let live = CommandId::new_random();
        guard.admit(live, t(300), t(0)).unwrap();
        let err = guard
            .admit(CommandId::new_random(), t(300), t(1))
            .unwrap_err();
        assert_eq!(err, ReplayError::Full { capacity: 1 });
        assert!(guard.contains(live));
    }

    #[test]
    fn entries_outlive_expiry_by_the_clock_skew() {
        let mut guard = ReplayGuard::new(1);
        let command = CommandId::new_random();
        guard.admit(command, t(10), t(0)).unwrap();
        guard.forget_expired(t(10 + MAX_CLOCK_SKEW_SECS - 1));
        assert!(guard.contains(command));
        guard.forget_expired(t(10 + MAX_CLOCK_SKEW_SECS));
        assert!(guard.is_empty());
    }
}
