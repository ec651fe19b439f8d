//! A small port scanner, as an attacker would run one: from the client
//! namespace, with a chosen source address of the client (IPv4 or IPv6),
//! it sends TCP probes with any flags (SYN, ACK, FIN, none) or UDP
//! datagrams to a set of ports, in ascending, descending or seeded random
//! order, and classifies what comes back for each port: a reset, an ICMP
//! or ICMPv6 port unreachable, a SYN-ACK, something else, or nothing
//! within a short wait.
//!
//! Frames go out through [`Injector`] (AF_PACKET on the client veth); the
//! answers are read from a second AF_PACKET socket on the same veth, in
//! one pass: probes are sent in batches, each batch waiting at most a
//! millisecond for earlier ones to be answered so the veth's queues never
//! overflow, and the scan ends when every port has answered or nothing
//! came for [`ANSWER_WAIT`]. Ports that stayed silent are probed once more,
//! so a frame lost on a busy machine does not look like a filtered port.
//!
//! The source must be an address of the client namespace (so the server's
//! answers reach the veth): the client's kernel sees those answers too and
//! resets any SYN-ACK, as it would for nmap.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::frame::{
    self, Injector, L4, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN, server_of,
};
use crate::netns::{NetnsPair, in_netns};
use crate::rng::Rng;

/// How long a scan waits for answers after its last probe.
pub const ANSWER_WAIT: Duration = Duration::from_millis(300);
/// Probes sent between two looks at the answers.
const BATCH: usize = 32;
const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): the receiving socket does not
/// see the probes themselves.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// What the server sent back for one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// A TCP reset (RST or RST-ACK).
    Rst,
    /// A SYN-ACK: something listens.
    SynAck,
    /// ICMP port unreachable (IPv4 type 3 code 3, IPv6 type 1 code 4).
    Unreachable,
    /// Another TCP segment, with these flags.
    Tcp(u8),
    /// Another ICMP or ICMPv6 error (type, code), such as a firewall's
    /// administratively prohibited.
    Icmp(u8, u8),
    /// Nothing within the wait, twice.
    Nothing,
}

/// The order in which the ports of a scan are probed.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    Ascending,
    Descending,
    /// Shuffled with this seed.
    Random(u64),
}

impl Order {
    /// `ports` in this order.
    pub fn apply(self, ports: &[u16]) -> Vec<u16> {
        let mut v = ports.to_vec();
        match self {
            Order::Ascending => v.sort_unstable(),
            Order::Descending => v.sort_unstable_by(|a, b| b.cmp(a)),
            Order::Random(seed) => {
                let mut rng = Rng::new(seed);
                for i in (1..v.len()).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    v.swap(i, j);
                }
            }
        }
        v
    }
}

/// The probes a scan can send, with the names tests print.
pub const PROBES: [(&str, L4); 5] = [
    ("SYN", L4::Tcp(TCP_SYN)),
    ("ACK", L4::Tcp(TCP_ACK)),
    ("FIN", L4::Tcp(frame::TCP_FIN)),
    ("null", L4::Tcp(0)),
    ("UDP", L4::Udp),
];

/// Sends probes from the client veth and reads the answers there.
pub struct Scanner {
    tx: Injector,
    rx: OwnedFd,
    /// Probes sent since the scanner was made.
    sent: std::cell::Cell<u64>,
}

