//! Hostile frames: a million or more generated frames, malformed in every
//! way the parser has to survive, run through the real program with
//! BPF_PROG_TEST_RUN. For each frame the test knows what it is, by two
//! independent routes: the generator's intent (what it asked the frame
//! builder for) and a byte-level classifier written here from the contract;
//! the two must agree wherever the generator has an intent. Then:
//!
//! - the program returns XDP_PASS or XDP_DROP, never anything else;
//! - a frame that cannot be classified passes, a malformed one (a tiny first
//!   fragment, an IPv4 TCP fragment at offset 1, an IPv6 header chain past
//!   the bound) drops, and neither changes any state;
//! - a TCP or UDP packet gets the verdict the contract gives it: the verdict
//!   a second copy of the program gives the same packet in a plain frame,
//!   with the same history of classified packets. A SYN to the protected
//!   port from a source that never knocked drops, and every packet from an
//!   allow-listed source passes, whatever that copy says.
//!
//! Every epoch of frames ends with a comparison of the two copies' source
//! maps, ban maps and counters: equal but for the unclassified and malformed
//! frames, which only the hostile copy saw. A difference replays the epoch
//! frame by frame to name the frame that made it. Failures print the frame
//! as hex with the seed and its index; `IPLOCK_HOSTILE_SEED` repeats a run,
//! `IPLOCK_HOSTILE_FRAMES` changes its length.

#[path = "kernel/frame.rs"]
#[allow(dead_code)] // shared with kernel.rs; each test uses part of it
mod frame;
#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with kernel.rs; each test uses part of it
mod harness;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use frame::{ACK, Ext, FIN, Frame, PSH, RST, SYN, TPID_8021AD, TPID_8021Q};
use harness::{Harness, privileged, verdict};
use iplock_common::addr::{self, AddrKey};
use iplock_common::config::{Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, Step};
use iplock_common::decide::Verdict;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP};

const DEFAULT_SEED: u64 = 0x1b10_c4ed_f00d_5eed;
const DEFAULT_FRAMES: u64 = 1_000_000;

/// Frames between two comparisons of the whole state. Each adds at most one
/// source and one ban, so the maps never hold more than this.
const EPOCH: usize = 512;

/// Entries of each LRU map: far more than an epoch stores, so that neither
/// copy ever evicts (which the two would do differently), however many
/// CPUs hold free entries in their local lists.
const MAP_ENTRIES: u32 = 16384;

const SEC: u64 = 1_000_000_000;
const SSH: u16 = 22;
const TRAP: u16 = 666;
/// The knock sequence: tcp:100, udp:300, tcp:200.
const KNOCKS: [(u8, u16); 3] = [(PROTO_TCP, 100), (PROTO_UDP, 300), (PROTO_TCP, 200)];

/// Sources that get any kind of frame. The IPv4-mapped one shares the
/// map key of 192.0.2.10, whose state it must never touch.
const NOISY: [&str; 9] = [
    "192.0.2.10",
    "192.0.2.11",
    "192.0.2.12",
    "198.51.100.10",
    "2001:db8:0:1::10",
    "2001:db8:0:2::10",
    "2001:db8:0:3::10",
    "2001:db8:0:3::11",
    "::ffff:192.0.2.10",
];
/// Sources that knock in order, with unclassifiable copies of their knocks
/// in between, so that doors open and hostile frames meet open doors and
/// progress they must not touch.
const QUIET: [&str; 4] = [
    "192.0.2.20",
    "198.51.100.20",
    "2001:db8:0:10::20",
    "2001:db8:0:11::20",
];
/// Allow-listed as /32 and /128.
const ALLOWED: [&str; 2] = ["198.51.100.200", "2001:db8:0:ff::1"];

/// SplitMix64: small, fast, and the same sequence on every machine.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
}

/// What the contract makes of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Cannot be classified: passes and changes nothing.
    Pass,
    /// Built to hide its transport header: drops and changes nothing.
    Malformed,
    /// A TCP or UDP packet, decided on like any other.
    Packet {
        src: IpAddr,
        proto: u8,
        dport: u16,
        /// TCP flags; 0 for UDP.
        flags: u8,
    },
}

fn cut(first_fragment: bool) -> Class {
    if first_fragment {
        Class::Malformed
    } else {
        Class::Pass
    }
}

/// The contract's reading of raw bytes: issue 2's parsing rules with the
/// lead's additions (tiny first fragments, IPv4 TCP at offset 1 and IPv6
/// chains past six headers are dropped), over byte slices, independently of
/// the program's code.
mod reference {
    use super::*;

    fn be16(b: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([b[i], b[i + 1]])
    }

    pub fn classify(f: &[u8]) -> Class {
        let mut ether_type = be16(f, 12);
        let mut off = 14;
        // Up to two VLAN tags, of either TPID; a third is dropped, since
        // the kernel strips priority tags and delivers what is inside.
        for _ in 0..2 {
            if ether_type != 0x8100 && ether_type != 0x88a8 {
                break;
            }
            if f.len() < off + 4 {
                return Class::Pass;
            }
            ether_type = be16(f, off + 2);
            off += 4;
        }
        if ether_type == 0x8100 || ether_type == 0x88a8 {
            return Class::Malformed;
        }
        match ether_type {
            0x0800 => ipv4(f, off),
            0x86dd => ipv6(f, off),
            _ => Class::Pass,
        }
    }

