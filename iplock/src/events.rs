//! Reading the program's events from its pinned ring buffer.

use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, RingBuf};
use iplock_common::addr;
use iplock_common::events::{EVENT_BANNED, EVENT_DOOR_OPENED, EVENT_WRONG_KNOCK, Event};
use iplock_common::names::MAP_EVENTS;
use iplock_common::state::BanEntry;

use crate::duration;
use crate::error::{Context as _, Error, Result};
use crate::knock::proto_name;
use crate::log_limit::LogLimit;
use crate::pin_dir::PinDir;

pub struct Events(RingBuf<MapData>);

impl Events {
    pub fn open(dir: &PinDir) -> Result<Events> {
        let path = dir.map(MAP_EVENTS);
        let data = MapData::from_pin(&path).context(|| format!("opening {}", path.display()))?;
        let map = Map::from_map_data(data).context(|| format!("opening {}", path.display()))?;
        let ring = RingBuf::try_from(map).map_err(|source| Error::Map {
            what: format!("{} is not a ring buffer", path.display()),
            source,
        })?;
        Ok(Events(ring))
    }

    /// Waits up to `timeout_ms` for events and returns those that came.
    pub fn wait(&mut self, timeout_ms: i32) -> Vec<Event> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd; a signal interrupting the wait is fine.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        let mut out = Vec::new();
        while let Some(item) = self.0.next() {
            if let Some(e) = item
                .get(..size_of::<Event>())
                .map(bytemuck::pod_read_unaligned::<Event>)
            {
                out.push(e);
            }
        }
        out
    }
}

fn iface_name(ifindex: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        format!("ifindex {ifindex}")
    } else {
        crate::iface::from_fixed(&buf)
    }
}

/// One log line for an event.
fn describe(e: &Event) -> String {
    let src = addr::to_ip(&e.addr);
    let on = iface_name(e.ifindex);
    let port = format!("{}:{}", proto_name(e.proto), e.dport);
    let ban = if e.ban_reason != 0 {
        let reason = BanEntry {
            reason: e.ban_reason,
            ..Default::default()
        }
        .reason_name();
        format!("; banned ({reason})")
    } else {
        String::new()
    };
    match e.kind {
        EVENT_DOOR_OPENED => format!("door opened for {src} on {on} (last knock {port})"),
        EVENT_WRONG_KNOCK => format!("wrong knock from {src} on {on} ({port}){ban}"),
        EVENT_BANNED => format!("{src} on {on} hit {port}{ban}"),
        k => format!("event {k} from {src} on {on} ({port}){ban}"),
    }
}

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
