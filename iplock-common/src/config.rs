//! The configuration the XDP program reads from the config map.
//! Ports are host byte order; durations are nanoseconds.

use bytemuck::{Pod, Zeroable};

use crate::names::{MAX_PROTECT, MAX_STEPS, MAX_TRAPS};
use crate::packet::{PROTO_TCP, Packet};

/// Ban a source whose knock is out of sequence.
pub const FLAG_BAN_WRONG_KNOCK: u32 = 1 << 0;
/// Ban a source that opens a connection to a protected port with the door closed.
pub const FLAG_BAN_CLOSED_DOOR: u32 = 1 << 1;
/// Let a banned source knock, and lift its ban when the sequence completes.
pub const FLAG_KNOCK_CLEARS_BAN: u32 = 1 << 2;
/// Drop packets to knock ports instead of letting the host's stack answer
/// them: for hosts whose own firewall drops every unused port.
pub const FLAG_KNOCK_DROP: u32 = 1 << 3;
/// `iplock run` pulls CrowdSec decisions into the decision map: look the
/// source up there too. Without it a packet pays no added lookup.
pub const FLAG_CROWDSEC: u32 = 1 << 4;

/// Bits of [`Config::ports`]: what a destination port is to the filter.
pub const PORT_PROTECTED: u8 = 1 << 0;
pub const PORT_KNOCK_TCP: u8 = 1 << 1;
pub const PORT_KNOCK_UDP: u8 = 1 << 2;
pub const PORT_TRAP: u8 = 1 << 3;

/// Destination ports [`Config::ports`] describes: all of them.
pub const PORTS: usize = 1 << 16;

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
    /// While knocks rotate, the previous period's sequence, accepted too so a
    /// client whose clock is one period behind still gets in; count 0 otherwise.
    pub prev_steps: [Step; MAX_STEPS],
    pub prev_step_count: u32,
    /// Identifies the current sequence for one-time use: a rotating sequence
    /// that has opened the door once is spent. 0 for a fixed sequence, which
    /// is never spent.
    pub seq_id: u32,
    pub prev_seq_id: u32,
    /// UDP port of single packet authorization, 0 for none: its datagrams
    /// are copied to `iplock run` (see [`crate::spa`]) instead of decided.
    pub spa_port: u16,
    /// SPA payloads each CPU copies per window
    /// ([`crate::spa::per_cpu_budget`]).
    pub spa_per_cpu: u16,
    /// What each destination port is to the filter (`PORT_*` bits), built
    /// from the lists above by [`Config::index_ports`]: a packet's role
    /// then costs one load, not a walk through every list.
    pub ports: [u8; PORTS],
}

/// One of the (at most two) sequences a config accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence<'a> {
    pub steps: &'a [Step; MAX_STEPS],
    pub count: u32,
    pub id: u32,
}

impl Sequence<'_> {
    /// Whether the packet is step `i` of this sequence.
    #[inline(always)]
    pub fn is_step(&self, i: u32, pkt: &Packet) -> bool {
        if i >= self.count {
            return false;
        }
        match step_at(self.steps, i) {
            Some(s) => s.port == pkt.dport && s.proto == pkt.proto,
            None => false,
        }
    }

    /// Longest wait before step `i`, or 0 past the end.
    #[inline(always)]
    pub fn timeout(&self, i: u32) -> u64 {
        step_at(self.steps, i).map_or(0, |s| s.timeout_ns)
    }
}

/// Step `i`, bounds-checked on the very register that indexes: the
/// compiler would otherwise check a 32-bit copy and index with a widened
/// one, which the verifier cannot relate.
#[inline(always)]
fn step_at(steps: &[Step; MAX_STEPS], i: u32) -> Option<&Step> {
    // SAFETY: a volatile read of a local, only to make its value opaque.
    let i = unsafe { core::ptr::read_volatile(&(i as usize)) };
    steps.get(i)
}

crate::user_pod!(Config, Step);

/// What a destination port means to the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// A protected TCP port.
    Protected,
    /// The port and protocol of a step of an accepted sequence.
    Knock,
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

    /// The current sequence.
    #[inline(always)]
    pub fn current(&self) -> Sequence<'_> {
        Sequence {
            steps: &self.steps,
            count: self.step_count,
            id: self.seq_id,
        }
    }

    /// The previous period's sequence, while knocks rotate.
    #[inline(always)]
    pub fn previous(&self) -> Option<Sequence<'_>> {
        (self.prev_step_count > 0).then_some(Sequence {
            steps: &self.prev_steps,
            count: self.prev_step_count,
            id: self.prev_seq_id,
        })
    }

    /// The sequence with this id, if the config still accepts it.
    #[inline(always)]
    pub fn sequence(&self, id: u32) -> Option<Sequence<'_>> {
        if id == self.seq_id {
            Some(self.current())
        } else {
            self.previous().filter(|p| p.id == id)
        }
    }

    /// Fills [`Config::ports`] from the protected ports, both sequences'
    /// steps and the traps; the configuration must be indexed after its
    /// lists change and before the program or [`Config::role`] reads it.
    pub fn index_ports(&mut self) {
        self.ports.fill(0);
        let protect = self.protect_count as usize;
        for &p in self.protect.iter().take(protect) {
            self.ports[usize::from(p)] |= PORT_PROTECTED;
        }
        let knocks = [
            (self.steps, self.step_count),
            (self.prev_steps, self.prev_step_count),
        ];
        for (steps, count) in knocks {
            for s in steps.iter().take(count as usize) {
                self.ports[usize::from(s.port)] |= if s.proto == PROTO_TCP {
                    PORT_KNOCK_TCP
                } else {
                    PORT_KNOCK_UDP
                };
            }
        }
        let traps = self.trap_count as usize;
        for &t in self.traps.iter().take(traps) {
            self.ports[usize::from(t)] |= PORT_TRAP;
        }
    }

    /// The role of the packet's destination. Validation guarantees the port
    /// sets are disjoint, so the order of the checks does not matter.
    #[inline(always)]
    pub fn role(&self, pkt: &Packet) -> PortRole {
        let bits = self.ports[usize::from(pkt.dport)];
        let tcp = pkt.proto == PROTO_TCP;
        let knock = if tcp { PORT_KNOCK_TCP } else { PORT_KNOCK_UDP };
        if tcp && bits & PORT_PROTECTED != 0 {
            PortRole::Protected
        } else if bits & knock != 0 {
            PortRole::Knock
        } else if bits & PORT_TRAP != 0 {
            PortRole::Trap
        } else {
            PortRole::Other
        }
    }
}
