//! The configuration the XDP program reads from the config map.
//! Ports are host byte order; durations are nanoseconds.

use bytemuck::{Pod, Zeroable};

use crate::names::{MAX_PROTECT, MAX_STEPS, MAX_TRAPS};
use crate::packet::Packet;

/// Ban a source whose knock is out of sequence.
pub const FLAG_BAN_WRONG_KNOCK: u32 = 1 << 0;
/// Ban a source that opens a connection to a protected port with the door closed.
pub const FLAG_BAN_CLOSED_DOOR: u32 = 1 << 1;
/// Let a banned source knock, and lift its ban when the sequence completes.
pub const FLAG_KNOCK_CLEARS_BAN: u32 = 1 << 2;

/// One step of the knock sequence.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Step {
    /// Port, host byte order.
    pub port: u16,
    /// [`crate::packet::PROTO_TCP`] or [`crate::packet::PROTO_UDP`].
    pub proto: u8,
    pub _pad: [u8; 5],
    /// Longest time since the previous knock for this one to count.
    pub timeout_ns: u64,
}

/// Everything the program needs to decide, in the one entry of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Config {
    pub steps: [Step; MAX_STEPS],
    pub step_count: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    pub protect: [u16; MAX_PROTECT],
    pub traps: [u16; MAX_TRAPS],
    pub protect_count: u32,
    pub trap_count: u32,
    pub open_window_ns: u64,
    pub ban_time_ns: u64,
    /// Prefix length an IPv6 ban covers.
    pub ban_prefix_v6: u32,
    pub _pad: u32,
}

crate::user_pod!(Config, Step);

/// What a destination port means to the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// A protected TCP port.
    Protected,
    /// The port and protocol of step `n` of the sequence.
    Knock(u32),
    /// A trap port (either protocol).
    Trap,
    /// Anything else.
    Other,
}

impl Config {
    #[inline(always)]
    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The role of the packet's destination. Validation guarantees the port
    /// sets are disjoint, so the order of the checks does not matter.
    #[inline(always)]
    pub fn role(&self, pkt: &Packet) -> PortRole {
        if pkt.proto == crate::packet::PROTO_TCP {
            for i in 0..MAX_PROTECT {
                if i as u32 >= self.protect_count {
                    break;
                }
                if self.protect[i] == pkt.dport {
                    return PortRole::Protected;
                }
            }
        }
        for i in 0..MAX_STEPS {
            if i as u32 >= self.step_count {
                break;
            }
            let s = &self.steps[i];
            if s.port == pkt.dport && s.proto == pkt.proto {
                return PortRole::Knock(i as u32);
            }
        }
        for i in 0..MAX_TRAPS {
            if i as u32 >= self.trap_count {
                break;
            }
            if self.traps[i] == pkt.dport {
                return PortRole::Trap;
            }
        }
        PortRole::Other
    }

    /// Timeout of step `i`, or 0 past the end.
    #[inline(always)]
    pub fn step_timeout(&self, i: u32) -> u64 {
        match self.steps.get(i as usize) {
            Some(s) => s.timeout_ns,
            None => 0,
        }
    }
}
