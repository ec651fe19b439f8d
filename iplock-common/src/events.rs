//! Events the XDP program reports to `iplock run` through a ring buffer:
//! a door opened, a wrong knock, a ban. Ordinary packets never make one.

use bytemuck::{Pod, Zeroable};

use crate::addr::AddrKey;
use crate::counters::Counter;
use crate::decide::{BanUpdate, Decision};

pub const EVENT_DOOR_OPENED: u32 = 1;
pub const EVENT_WRONG_KNOCK: u32 = 2;
pub const EVENT_BANNED: u32 = 3;

/// Size of the event ring buffer: 8192 events; when a flood fills it
/// faster than `iplock run` drains it, the program drops events, never packets.
pub const EVENTS_BYTES: u32 = 256 * 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Event {
    /// The source (see [`crate::addr`]).
    pub addr: AddrKey,
    pub ifindex: u32,
    /// `EVENT_*`.
    pub kind: u32,
    /// `BAN_*` when the packet also banned its source, else 0.
    pub ban_reason: u32,
    pub dport: u16,
    pub proto: u8,
    pub _pad: u8,
}

crate::user_pod!(Event);

impl Decision {
    /// The event this decision reports, if it is one worth a log line.
    #[inline(always)]
    pub fn event_kind(&self) -> Option<u32> {
        match (self.counter, self.ban) {
            (Counter::DoorOpened, _) => Some(EVENT_DOOR_OPENED),
            (Counter::WrongKnock, _) => Some(EVENT_WRONG_KNOCK),
            (_, BanUpdate::Set(_)) => Some(EVENT_BANNED),
            _ => None,
        }
    }

    /// The ban reason to report with the event.
    #[inline(always)]
    pub fn ban_reason(&self) -> u32 {
        match self.ban {
            BanUpdate::Set(b) => b.reason,
            _ => 0,
        }
    }
}
