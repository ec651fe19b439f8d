//! Single packet authorization in the kernel: what the XDP program hands
//! `iplock run` for each datagram to the SPA port, and the rate limit that
//! bounds how many it hands over. The program decides nothing about a
//! payload; the daemon verifies it (iplock's `spa` module).

use bytemuck::{Pod, Zeroable};

use crate::addr::AddrKey;

/// Most payload bytes copied (fwknopd's `MAX_SPA_PACKET_LEN`): a longer
/// datagram is cut here, and the daemon refuses it as too long.
pub const SPA_PAYLOAD_MAX: usize = 1500;

/// Size of the SPA ring buffer: about 170 records, more than the rate
/// limit lets through in a tenth of a second on a 2-CPU host, and the
/// daemon drains it as it fills. A full ring loses the payload (counted as
/// throttled), never the packet's verdict.
pub const SPA_BYTES: u32 = 256 * 1024;

/// What precedes the payload in each record of the SPA ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SpaHeader {
    /// The datagram's source (see [`crate::addr`]).
    pub addr: AddrKey,
    pub ifindex: u32,
    /// Payload bytes copied, at most [`SPA_PAYLOAD_MAX`].
    pub len: u32,
    /// Payload bytes the datagram had, by its UDP length field (more than
    /// `len` when it was cut, or did not fit in one frame).
    pub wire_len: u32,
    pub _pad: u32,
}

/// One record of the SPA ring: the header and the payload's first
/// `header.len` bytes.
#[repr(C)]
pub struct SpaRecord {
    pub header: SpaHeader,
    pub payload: [u8; SPA_PAYLOAD_MAX],
}

/// Length of the rate limit's windows.
pub const SPA_WINDOW_NS: u64 = 1_000_000_000;
/// Payloads handed over per window from one source (an IPv6 source counts
/// with its ban prefix, /64 by default, so a host cannot take a fresh
/// budget from each of its addresses). A client sends one per door.
pub const SPA_PER_SOURCE: u32 = 8;
/// Payloads handed over per window from all sources together, split
/// evenly among the CPUs (each CPU counts its own share, with no shared
/// writes): this is what bounds the daemon's work during a flood.
pub const SPA_BUDGET: u32 = 1024;
/// Sources whose budget the program remembers (LRU); one evicted by a
/// spoofed flood starts a fresh window, still under the CPUs' budget.
pub const SPA_SOURCES: u32 = 4096;

/// The share of [`SPA_BUDGET`] each CPU admits, for `cpus` possible CPUs
/// (at least one payload per window each).
pub const fn per_cpu_budget(cpus: u32) -> u16 {
    let share = match SPA_BUDGET.checked_div(cpus) {
        Some(share) => share,
        None => SPA_BUDGET,
    };
    if share == 0 {
        1
    } else if share > u16::MAX as u32 {
        u16::MAX
    } else {
        share as u16
    }
}

/// A fixed window of the rate limit: when it opened and how many payloads
/// it admitted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RateWindow {
    pub start_ns: u64,
    pub count: u32,
    pub _pad: u32,
}

impl RateWindow {
    /// Whether one more payload fits in the window at `now`, counting it if
    /// so. A window older than [`SPA_WINDOW_NS`] (or from a clock that went
    /// back) starts afresh. Over any [`SPA_WINDOW_NS`] at most twice
    /// `limit` are admitted (the end of one window and the start of the next).
    #[inline(always)]
    pub fn admit(&mut self, now: u64, limit: u32) -> bool {
        if now < self.start_ns || now - self.start_ns >= SPA_WINDOW_NS {
            self.start_ns = now;
            self.count = 0;
        }
        if self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }
}

/// Entries of the daemon's SPA counters: [`SPA_STAT_ACCEPTED`], then one per
/// refusal reason from [`SPA_STAT_REFUSED`] on, with room to spare.
pub const SPA_STATS: u32 = 32;
/// Index of the count of accepted packets.
pub const SPA_STAT_ACCEPTED: u32 = 0;
/// Index of the first refusal reason's count.
pub const SPA_STAT_REFUSED: u32 = 1;

crate::user_pod!(SpaHeader, RateWindow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_starts_afresh() {
        let mut w = RateWindow::default();
        let t0 = 5 * SPA_WINDOW_NS;
        let admitted = (0..10).filter(|_| w.admit(t0, 4)).count();
        assert_eq!(admitted, 4);
        assert!(!w.admit(t0 + SPA_WINDOW_NS - 1, 4));
        assert!(w.admit(t0 + SPA_WINDOW_NS, 4), "a new window");
        assert!(w.admit(t0, 4), "a clock that went back starts afresh");
    }

    #[test]
    fn the_budget_is_split_among_cpus() {
        assert_eq!(per_cpu_budget(1), 1024);
        assert_eq!(per_cpu_budget(2), 512);
        assert_eq!(per_cpu_budget(0), 1024);
        assert_eq!(per_cpu_budget(4096), 1);
    }

    #[test]
    fn the_header_has_no_padding() {
        assert_eq!(size_of::<SpaHeader>(), 32);
        assert_eq!(size_of::<SpaRecord>(), 32 + SPA_PAYLOAD_MAX);
    }
}