    fn ipv4(f: &[u8], off: usize) -> Class {
        if f.len() < off + 20 {
            return Class::Pass;
        }
        let h = &f[off..];
        if h[0] >> 4 != 4 {
            return Class::Pass;
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(be16(h, 2));
        // The kernel drops these itself: a header below 20 bytes, a total
        // length shorter than the header or longer than the frame.
        if ihl < 20 || total < ihl || total > h.len() {
            return Class::Pass;
        }
        let frag = be16(h, 6);
        let offset = frag & 0x1fff;
        let proto = h[9];
        if offset != 0 {
            return if offset == 1 && proto == PROTO_TCP {
                Class::Malformed
            } else {
                Class::Pass
            };
        }
        let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
        transport(&h[ihl..total], proto, src, frag & 0x2000 != 0)
    }

    fn ipv6(f: &[u8], off: usize) -> Class {
        if f.len() < off + 40 {
            return Class::Pass;
        }
        let h = &f[off..];
        if h[0] >> 4 != 6 {
            return Class::Pass;
        }
        // An IPv4-mapped source would share the IPv4 address's state.
        if h[8..18].iter().all(|&b| b == 0) && h[18..20] == [0xff, 0xff] {
            return Class::Malformed;
        }
        let payload = usize::from(be16(h, 4));
        let mut next = h[6];
        // A jumbogram's length is an option; the frame is what there is.
        let end = if payload == 0 && next == 0 {
            h.len()
        } else {
            40 + payload
        };
        if end > h.len() {
            return Class::Pass;
        }
        let d = &h[..end];
        let mut pos = 40;
        let mut first = false;
        for _ in 0..6 {
            match next {
                0 | 43 | 60 | 51 => {
                    if pos + 2 > end {
                        return cut(first);
                    }
                    let len = usize::from(d[pos + 1]);
                    let size = if next == 51 {
                        (len + 2) * 4
                    } else {
                        (len + 1) * 8
                    };
                    next = d[pos];
                    pos += size;
                }
                44 => {
                    if pos + 8 > end {
                        return cut(first);
                    }
                    let field = be16(d, pos + 2);
                    if field & 0xfff8 != 0 {
                        return Class::Pass;
                    }
                    first |= field & 1 != 0;
                    next = d[pos];
                    pos += 8;
                }
                _ => break,
            }
        }
        if matches!(next, 0 | 43 | 60 | 44 | 51) {
            return Class::Malformed;
        }
        let src = IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&h[8..24]).expect("16 bytes"),
        ));
        transport(d.get(pos..).unwrap_or(&[]), next, src, first)
    }

    fn transport(seg: &[u8], proto: u8, src: IpAddr, first_fragment: bool) -> Class {
        let need = match proto {
            PROTO_TCP => 14,
            PROTO_UDP => 8,
            _ => return Class::Pass,
        };
        if seg.len() < need {
            return cut(first_fragment);
        }
        Class::Packet {
            src,
            proto,
            dport: be16(seg, 2),
            flags: if proto == PROTO_TCP { seg[13] } else { 0 },
        }
    }
}

/// A frame as the generator asks the frame builder for it.
#[derive(Clone, Debug)]
struct Spec {
    src: IpAddr,
    /// TPIDs, outermost first.
    vlans: Vec<u16>,
    net: Net,
    l4: L4,
    /// An IP version that contradicts the EtherType.
    version: Option<u8>,
    len: Len,
    /// Frame length after a cut.
    cut: Option<usize>,
}

#[derive(Clone, Debug)]
enum Net {
    /// `src` is IPv4.
    V4 { ihl: u8, offset: u16, more: bool },
    /// `src` is IPv6.
    V6 { ext: Vec<Ext> },
    /// Another EtherType.
    Other(u16),
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        doff: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp,
    /// Neither TCP, UDP nor an IPv6 extension header.
    Proto(u8),
}

/// The IP length field.
#[derive(Clone, Copy, Debug)]
enum Len {
    Whole,
    /// The datagram ends this many bytes into the transport header.
    Transport(usize),
    Raw(u16),
}

