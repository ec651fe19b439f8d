//! When to talk to the Local API next, and whether to say so: retries back
//! off while it is down, one log line per outage, and the first pull after
//! an outage (or a start) asks for everything again (`startup=true`).
//! Time is passed in, so all of it is tested without waiting.

use std::time::{Duration, Instant};

/// Longest wait between two tries while the Local API is down.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Exponential backoff with outage tracking.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Failures in a row; 0 when the last try worked.
    failures: u32,
    outage_since: Option<Instant>,
}

/// What a failure means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The first failure of an outage: log it (later ones stay quiet).
    pub log: bool,
    /// Wait this long before the next try.
    pub retry_in: Duration,
}

impl Backoff {
    /// Retries after `first`, doubling up to `max` (at least `first`).
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            failures: 0,
            outage_since: None,
        }
    }

    pub fn failed(&mut self, now: Instant) -> Failure {
        self.failures = self.failures.saturating_add(1);
        let log = self.outage_since.is_none();
        if log {
            self.outage_since = Some(now);
        }
        let factor = 1u32 << (self.failures - 1).min(16);
        Failure {
            log,
            retry_in: self.first.saturating_mul(factor).min(self.max),
        }
    }

    /// A try worked; returns how long the outage it ends lasted, if any
    /// (log that the Local API is back).
    pub fn succeeded(&mut self, now: Instant) -> Option<Duration> {
        self.failures = 0;
        self.outage_since
            .take()
            .map(|since| now.saturating_duration_since(since))
    }

    pub fn in_outage(&self) -> bool {
        self.outage_since.is_some()
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The bouncer's pulls: every `every` while the Local API answers, backing
/// off while it does not; `startup=true` first and after every failure,
/// since deltas missed during the outage are gone.
#[derive(Clone, Debug)]
pub struct PullSchedule {
    every: Duration,
    backoff: Backoff,
    next_at: Instant,
    startup: bool,
}

impl PullSchedule {
    /// The first pull is due at once and is a startup pull.
    pub fn new(every: Duration, max_backoff: Duration, now: Instant) -> PullSchedule {
        PullSchedule {
            every,
            backoff: Backoff::new(every, max_backoff),
            next_at: now,
            startup: true,
        }
    }

    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Whether the next pull must ask for everything.
    pub fn startup(&self) -> bool {
        self.startup
    }

    pub fn in_outage(&self) -> bool {
        self.backoff.in_outage()
    }

    pub fn failed(&mut self, now: Instant) -> Failure {
        let f = self.backoff.failed(now);
        self.startup = true;
        self.next_at = now + f.retry_in;
        f
    }

    /// The pull worked: the next one is a delta, `every` later.
    pub fn succeeded(&mut self, now: Instant) -> Option<Duration> {
        self.startup = false;
        self.next_at = now + self.every;
        self.backoff.succeeded(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn backs_off_and_logs_once_per_outage() {
        let t0 = Instant::now();
        let mut b = Backoff::new(10 * SEC, 60 * SEC);
        let waits: Vec<_> = (0..6)
            .map(|i| b.failed(t0 + i * SEC))
            .map(|f| (f.log, f.retry_in.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [
                (true, 10),
                (false, 20),
                (false, 40),
                (false, 60),
                (false, 60),
                (false, 60)
            ]
        );
        assert!(b.in_outage());
        assert_eq!(b.succeeded(t0 + 100 * SEC), Some(100 * SEC));
        assert_eq!(b.succeeded(t0 + 110 * SEC), None);
        // A new outage logs again and starts from the first wait.
        assert_eq!(
            b.failed(t0 + 120 * SEC),
            Failure {
                log: true,
                retry_in: 10 * SEC
            }
        );
        // Many failures never overflow.
        for _ in 0..100 {
            assert!(b.failed(t0).retry_in <= 60 * SEC);
        }
    }

    #[test]
    fn pulls_resync_after_a_failure() {
        let t0 = Instant::now();
        let mut s = PullSchedule::new(10 * SEC, DEFAULT_MAX_BACKOFF, t0);
        assert!(s.startup());
        assert_eq!(s.next_at(), t0);
        assert_eq!(s.succeeded(t0), None);
        assert!(!s.startup());
        assert_eq!(s.next_at(), t0 + 10 * SEC);
        let f = s.failed(t0 + 10 * SEC);
        assert!(f.log && s.startup() && s.in_outage());
        assert_eq!(s.next_at(), t0 + 20 * SEC);
        assert!(!s.failed(t0 + 20 * SEC).log);
        assert_eq!(s.next_at(), t0 + 40 * SEC);
        assert_eq!(s.succeeded(t0 + 40 * SEC), Some(30 * SEC));
        assert!(!s.startup());
        assert_eq!(s.next_at(), t0 + 50 * SEC);
    }
}
