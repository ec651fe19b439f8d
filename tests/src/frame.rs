//! Whole Ethernet frames sent from the client veth with an AF_PACKET
//! socket: TCP segments with any flags and UDP datagrams, from any source
//! address, with valid IPv4 header and transport checksums (the stack
//! drops bad ones before anything can answer, which would hide a verdict
//! of the filter). The spoofing tests send them from made-up addresses,
//! the scanner ([`crate::scan`]) from the client's own.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::netns::{NetnsPair, SERVER_V4, SERVER_V6, in_netns, link_json};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

pub const PROTO_ICMP: u8 = libc::IPPROTO_ICMP as u8;
pub const PROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
pub const PROTO_UDP: u8 = libc::IPPROTO_UDP as u8;
pub const PROTO_ICMPV6: u8 = libc::IPPROTO_ICMPV6 as u8;

/// What a frame carries: a TCP segment with these flags, or a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    Tcp(u8),
    Udp,
}

impl L4 {
    /// A bare SYN, what a connect sends first.
    pub const SYN: L4 = L4::Tcp(TCP_SYN);

    pub fn proto(self) -> u8 {
        match self {
            L4::Tcp(_) => PROTO_TCP,
            L4::Udp => PROTO_UDP,
        }
    }
}

/// The server's address of `src`'s family.
pub fn server_of(src: IpAddr) -> IpAddr {
    match src {
        IpAddr::V4(_) => SERVER_V4,
        IpAddr::V6(_) => SERVER_V6,
    }
}

/// An AF_PACKET socket on the client veth that sends whole Ethernet frames
/// to the server veth, with any source address.
pub struct Injector {
    fd: OwnedFd,
    pub ifindex: i32,
    pub client_mac: [u8; 6],
    pub server_mac: [u8; 6],
}

impl Injector {
    pub fn new(pair: &NetnsPair) -> Injector {
        let (ifindex, client_mac) = link(&pair.client, &pair.client_if);
        let (_, server_mac) = link(&pair.server, &pair.server_if);
        // Protocol 0: this socket sends and never receives.
        let fd = in_netns(&pair.client, || packet_socket(ifindex, 0));
        Injector {
            fd,
            ifindex,
            client_mac,
            server_mac,
        }
    }

    /// Sends one frame from `src` to the server's address of its family.
    pub fn send(&self, src: IpAddr, l4: L4, sport: u16, dport: u16, seq: u32) {
        let frame = self.frame(src, server_of(src), l4, sport, dport, seq);
        // SAFETY: `frame` is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send a frame: {}",
            std::io::Error::last_os_error()
        );
    }

    /// An Ethernet frame from the client veth to the server veth.
    pub fn frame(
        &self,
        src: IpAddr,
        dst: IpAddr,
        l4: L4,
        sport: u16,
        dport: u16,
        seq: u32,
    ) -> Vec<u8> {
        frame(
            self.client_mac,
            self.server_mac,
            src,
            dst,
            l4,
            sport,
            dport,
            seq,
        )
    }
}

/// An AF_PACKET raw socket bound to `ifindex` in the calling thread's
/// namespace; `protocol` 0 sends only, `ETH_P_ALL` also receives every
/// frame in and out of the interface.
pub fn packet_socket(ifindex: i32, protocol: u16) -> OwnedFd {
    let proto_be = protocol.to_be();
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto_be)) };
    assert!(
        raw >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `raw` is a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_ll is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto_be;
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` lives across the call, which reads its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
    fd
}

/// An Ethernet frame carrying a TCP segment (no payload, no options) or a
/// UDP datagram with a short payload, checksums valid.
#[allow(clippy::too_many_arguments)]
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
    sport: u16,
    dport: u16,
    seq: u32,
) -> Vec<u8> {
    let proto = l4.proto();
    let mut segment = match l4 {
        L4::Tcp(flags) => {
            let mut tcp = Vec::with_capacity(20);
            tcp.extend_from_slice(&sport.to_be_bytes());
            tcp.extend_from_slice(&dport.to_be_bytes());
            tcp.extend_from_slice(&seq.to_be_bytes());
            // An ACK carries an acknowledgment number, as a real one would.
            let ack = if flags & TCP_ACK != 0 { !seq } else { 0 };
            tcp.extend_from_slice(&ack.to_be_bytes());
            tcp.extend_from_slice(&[5 << 4, flags]); // 20-byte header
            tcp.extend_from_slice(&64_240u16.to_be_bytes()); // window
            tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
            tcp
        }
        L4::Udp => {
            let payload = b"knock";
            let len = (8 + payload.len()) as u16;
            let mut udp = Vec::with_capacity(len as usize);
            udp.extend_from_slice(&sport.to_be_bytes());
            udp.extend_from_slice(&dport.to_be_bytes());
            udp.extend_from_slice(&len.to_be_bytes());
            udp.extend_from_slice(&[0, 0]); // checksum
            udp.extend_from_slice(payload);
            udp
        }
    };
    let len = segment.len();
    let mut pseudo = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("{src} and {dst} are not of one family"),
    }
    let mut sum = checksum(&[&pseudo, &segment]);
    // In UDP a zero checksum means none; an all-ones one is the same sum.
    if proto == PROTO_UDP && sum == 0 {
        sum = 0xffff;
    }
    let at = if proto == PROTO_TCP { 16 } else { 6 };
    segment[at..at + 2].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + len);
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = Vec::with_capacity(20);
            ip.extend_from_slice(&[0x45, 0]);
            ip.extend_from_slice(&((20 + len) as u16).to_be_bytes());
            ip.extend_from_slice(&(seq as u16).to_be_bytes()); // id
            ip.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]); // DF, ttl, checksum
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
            frame.extend_from_slice(&[proto, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => unreachable!("checked above"),
    }
    frame.extend_from_slice(&segment);
    frame
}

/// Interface index and MAC address of `dev` in namespace `ns`.
pub fn link(ns: &str, dev: &str) -> (i32, [u8; 6]) {
    let json = link_json(ns, dev);
    let ifindex = json[0]["ifindex"].as_i64().expect("ifindex") as i32;
    let text = json[0]["address"].as_str().expect("address");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    (ifindex, mac)
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`, each of
/// even length except maybe the last.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
