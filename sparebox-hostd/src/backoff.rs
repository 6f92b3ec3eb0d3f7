//! Exponential backoff with jitter, for retrying the server.

use std::time::Duration;

use rand::Rng;

/// Doubles the wait after each failure, from `base` up to `cap`, and picks each actual wait
/// at random between half the current step and the full step, so many hosts that lost the
/// server at the same moment do not all come back at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never waiting longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// How many failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures.min(30)))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=step - half)
    }

    /// The wait before the next attempt, after one more failure, when the server asked for
    /// at least `hint`: the longer of the usual step and `hint` (at most the cap, so a
    /// hostile or mistaken server cannot park the daemon), plus up to half of it at random,
    /// so hosts refused together do not all return together.
    pub fn next_delay_at_least(&mut self, hint: Duration) -> Duration {
        let hint = hint.min(self.cap);
        let delay = self.next_delay();
        if delay >= hint {
            return delay;
        }
        hint + rand::thread_rng().gen_range(Duration::ZERO..=hint / 2)
    }

    /// Back to the start after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for _ in 0..100 {
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_secs(60), "{delay:?}");
        }
        let late = backoff.next_delay();
        assert!(late >= Duration::from_secs(30), "{late:?}");
    }

    #[test]
    fn a_server_hint_lengthens_the_wait_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..20 {
            let delay = backoff.next_delay_at_least(Duration::from_secs(10));
            // Ten to fifteen seconds while the usual step is shorter, then the step itself.
            assert!(delay >= Duration::from_secs(10), "{delay:?}");
            assert!(delay <= Duration::from_secs(60), "{delay:?}");
        }
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let capped = backoff.next_delay_at_least(Duration::from_secs(86_400));
        assert!(capped >= Duration::from_secs(60), "{capped:?}");
        assert!(capped <= Duration::from_secs(90), "{capped:?}");
        assert_eq!(backoff.failures(), 1);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }
}