impl Spec {
    fn frame(&self) -> Frame {
        let src = self.src.to_string();
        let mut f = match (&self.net, self.l4) {
            (Net::Other(t), _) => frame::non_ip(*t),
            (
                _,
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                    doff,
                },
            ) => frame::tcp(&src, dport, flags)
                .sport(sport)
                .data_offset(doff),
            (_, L4::Udp { sport, dport }) => frame::udp(&src, dport).sport(sport),
            (_, L4::Icmp) => frame::icmp(&src),
            (_, L4::Proto(p)) => frame::ip_proto(&src, p),
        };
        for tpid in &self.vlans {
            f = f.vlan(*tpid);
        }
        match &self.net {
            Net::V4 { ihl, offset, more } => {
                f = f.ihl(*ihl);
                if *offset != 0 || *more {
                    f = f.fragment(*offset, *more);
                }
            }
            Net::V6 { ext } => {
                for e in ext {
                    f = f.ext(*e);
                }
            }
            Net::Other(_) => {}
        }
        if let Some(v) = self.version {
            f = f.version(v);
        }
        match self.len {
            Len::Whole => {}
            Len::Transport(n) => f = f.carry(n),
            Len::Raw(v) => f = f.ip_len(v),
        }
        if let Some(n) = self.cut {
            f = f.cut_frame(n);
        }
        f
    }

    /// What the contract makes of this frame, from what was asked for:
    /// `transport_len` is what the builder puts after the IP headers, and
    /// `frame_len` the length of the frame after any cut.
    fn intended(&self, transport_len: usize, frame_len: usize) -> Class {
        let f = frame_len;
        // The parser reads two tags and drops a frame with a third.
        for tags in 1..=self.vlans.len().min(2) {
            if f < 14 + 4 * tags {
                return Class::Pass;
            }
        }
        if self.vlans.len() > 2 {
            return Class::Malformed;
        }
        let l3 = 14 + 4 * self.vlans.len();
        match &self.net {
            Net::Other(_) => Class::Pass,
            Net::V4 { ihl, offset, more } => {
                if f < l3 + 20 || self.version.unwrap_or(4) != 4 || *ihl < 5 {
                    return Class::Pass;
                }
                let header = usize::from(*ihl) * 4;
                let total = match self.len {
                    Len::Whole => header + transport_len,
                    Len::Transport(n) => header + n,
                    Len::Raw(v) => usize::from(v),
                };
                if total < header || l3 + total > f {
                    return Class::Pass;
                }
                if *offset == 1 && matches!(self.l4, L4::Tcp { .. }) {
                    return Class::Malformed;
                }
                if *offset != 0 {
                    return Class::Pass;
                }
                self.transport(total as isize - header as isize, *more)
            }
            Net::V6 { ext } => {
                if f < l3 + 40 || self.version.unwrap_or(6) != 6 {
                    return Class::Pass;
                }
                if matches!(self.src, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()) {
                    return Class::Malformed;
                }
                let chain: usize = ext.iter().map(|e| e.wire_len()).sum();
                let payload = match self.len {
                    Len::Whole => chain + transport_len,
                    Len::Transport(n) => chain + n,
                    Len::Raw(v) => usize::from(v),
                };
                let jumbo = payload == 0 && matches!(ext.first(), Some(Ext::HopByHop { .. }));
                let end = if jumbo { f - l3 - 40 } else { payload };
                if l3 + 40 + end > f {
                    return Class::Pass;
                }
                let mut pos = 0;
                let mut first = false;
                for (i, e) in ext.iter().enumerate() {
                    if i == 6 {
                        return Class::Malformed;
                    }
                    let fixed = if matches!(e, Ext::Fragment { .. }) {
                        8
                    } else {
                        2
                    };
                    if pos + fixed > end {
                        return cut(first);
                    }
                    if let Ext::Fragment { offset, more } = e {
                        if *offset != 0 {
                            return Class::Pass;
                        }
                        first |= *more;
                    }
                    pos += e.wire_len();
                }
                self.transport(end as isize - pos as isize, first)
            }
        }
    }

    fn transport(&self, carried: isize, first_fragment: bool) -> Class {
        let (proto, dport, flags, need) = match self.l4 {
            L4::Tcp { dport, flags, .. } => (PROTO_TCP, dport, flags, 14),
            L4::Udp { dport, .. } => (PROTO_UDP, dport, 0, 8),
            L4::Icmp | L4::Proto(_) => return Class::Pass,
        };
        if carried < need {
            return cut(first_fragment);
        }
        Class::Packet {
            src: self.src,
            proto,
            dport,
            flags,
        }
    }
}

/// How a frame was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    /// Fixed frames cut at every byte offset, with lengths that lie, that
    /// tell the truth, or end the datagram early before a trailer.
    Sweep,
    /// The next knock (or SYN to 22) of a quiet source, in a valid frame.
    Knock,
    /// That same packet in a frame that cannot be classified.
    Hidden,
    /// Every field drawn at random from values that matter.
    Shaped,
    /// Fragments of every shape.
    Fragment,
    /// IPv6 extension-header chains around the bound.
    Chain,
    /// A valid or shaped frame with a few bytes changed.
    Mutated,
    /// Random bytes.
    Random,
}

struct Generated {
    family: Family,
    spec: Option<Spec>,
    bytes: Vec<u8>,
    class: Class,
}

const TPIDS: [u16; 2] = [TPID_8021Q, TPID_8021AD];
/// IP protocols that are neither TCP, UDP nor IPv6 extension headers:
/// ICMP, ICMPv6, no next header, ESP, GRE, SCTP, reserved.
const OTHER_PROTOS: [u8; 7] = [1, 58, 59, 50, 47, 132, 255];

