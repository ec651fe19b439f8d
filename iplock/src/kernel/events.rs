//! Reading the program's events from its pinned ring buffer.

use std::os::fd::{AsRawFd, RawFd};

use aya::maps::{MapData, RingBuf};
use iplock_common::addr;
use iplock_common::events::{EVENT_BANNED, EVENT_DOOR_OPENED, EVENT_WRONG_KNOCK, Event};
use iplock_common::names::MAP_EVENTS;
use iplock_common::state::BanEntry;

use crate::config::knock::proto_name;
use crate::error::Result;
use crate::kernel::pin_dir::PinDir;

pub struct Events(RingBuf<MapData>);

impl Events {
    pub fn open(dir: &PinDir) -> Result<Events> {
        crate::kernel::maps::open_ring(dir, MAP_EVENTS).map(Events)
    }

    /// The next event in the ring, or None once it is empty; an item too
    /// short to be an event (from another writer of the map) is skipped.
    pub fn read(&mut self) -> Option<Event> {
        while let Some(item) = self.0.next() {
            if let Some(e) = item
                .get(..size_of::<Event>())
                .map(bytemuck::pod_read_unaligned::<Event>)
            {
                return Some(e);
            }
        }
        None
    }
}

/// The ring's descriptor is readable while it holds events, for waiting
/// on it in an event loop.
impl AsRawFd for Events {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

pub fn iface_name(ifindex: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        format!("ifindex {ifindex}")
    } else {
        crate::system::iface::from_fixed(&buf)
    }
}

/// One log line for an event.
pub fn describe(e: &Event) -> String {
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
