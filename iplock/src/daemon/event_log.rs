//! The daemon's log of the program's events: a line each, summarised per
//! kind past a rate, so a flood of spoofed packets is not a flood of lines.

use std::time::{Duration, Instant};

use iplock_common::events::{EVENT_BANNED, EVENT_DOOR_OPENED, EVENT_WRONG_KNOCK, Event};
use iplock_common::state::BanEntry;

use crate::config::duration;
use crate::daemon::log_limit::LogLimit;
use crate::kernel::events::describe;

/// Lines written per kind of event in [`LOG_INTERVAL`]; past them the
/// events are counted and summarised.
const LOG_BURST: u64 = 20;
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The daemon's log of events: a line each, summarised per kind (and ban
/// reason) past [`LOG_BURST`] in [`LOG_INTERVAL`]. The counters in the
/// maps count every event either way.
pub struct EventLog(LogLimit<(u32, u32)>);

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog(LogLimit::new(LOG_BURST, LOG_INTERVAL))
    }
}

impl EventLog {
    pub fn log(&mut self, e: &Event, now: Instant) {
        if self.0.admit((e.kind, e.ban_reason), now) {
            log::info!("{}", describe(e));
        }
    }

    /// Writes the summaries of the intervals that have ended by `now`.
    pub fn flush(&mut self, now: Instant) {
        for (kind, n) in self.0.expire(now) {
            log::info!("{}", self.summary(kind, n));
        }
    }

    /// When [`EventLog::flush`] next has a summary to write.
    pub fn next_flush(&self) -> Option<Instant> {
        self.0.next_expiry()
    }

    /// Writes the summaries of every interval, as the daemon stops.
    pub fn finish(&mut self) {
        for (kind, n) in self.0.finish() {
            log::info!("{}", self.summary(kind, n));
        }
    }

    fn summary(&self, (kind, ban_reason): (u32, u32), n: u64) -> String {
        let reason = BanEntry {
            reason: ban_reason,
            ..Default::default()
        }
        .reason_name();
        let what = match (kind, ban_reason) {
            (EVENT_DOOR_OPENED, _) => "doors opened".to_string(),
            (EVENT_WRONG_KNOCK, 0) => "wrong knocks".to_string(),
            (EVENT_WRONG_KNOCK, _) => format!("wrong knocks with a ban ({reason})"),
            (EVENT_BANNED, _) => format!("bans ({reason})"),
            (k, _) => format!("events of kind {k}"),
        };
        let per = duration::format(self.0.interval());
        format!(
            "… and {n} more {what} in the last {per} (log lines are summarised past {} per {per})",
            self.0.burst()
        )
    }
}