#[derive(Clone)]
struct Generator {
    rng: Rng,
    /// Where each quiet source is: 0..=2 the knocks, 3 the SYN to 22.
    cursor: [usize; QUIET.len()],
    /// Sweep frames already produced.
    swept: usize,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            cursor: [0; QUIET.len()],
            swept: 0,
        }
    }

    fn next(&mut self, sweep: &[Spec]) -> Generated {
        if let Some(spec) = sweep.get(self.swept) {
            self.swept += 1;
            return from_spec(Family::Sweep, spec.clone());
        }
        let r = &mut self.rng;
        match r.below(100) {
            0..15 => self.quiet(),
            15..48 => {
                let spec = shaped(r);
                from_spec(Family::Shaped, spec)
            }
            48..58 => {
                let spec = fragment(r);
                from_spec(Family::Fragment, spec)
            }
            58..66 => {
                let spec = chain(r);
                from_spec(Family::Chain, spec)
            }
            66..90 => {
                let spec = if r.chance(50) {
                    let src = noisy(r);
                    let l4 = valid_l4(r);
                    valid(r, src, l4)
                } else {
                    shaped(r)
                };
                let mut bytes = spec.frame().bytes();
                mutate(r, &mut bytes);
                let class = reference::classify(&bytes);
                Generated {
                    family: Family::Mutated,
                    spec: Some(spec),
                    bytes,
                    class,
                }
            }
            _ => {
                let bytes = random_bytes(r);
                let class = reference::classify(&bytes);
                Generated {
                    family: Family::Random,
                    spec: None,
                    bytes,
                    class,
                }
            }
        }
    }

    /// A quiet source's next packet, as it is or hidden.
    fn quiet(&mut self) -> Generated {
        let r = &mut self.rng;
        let q = r.below(QUIET.len());
        let src: IpAddr = QUIET[q].parse().expect("pool address");
        let (proto, dport, flags) = match self.cursor[q] {
            i @ 0..=2 => (KNOCKS[i].0, KNOCKS[i].1, SYN),
            _ => (PROTO_TCP, SSH, SYN),
        };
        let l4 = if proto == PROTO_TCP {
            L4::Tcp {
                sport: r.range(1024, 65535) as u16,
                dport,
                flags,
                doff: 5,
            }
        } else {
            L4::Udp {
                sport: r.range(1024, 65535) as u16,
                dport,
            }
        };
        let mut spec = valid(r, src, l4);
        if r.chance(70) {
            self.cursor[q] = (self.cursor[q] + 1) % 4;
            let g = from_spec(Family::Knock, spec);
            assert!(
                matches!(g.class, Class::Packet { .. }),
                "generator: a knock frame is not classified: {:?}",
                g.spec
            );
            return g;
        }
        hide(r, &mut spec);
        let g = from_spec(Family::Hidden, spec);
        assert!(
            !matches!(g.class, Class::Packet { .. }),
            "generator: a hidden knock is classified: {:?}",
            g.spec
        );
        g
    }
}

/// Builds the frame and classifies it both ways; they must agree.
fn from_spec(family: Family, spec: Spec) -> Generated {
    let frame = spec.frame();
    let bytes = frame.bytes();
    let intended = spec.intended(frame.transport_len(), bytes.len());
    let class = reference::classify(&bytes);
    assert_eq!(
        intended,
        class,
        "generator and reference classifier disagree on {spec:?}: {}",
        hex(&bytes)
    );
    Generated {
        family,
        spec: Some(spec),
        bytes,
        class,
    }
}

fn noisy(r: &mut Rng) -> IpAddr {
    let pool: &[&str] = if r.chance(10) { &ALLOWED } else { &NOISY };
    r.pick(pool).parse().expect("pool address")
}

fn port(r: &mut Rng) -> u16 {
    let any = r.u16();
    r.pick(&[SSH, SSH, 100, 200, 300, TRAP, 80, 53, 0, any])
}

fn flags(r: &mut Rng) -> u8 {
    let any = r.byte();
    r.pick(&[SYN, SYN, ACK, SYN | ACK, RST, FIN | ACK, PSH | ACK, 0, any])
}

fn l4(r: &mut Rng) -> L4 {
    let sport = if r.chance(5) { 0 } else { r.u16() };
    match r.below(10) {
        0..5 => L4::Tcp {
            sport,
            dport: port(r),
            flags: flags(r),
            doff: if r.chance(85) { 5 } else { r.below(16) as u8 },
        },
        5..8 => L4::Udp {
            sport,
            dport: port(r),
        },
        8 => L4::Icmp,
        _ => L4::Proto(r.pick(&OTHER_PROTOS)),
    }
}

fn ext(r: &mut Rng, fragments: bool) -> Ext {
    let len = r.below(4) as u8;
    match r.below(if fragments { 5 } else { 4 }) {
        0 => Ext::HopByHop { len },
        1 => Ext::Routing { len },
        2 => Ext::DestOpts { len },
        3 => Ext::Auth { len: len + 1 },
        _ => {
            let any = r.below(0x2000) as u16;
            Ext::Fragment {
                offset: r.pick(&[0, 0, 1, 2, any]),
                more: r.chance(50),
            }
        }
    }
}

fn vlans(r: &mut Rng, max: usize) -> Vec<u16> {
    let n = match r.below(100) {
        0..60 => 0,
        60..80 => 1,
        80..92 => 2,
        92..97 => 3,
        _ => 4,
    }
    .min(max);
    (0..n).map(|_| r.pick(&TPIDS)).collect()
}

/// TCP or UDP to any port, with a valid header.
fn valid_l4(r: &mut Rng) -> L4 {
    if r.chance(60) {
        L4::Tcp {
            sport: r.u16(),
            dport: port(r),
            flags: flags(r),
            doff: 5,
        }
    } else {
        L4::Udp {
            sport: r.u16(),
            dport: port(r),
        }
    }
}