impl Scanner {
    /// A scanner on `pair`'s client veth. It also lifts the server
    /// namespace's ICMP rate limits: by default the kernel sends about one
    /// port unreachable per second to a peer, and a UDP scan would take
    /// the silence that follows for filtered ports.
    pub fn new(pair: &NetnsPair) -> Scanner {
        pair.lift_icmp_rate_limits();
        let tx = Injector::new(pair);
        let ifindex = tx.ifindex;
        let rx = in_netns(&pair.client, || {
            let fd = frame::packet_socket(ifindex, ETH_P_ALL);
            let one: libc::c_int = 1;
            let size: libc::c_int = 16 << 20;
            for (level, opt, value) in [
                (libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one),
                (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size),
            ] {
                // SAFETY: `value` is a live c_int of the given size.
                let rc = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        level,
                        opt,
                        (value as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
            }
            fd
        });
        Scanner {
            tx,
            rx,
            sent: std::cell::Cell::new(0),
        }
    }

    /// Probes sent since the scanner was made, retries included.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// Probes `ports` from `src` with `probe` in `order` and returns each
    /// port's answer.
    pub fn scan(
        &self,
        src: IpAddr,
        probe: L4,
        ports: &[u16],
        order: Order,
    ) -> BTreeMap<u16, Answer> {
        let sport = next_sport();
        let mut answers: BTreeMap<u16, Answer> = BTreeMap::new();
        self.read(src, probe, sport, &mut answers, Instant::now(), |_| true);
        answers.clear();
        let wanted: BTreeSet<u16> = ports.iter().copied().collect();
        let mut todo = order.apply(ports);
        for _round in 0..2 {
            for (i, batch) in todo.chunks(BATCH).enumerate() {
                for &port in batch {
                    let seq = u32::from(port) << 16 | u32::from(sport);
                    self.tx.send(src, probe, sport, port, seq);
                }
                self.sent.set(self.sent.get() + batch.len() as u64);
                // Let the server catch up with all but the last batch.
                let sent_so_far = (i * BATCH + batch.len()).min(todo.len());
                let base = wanted.len() - todo.len();
                self.read(
                    src,
                    probe,
                    sport,
                    &mut answers,
                    Instant::now() + Duration::from_millis(1),
                    |a| a.len() + BATCH >= base + sent_so_far,
                );
            }
            self.read(
                src,
                probe,
                sport,
                &mut answers,
                Instant::now() + ANSWER_WAIT,
                |a| a.len() >= wanted.len(),
            );
            todo = wanted
                .iter()
                .copied()
                .filter(|p| !answers.contains_key(p))
                .collect();
            if todo.is_empty() {
                break;
            }
        }
        answers.retain(|p, _| wanted.contains(p));
        for p in wanted {
            answers.entry(p).or_insert(Answer::Nothing);
        }
        answers
    }

    /// Reads answers to probes from `src` and `sport` into `answers` until
    /// `enough(answers)` or `deadline`.
    fn read(
        &self,
        src: IpAddr,
        probe: L4,
        sport: u16,
        answers: &mut BTreeMap<u16, Answer>,
        deadline: Instant,
        enough: impl Fn(&BTreeMap<u16, Answer>) -> bool,
    ) {
        let mut buf = [0u8; 2048];
        loop {
            // Everything already queued, without waiting.
            loop {
                // SAFETY: `buf` is a valid writable buffer of its length.
                let n = unsafe {
                    libc::recv(
                        self.rx.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let err = std::io::Error::last_os_error();
                    match err.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EINTR) => break,
                        _ => panic!("recv on the scanner's socket: {err}"),
                    }
                }
                if let Some((port, answer)) = classify(&buf[..n as usize], src, probe, sport) {
                    answers.insert(port, answer);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if enough(answers) || left.is_zero() {
                return;
            }
            let mut fd = libc::pollfd {
                fd: self.rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut fd, 1, ms) };
        }
    }
}

/// A source port no earlier scan of this process used, below the
/// kernel's ephemeral range so that no socket of the client owns it.
fn next_sport() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    10_000 + ((std::process::id() as u16).wrapping_mul(97).wrapping_add(n)) % 20_000
}

/// The port and answer a frame arriving at the client carries, if it
/// answers a probe of kind `probe` from `src` and `sport`.
fn classify(f: &[u8], src: IpAddr, probe: L4, sport: u16) -> Option<(u16, Answer)> {
    let server = server_of(src);
    let ethertype = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let ip = f.get(14..)?;
    let (proto, from, to, l4) = ip_header(ethertype, ip)?;
    if from != server || to != src {
        return None;
    }
    match proto {
        PROTO_TCP if probe.proto() == PROTO_TCP => {
            let port = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
            let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
            if dport != sport {
                return None;
            }
            let flags = *l4.get(13)?;
            let answer = if flags & TCP_RST != 0 {
                Answer::Rst
            } else if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
                Answer::SynAck
            } else {
                Answer::Tcp(flags)
            };
            Some((port, answer))
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let (kind, code) = (*l4.first()?, *l4.get(1)?);
            let inner_type = if proto == PROTO_ICMP { 0x0800 } else { 0x86dd };
            let (inner_proto, inner_from, inner_to, inner_l4) =
                ip_header(inner_type, l4.get(8..)?)?;
            if inner_proto != probe.proto() || inner_from != src || inner_to != server {
                return None;
            }
            let inner_sport = u16::from_be_bytes([*inner_l4.first()?, *inner_l4.get(1)?]);
            let port = u16::from_be_bytes([*inner_l4.get(2)?, *inner_l4.get(3)?]);
            if inner_sport != sport {
                return None;
            }
            let unreachable = match proto {
                PROTO_ICMP => (kind, code) == (3, 3),
                _ => (kind, code) == (1, 4),
            };
            let answer = if unreachable {
                Answer::Unreachable
            } else {
                Answer::Icmp(kind, code)
            };
            Some((port, answer))
        }
        _ => None,
    }
}

/// (protocol, source, destination, payload) of an IPv4 or IPv6 header;
/// IPv6 extension headers are not followed (the server sends none).
fn ip_header(ethertype: u16, ip: &[u8]) -> Option<(u8, IpAddr, IpAddr, &[u8])> {
    match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            Some((*ip.get(9)?, src.into(), dst.into(), ip.get(ihl..)?))
        }
        0x86dd => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            Some((*ip.get(6)?, src.into(), dst.into(), ip.get(40..)?))
        }
        _ => None,
    }
}

/// Ports of `answers` whose answer differs from the most common one.
pub fn odd_ones(answers: &BTreeMap<u16, Answer>) -> Vec<(u16, Answer)> {
    let mut counts: BTreeMap<String, (usize, Answer)> = BTreeMap::new();
    for a in answers.values() {
        counts.entry(format!("{a:?}")).or_insert((0, *a)).0 += 1;
    }
    let Some((_, common)) = counts.values().max_by_key(|(n, _)| *n).copied() else {
        return Vec::new();
    };
    answers
        .iter()
        .filter(|(_, a)| **a != common)
        .map(|(p, a)| (*p, *a))
        .collect()
}
