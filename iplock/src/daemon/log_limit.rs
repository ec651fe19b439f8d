//! A rate past which log lines are counted instead of written. Whoever
//! can send packets can make events (a spoofed wrong knock costs one
//! packet), so one line per event would let them flood the log. Each kind
//! gets a window that opens with its first line: the first `burst` lines
//! of the window are written, the rest counted, and the count is reported
//! once the window is `interval` old. The caller passes the time in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct LogLimit<K> {
    burst: u64,
    interval: Duration,
    windows: BTreeMap<K, Window>,
}

struct Window {
    start: Instant,
    written: u64,
    held: u64,
}

impl<K: Ord + Copy> LogLimit<K> {
    pub fn new(burst: u64, interval: Duration) -> LogLimit<K> {
        LogLimit {
            burst,
            interval,
            windows: BTreeMap::new(),
        }
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether a line of `kind` at `now` is written; if not, it is counted.
    pub fn admit(&mut self, kind: K, now: Instant) -> bool {
        let w = self.windows.entry(kind).or_insert(Window {
            start: now,
            written: 0,
            held: 0,
        });
        if w.written < self.burst {
            w.written += 1;
            true
        } else {
            w.held += 1;
            false
        }
    }

    /// When the first open window is `interval` old, for the caller's
    /// next [`LogLimit::expire`]; None while no window is open.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.windows.values().map(|w| w.start + self.interval).min()
    }

    /// Closes the windows that are `interval` old at `now`: the lines each
    /// held back, for the kinds that held any.
    pub fn expire(&mut self, now: Instant) -> Vec<(K, u64)> {
        let interval = self.interval;
        self.close(|w| now.saturating_duration_since(w.start) >= interval)
    }

    /// Closes every window, as the log ends: the lines each held back.
    pub fn finish(&mut self) -> Vec<(K, u64)> {
        self.close(|_| true)
    }

    fn close(&mut self, done: impl Fn(&Window) -> bool) -> Vec<(K, u64)> {
        let mut held = Vec::new();
        self.windows.retain(|kind, w| {
            let closing = done(w);
            if closing && w.held > 0 {
                held.push((*kind, w.held));
            }
            !closing
        });
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn writes_the_burst_then_counts_until_the_window_closes() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(3, 10 * SECOND);
        let written: Vec<bool> = (0..10).map(|_| l.admit("wrong", t0)).collect();
        assert_eq!(
            written,
            [
                true, true, true, false, false, false, false, false, false, false
            ]
        );
        assert_eq!(l.next_expiry(), Some(t0 + 10 * SECOND));
        assert!(
            l.expire(t0 + 9 * SECOND).is_empty(),
            "the window is still open"
        );
        assert!(!l.admit("wrong", t0 + 9 * SECOND));
        assert_eq!(l.expire(t0 + 10 * SECOND), [("wrong", 8)]);
        // A new window opens with the next line, and writes again.
        assert!(l.admit("wrong", t0 + 11 * SECOND));
        assert_eq!(l.next_expiry(), Some(t0 + 21 * SECOND));
        assert!(l.expire(t0 + 30 * SECOND).is_empty(), "nothing was held");
    }

    #[test]
    fn kinds_have_windows_of_their_own() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(1, 10 * SECOND);
        assert!(l.admit("wrong", t0));
        assert!(!l.admit("wrong", t0));
        // A flood of one kind leaves another kind's lines alone.
        assert!(l.admit("door", t0 + 5 * SECOND));
        assert!(!l.admit("door", t0 + 5 * SECOND));
        assert!(!l.admit("door", t0 + 5 * SECOND));
        assert_eq!(l.expire(t0 + 10 * SECOND), [("wrong", 1)]);
        assert_eq!(l.expire(t0 + 15 * SECOND), [("door", 2)]);
    }

    #[test]
    fn finish_reports_every_open_window() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(1, 10 * SECOND);
        for kind in ["b", "a", "b", "a", "a", "c"] {
            l.admit(kind, t0);
        }
        assert_eq!(l.finish(), [("a", 2), ("b", 1)]);
        assert!(l.finish().is_empty());
        assert_eq!(l.next_expiry(), None);
        assert!(l.admit("a", t0), "finish closed the windows");
    }
}