/// A frame the contract classifies: two tags at most, IPv4 options, IPv6
/// chains within the bound whose fragment header (if any) starts a
/// datagram, lengths that tell the truth or end it after the transport
/// header's needed bytes, before a trailer.
fn valid(r: &mut Rng, src: IpAddr, l4: L4) -> Spec {
    let need = if matches!(l4, L4::Tcp { .. }) { 14 } else { 8 };
    let net = match src {
        IpAddr::V4(_) => Net::V4 {
            ihl: r.pick(&[5, 5, 5, 6, 8, 15]),
            offset: 0,
            more: r.chance(10),
        },
        IpAddr::V6(_) => {
            let mut ext: Vec<Ext> = (0..r.pick(&[0, 0, 1, 2, 4, 6]))
                .map(|_| ext(r, false))
                .collect();
            if r.chance(15) {
                let at = r.below(ext.len() + 1).min(5);
                ext.insert(
                    at,
                    Ext::Fragment {
                        offset: 0,
                        more: r.chance(50),
                    },
                );
                ext.truncate(6);
            }
            Net::V6 { ext }
        }
    };
    let mut spec = Spec {
        src,
        vlans: (0..r.below(3)).map(|_| r.pick(&TPIDS)).collect(),
        net,
        l4,
        version: None,
        len: Len::Whole,
        cut: None,
    };
    if r.chance(20) {
        let transport = spec.frame().transport_len();
        spec.len = Len::Transport(r.range(need, transport));
    }
    spec
}

/// Turns a valid frame into one that cannot be classified.
fn hide(r: &mut Rng, spec: &mut Spec) {
    let tcp = matches!(spec.l4, L4::Tcp { .. });
    let need = if tcp { 14 } else { 8 };
    match r.below(7) {
        // The frame ends early; the lengths still count the rest.
        0 => {
            spec.len = Len::Whole;
            let full = spec.frame().bytes().len();
            spec.cut = Some(r.range(14, full - 1));
        }
        // A first fragment that ends before what the parser needs.
        1 => {
            spec.len = Len::Transport(r.below(need));
            match &mut spec.net {
                Net::V4 { offset, more, .. } => {
                    *offset = 0;
                    *more = true;
                }
                Net::V6 { ext } => {
                    ext.retain(|e| !matches!(e, Ext::Fragment { .. }));
                    ext.truncate(5);
                    let at = r.below(ext.len() + 1);
                    ext.insert(
                        at,
                        Ext::Fragment {
                            offset: 0,
                            more: true,
                        },
                    );
                }
                Net::Other(_) => unreachable!("valid frames are IP"),
            }
        }
        // A later fragment, at offset 1 or further.
        2 => match &mut spec.net {
            Net::V4 { offset, more, .. } => {
                let any = r.range(1, 0x1fff) as u16;
                *offset = r.pick(&[1, 2, any]);
                *more = r.chance(50);
            }
            Net::V6 { ext } => ext.push(Ext::Fragment {
                offset: r.range(1, 0x1fff) as u16,
                more: r.chance(50),
            }),
            Net::Other(_) => unreachable!("valid frames are IP"),
        },
        // Past the parser's bounds: three or four tags, seven or more
        // extension headers.
        3 => match &mut spec.net {
            Net::V6 { ext } if r.chance(50) => {
                let n = r.range(7, 9);
                while ext.len() < n {
                    ext.push(Ext::DestOpts {
                        len: r.below(2) as u8,
                    });
                }
            }
            _ => {
                spec.vlans = (0..r.range(3, 4)).map(|_| r.pick(&TPIDS)).collect();
            }
        },
        // A length field past the frame.
        4 => {
            spec.len = Len::Raw(r.range(1500, 65535) as u16);
        }
        // An IP version that contradicts the EtherType.
        5 => {
            let right = if matches!(spec.net, Net::V4 { .. }) {
                4
            } else {
                6
            };
            spec.version = Some((right + r.range(1, 15) as u8) % 16);
        }
        // A datagram that ends inside the transport header, padded.
        _ => {
            spec.len = Len::Transport(r.below(need));
            if let Net::V4 { more, .. } = &mut spec.net {
                *more = false;
            }
            if let Net::V6 { ext } = &mut spec.net {
                for e in ext.iter_mut() {
                    if let Ext::Fragment { more, .. } = e {
                        *more = false;
                    }
                }
            }
        }
    }
}

/// Anything: every field drawn from the values that matter.
fn shaped(r: &mut Rng) -> Spec {
    let src = noisy(r);
    let l4 = l4(r);
    let net = if r.chance(3) {
        let any = r.u16();
        Net::Other(r.pick(&[0x0806, 0x88cc, 0x8847, any]))
    } else {
        match src {
            IpAddr::V4(_) => Net::V4 {
                ihl: if r.chance(85) { 5 } else { r.below(16) as u8 },
                offset: if r.chance(70) {
                    0
                } else {
                    let any = r.below(0x2000) as u16;
                    r.pick(&[1, 2, any])
                },
                more: r.chance(25),
            },
            IpAddr::V6(_) => {
                let n = r.pick(&[0, 0, 1, 2, 3, 5, 6, 7, 9]);
                Net::V6 {
                    ext: (0..n).map(|_| ext(r, true)).collect(),
                }
            }
        }
    };
    let mut spec = Spec {
        src,
        vlans: vlans(r, 4),
        net,
        l4,
        version: if r.chance(2) {
            Some(r.below(16) as u8)
        } else {
            None
        },
        len: Len::Whole,
        cut: None,
    };
    spec.len = random_len(r, &spec);
    if r.chance(20) {
        let full = spec.frame().bytes().len();
        spec.cut = Some(r.range(14, full));
    }
    spec
}

/// A length field: true, ending the datagram early, or made up.
fn random_len(r: &mut Rng, spec: &Spec) -> Len {
    let transport = spec.frame().transport_len();
    match r.below(100) {
        0..70 => Len::Whole,
        70..85 => Len::Transport(r.range(0, transport + 4)),
        _ => {
            let any = r.u16();
            Len::Raw(r.pick(&[0, 1, 8, 19, 20, 28, 40, 48, 60, 65535, any]))
        }
    }
}

/// TCP and UDP fragments of every shape: first (tiny or not), at offset 1,
/// middle, last, and "more fragments" without an offset, in IPv4 and IPv6.
fn fragment(r: &mut Rng) -> Spec {
    let src = noisy(r);
    let l4 = valid_l4(r);
    let mut spec = valid(r, src, l4);
    let any = r.range(3, 0x1fff) as u16;
    let offset = r.pick(&[0, 0, 0, 1, 1, 2, any]);
    let more = r.chance(60);
    match &mut spec.net {
        Net::V4 {
            offset: o, more: m, ..
        } => {
            *o = offset;
            *m = more;
        }
        Net::V6 { ext } => {
            ext.retain(|e| !matches!(e, Ext::Fragment { .. }));
            ext.truncate(5);
            let at = r.below(ext.len() + 1);
            ext.insert(at, Ext::Fragment { offset, more });
        }
        Net::Other(_) => unreachable!("valid frames are IP"),
    }
    spec.len = if r.chance(70) {
        Len::Transport(r.range(0, 24))
    } else {
        Len::Whole
    };
    if r.chance(15) {
        let full = spec.frame().bytes().len();
        spec.cut = Some(r.range(14, full));
    }
    spec
}

/// IPv6 chains of five to nine extension headers, some cut by the payload
/// length or the frame.
fn chain(r: &mut Rng) -> Spec {
    let src: IpAddr = r.pick(&NOISY[4..]).parse().expect("pool address");
    let n = r.range(5, 9);
    let mut spec = Spec {
        src,
        vlans: vlans(r, 2),
        net: Net::V6 {
            ext: (0..n).map(|_| ext(r, true)).collect(),
        },
        l4: l4(r),
        version: None,
        len: Len::Whole,
        cut: None,
    };
    if r.chance(30) {
        spec.len = random_len(r, &spec);
    }
    if r.chance(15) {
        let full = spec.frame().bytes().len();
        spec.cut = Some(r.range(14, full));
    }
    spec
}

/// Changes one to four bytes, mostly in the headers, and sometimes the
/// length of the frame.
fn mutate(r: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..r.range(1, 4) {
        let at = if r.chance(80) {
            r.below(bytes.len().min(96))
        } else {
            r.below(bytes.len())
        };
        let old = bytes[at];
        let any = r.byte();
        let flipped = old ^ (1 << r.below(8));
        bytes[at] = r.pick(&[
            0,
            0xff,
            any,
            flipped,
            old.wrapping_add(1),
            old.wrapping_sub(1),
        ]);
    }
    match r.below(10) {
        0 => bytes.truncate(r.range(14, bytes.len())),
        1 => bytes.extend((0..r.range(1, 16)).map(|_| r.byte())),
        _ => {}
    }
}

/// Random bytes, often behind an EtherType (and IPv4 version byte) that
/// lets the parser go further.
fn random_bytes(r: &mut Rng) -> Vec<u8> {
    let mut b: Vec<u8> = (0..r.range(14, 160)).map(|_| r.byte()).collect();
    if r.chance(60) {
        let ether_type: u16 = r.pick(&[0x0800, 0x86dd, TPID_8021Q, TPID_8021AD]);
        b[12..14].copy_from_slice(&ether_type.to_be_bytes());
        if ether_type == 0x0800 && b.len() > 14 && r.chance(50) {
            b[14] = 0x45;
        }
        if ether_type == 0x86dd && b.len() > 14 && r.chance(50) {
            b[14] = 0x60;
        }
    }
    b
}

/// Valid TCP, UDP, IPv4, IPv6 and VLAN frames, each cut at every byte
/// offset three ways: the frame ends there and the IP length still counts
/// the rest; the datagram ends there and the length says so; the length
/// says so but the rest stays in the frame as a trailer.
fn sweep() -> Vec<Spec> {
    let v4: IpAddr = NOISY[0].parse().expect("pool address");
    let v6: IpAddr = NOISY[4].parse().expect("pool address");
    let tcp = |dport, flags| L4::Tcp {
        sport: 40000,
        dport,
        flags,
        doff: 5,
    };
    let udp = |dport| L4::Udp {
        sport: 40000,
        dport,
    };
    let plain = |src, vlans: &[u16], net, l4| Spec {
        src,
        vlans: vlans.to_vec(),
        net,
        l4,
        version: None,
        len: Len::Whole,
        cut: None,
    };
    let v4net = |ihl, more| Net::V4 {
        ihl,
        offset: 0,
        more,
    };
    let templates = [
        plain(v4, &[], v4net(5, false), tcp(SSH, SYN)),
        plain(v4, &[TPID_8021Q], v4net(5, false), udp(300)),
        plain(
            v4,
            &[TPID_8021AD, TPID_8021Q],
            v4net(8, false),
            tcp(100, SYN),
        ),
        plain(v4, &[], v4net(5, true), tcp(SSH, ACK)),
        plain(v4, &[], v4net(5, false), L4::Icmp),
        plain(v6, &[], Net::V6 { ext: Vec::new() }, tcp(SSH, SYN)),
        plain(
            v6,
            &[],
            Net::V6 {
                ext: vec![
                    Ext::HopByHop { len: 0 },
                    Ext::DestOpts { len: 1 },
                    Ext::Fragment {
                        offset: 0,
                        more: true,
                    },
                ],
            },
            udp(300),
        ),
        plain(
            v6,
            &[TPID_8021Q],
            Net::V6 {
                ext: vec![Ext::Auth { len: 2 }, Ext::Routing { len: 0 }],
            },
            tcp(200, SYN),
        ),
    ];
    let mut out = Vec::new();
    for t in templates {
        let full = t.frame().bytes().len();
        let l3 = 14 + 4 * t.vlans.len();
        let header = match t.net {
            Net::V4 { .. } => 0,
            _ => 40,
        };
        for k in 14..full {
            out.push(Spec {
                cut: Some(k),
                ..t.clone()
            });
            if k >= l3 + header {
                let len = Len::Raw((k - l3 - header) as u16);
                out.push(Spec {
                    len,
                    cut: Some(k),
                    ..t.clone()
                });
                out.push(Spec { len, ..t.clone() });
            }
        }
        out.push(t);
    }
    out
}

/// The same packet in a plain frame, for the reference copy.
fn plain_frame(src: IpAddr, proto: u8, dport: u16, flags: u8) -> Vec<u8> {
    let src = src.to_string();
    if proto == PROTO_TCP {
        frame::tcp(&src, dport, flags).bytes()
    } else {
        frame::udp(&src, dport).bytes()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Protect 22; knock tcp:100, udp:300, tcp:200, a minute per step (the
/// test never waits, so no timeout can lapse between the two copies); open
/// a minute; trap 666; ban on wrong knocks and closed doors.
fn config() -> Config {
    let mut cfg: Config = bytemuck::Zeroable::zeroed();
    for (i, (proto, port)) in KNOCKS.into_iter().enumerate() {
        let mut s: Step = bytemuck::Zeroable::zeroed();
        s.proto = proto;
        s.port = port;
        s.timeout_ns = 60 * SEC;
        cfg.steps[i] = s;
    }
    cfg.step_count = KNOCKS.len() as u32;
    cfg.protect[0] = SSH;
    cfg.protect_count = 1;
    cfg.traps[0] = TRAP;
    cfg.trap_count = 1;
    cfg.flags = FLAG_BAN_WRONG_KNOCK | FLAG_BAN_CLOSED_DOOR;
    cfg.open_window_ns = 60 * SEC;
    cfg.ban_time_ns = 3600 * SEC;
    cfg.ban_prefix_v6 = 64;
    cfg
}

/// What the two copies must agree on: which sources and bans exist, their
/// steps, reasons and which times are set (the times themselves differ by
/// the microseconds between the two runs), and the counters.
#[derive(Debug, PartialEq, Eq)]
struct State {
    sources: BTreeMap<IpAddr, (u32, bool, bool)>,
    bans: BTreeMap<IpAddr, (u32, bool)>,
    counters: BTreeMap<&'static str, u64>,
}

fn state(h: &Harness) -> State {
    State {
        sources: h
            .sources()
            .into_iter()
            .map(|(k, s)| (k, (s.step, s.last_knock_ns != 0, s.open_until_ns != 0)))
            .collect(),
        bans: h
            .bans()
            .into_iter()
            .map(|(k, b)| (k, (b.reason, b.until_ns != 0)))
            .collect(),
        counters: h.counters(),
    }
}

/// The hostile copy's state must be the reference copy's, plus the frames
/// only it saw in two counters. Returns the hostile copy's counters.
fn compare(
    h: &Harness,
    r: &Harness,
    not_classified: u64,
    malformed: u64,
) -> Result<BTreeMap<&'static str, u64>, String> {
    use iplock_common::counters::Counter;
    let hs = state(h);
    let mut want = state(r);
    for (c, n) in [
        (Counter::NotClassified, not_classified),
        (Counter::Malformed, malformed),
    ] {
        if want.counters.contains_key(c.name()) {
            return Err(format!("the reference copy counted {}", c.name()));
        }
        if n > 0 {
            want.counters.insert(c.name(), n);
        }
    }
    if hs == want {
        Ok(hs.counters)
    } else {
        Err(format!(
            "state differs from the reference copy's\n  hostile:   {hs:?}\n  reference: {want:?}"
        ))
    }
}

struct Runner {
    seed: u64,
    cfg: Config,
    h: Harness,
    r: Harness,
    sweep: Vec<Spec>,
    allowed: Vec<AddrKey>,
    /// Frames per family and class (pass, malformed, packet).
    stats: BTreeMap<Family, [u64; 3]>,
    /// The program's counters, summed over the epochs.
    counters: BTreeMap<&'static str, u64>,
}

impl Runner {
    fn reset(&mut self) {
        for h in [&mut self.h, &mut self.r] {
            h.reset(&self.cfg);
            h.allow("198.51.100.200/32", 0);
            h.allow("2001:db8:0:ff::1/128", 0);
        }
    }

    fn fail(&self, index: u64, g: &Generated, what: &str) -> ! {
        panic!(
            "hostile frame {index} of seed {seed} (IPLOCK_HOSTILE_SEED={seed}): {what}\n  \
             family: {:?}\n  class: {:?}\n  spec: {:?}\n  frame ({} bytes): {}",
            g.family,
            g.class,
            g.spec,
            g.bytes.len(),
            hex(&g.bytes),
            seed = self.seed,
        )
    }

    /// Runs `n` frames from a fresh state, checking each verdict; with
    /// `each`, compares the whole state after every frame and returns the
    /// first that makes a difference.
    fn epoch(
        &mut self,
        source: &mut Generator,
        first: u64,
        n: usize,
        each: bool,
    ) -> Result<BTreeMap<&'static str, u64>, String> {
        self.reset();
        let mut not_classified = 0;
        let mut malformed = 0;
        let mut knocked: HashSet<AddrKey> = HashSet::new();
        for index in first..first + n as u64 {
            let g = source.next(&self.sweep);
            let action = self.h.run_action(&g.bytes);
            let Some(got) = verdict(action) else {
                self.fail(index, &g, &format!("XDP action {action}"));
            };
            let slot = match g.class {
                Class::Pass => {
                    if got != Verdict::Pass {
                        self.fail(index, &g, "an unclassifiable frame was dropped");
                    }
                    not_classified += 1;
                    0
                }
                Class::Malformed => {
                    if got != Verdict::Drop {
                        self.fail(index, &g, "a malformed frame passed");
                    }
                    malformed += 1;
                    1
                }
                Class::Packet {
                    src,
                    proto,
                    dport,
                    flags,
                } => {
                    let action = self.r.run_action(&plain_frame(src, proto, dport, flags));
                    let Some(want) = verdict(action) else {
                        self.fail(index, &g, &format!("plain frame: XDP action {action}"));
                    };
                    if got != want {
                        self.fail(
                            index,
                            &g,
                            &format!(
                                "{got:?}, while the same packet in a plain frame got {want:?}"
                            ),
                        );
                    }
                    let key = addr::from_ip(src);
                    let allowed = self.allowed.contains(&key);
                    if allowed && got != Verdict::Pass {
                        self.fail(index, &g, "dropped from an allow-listed source");
                    }
                    let bare_syn = proto == PROTO_TCP && flags & (SYN | ACK) == SYN;
                    let unknocked = !allowed && !knocked.contains(&key);
                    if bare_syn && dport == SSH && unknocked && got != Verdict::Drop {
                        self.fail(
                            index,
                            &g,
                            "a SYN to 22 passed from a source that never knocked",
                        );
                    }
                    if KNOCKS.contains(&(proto, dport)) {
                        knocked.insert(key);
                    }
                    2
                }
            };
            self.stats.entry(g.family).or_default()[slot] += 1;
            if each && let Err(e) = compare(&self.h, &self.r, not_classified, malformed) {
                self.fail(index, &g, &format!("after this frame: {e}"));
            }
        }
        compare(&self.h, &self.r, not_classified, malformed)
    }
}

#[test]
fn hostile_frames() {
    if !privileged("hostile_frames") {
        return;
    }
    let seed = std::env::var("IPLOCK_HOSTILE_SEED").map_or(DEFAULT_SEED, |s| {
        s.parse().expect("IPLOCK_HOSTILE_SEED is a number")
    });
    let frames = std::env::var("IPLOCK_HOSTILE_FRAMES").map_or(DEFAULT_FRAMES, |s| {
        s.parse().expect("IPLOCK_HOSTILE_FRAMES is a number")
    });
    eprintln!("hostile_frames: seed {seed} (IPLOCK_HOSTILE_SEED), {frames} frames");

    let cfg = config();
    let mut run = Runner {
        seed,
        h: Harness::sized(&cfg, MAP_ENTRIES),
        r: Harness::sized(&cfg, MAP_ENTRIES),
        cfg,
        sweep: sweep(),
        allowed: ALLOWED
            .iter()
            .map(|a| addr::from_ip(a.parse().expect("pool address")))
            .collect(),
        stats: BTreeMap::new(),
        counters: BTreeMap::new(),
    };
    let start = Instant::now();
    let mut source = Generator::new(seed);
    let mut done = 0;
    while done < frames {
        let n = EPOCH.min((frames - done) as usize);
        let saved = source.clone();
        match run.epoch(&mut source, done, n, false) {
            Ok(counters) => {
                for (name, n) in counters {
                    *run.counters.entry(name).or_default() += n;
                }
            }
            Err(e) => {
                // Find the frame: the same frames again, comparing after each.
                let mut again = saved;
                let _ = run.epoch(&mut again, done, n, true);
                panic!(
                    "frames {done}..{} of seed {seed} (IPLOCK_HOSTILE_SEED={seed}): {e}; \
                     replayed frame by frame, no single frame made the difference",
                    done + n as u64
                );
            }
        }
        done += n as u64;
    }
    let elapsed = start.elapsed();
    eprintln!(
        "hostile_frames: {frames} frames in {:.1} s ({:.1} µs each), by family [pass, malformed, packet]:",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / frames as f64
    );
    for (family, n) in &run.stats {
        eprintln!("  {family:?}: {n:?}");
    }
    eprintln!("hostile_frames: program counters: {:?}", run.counters);
}
