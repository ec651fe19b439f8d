//! Builds the Ethernet frames the kernel tests feed to the program: optional
//! VLAN tags, IPv4 with any IHL and fragment field, IPv6 with extension
//! headers, then TCP, UDP, ICMP or another protocol; the IP length fields
//! may lie or end the datagram early, and the frame may be cut short.
//! Checksums are left zero: XDP runs before anything verifies them.

use std::net::IpAddr;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const RST: u8 = 0x04;
pub const FIN: u8 = 0x01;
pub const PSH: u8 = 0x08;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_AH: u8 = 51;

/// The destination of every frame; the program looks only at the source.
const DST_V4: [u8; 4] = [192, 0, 2, 1];
const DST_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// An IPv6 extension header. `len` is the header's own length field: the
/// header is `(len + 1) * 8` bytes.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    HopByHop {
        len: u8,
    },
    Routing {
        len: u8,
    },
    DestOpts {
        len: u8,
    },
    /// `offset` in 8-byte units.
    Fragment {
        offset: u16,
        more: bool,
    },
    /// Authentication Header: `(len + 2) * 4` bytes.
    Auth {
        len: u8,
    },
}

impl Ext {
    fn number(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => 0,
            Ext::Routing { .. } => 43,
            Ext::DestOpts { .. } => 60,
            Ext::Fragment { .. } => 44,
            Ext::Auth { .. } => PROTO_AH,
        }
    }

    /// Bytes on the wire.
    pub fn wire_len(self) -> usize {
        match self {
            Ext::HopByHop { len } | Ext::Routing { len } | Ext::DestOpts { len } => {
                (usize::from(len) + 1) * 8
            }
            Ext::Fragment { .. } => 8,
            Ext::Auth { len } => (usize::from(len) + 2) * 4,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop { len } | Ext::DestOpts { len } => {
                // Pad1 options fill the body.
                let mut b = vec![0u8; self.wire_len()];
                b[0] = next;
                b[1] = len;
                b
            }
            Ext::Routing { len } => {
                let mut b = vec![0u8; self.wire_len()];
                b[0] = next;
                b[1] = len;
                // Segment routing with no segments left: routers ignore it.
                b[2] = 4;
                b
            }
            Ext::Auth { len } => {
                let mut b = vec![0u8; self.wire_len()];
                b[0] = next;
                b[1] = len;
                // Security parameter index and sequence number; the rest
                // is the integrity check value.
                if b.len() >= 12 {
                    b[4..8].copy_from_slice(&0x100u32.to_be_bytes());
                    b[8..12].copy_from_slice(&1u32.to_be_bytes());
                }
                b
            }
            Ext::Fragment { offset, more } => {
                let field = (offset << 3) | u16::from(more);
                let [hi, lo] = field.to_be_bytes();
                vec![next, 0, hi, lo, 0, 0, 0x12, 0x34]
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Net {
    V4 {
        src: [u8; 4],
        /// The IHL field; the header carries `max(ihl, 5) * 4` bytes.
        ihl: u8,
        /// Flags and fragment offset, as on the wire.
        frag: u16,
    },
    V6 {
        src: [u8; 16],
        ext: Vec<Ext>,
    },
    Other(u16),
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        /// The data offset field; the header carries 20 bytes whatever it says.
        doff: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp,
    /// Another IP protocol, with 8 bytes of zeros.
    Proto(u8),
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Keep this many bytes of the network header (IP header and extensions).
    Network(usize),
    /// Keep this many bytes of the transport header.
    Transport(usize),
    /// Keep this many bytes of the frame.
    Frame(usize),
}

/// What the IPv4 total length or IPv6 payload length field says.
#[derive(Clone, Copy, Debug)]
enum IpLen {
    /// The datagram as built.
    Whole,
    /// The datagram ends this many bytes into the transport header.
    Transport(usize),
    /// This value, whatever the frame holds.
    Raw(u16),
}

#[derive(Clone, Debug)]
pub struct Frame {
    /// TPIDs, outermost first.
    vlans: Vec<u16>,
    net: Net,
    l4: L4,
    /// IP version field, when it should lie about the EtherType.
    version: Option<u8>,
    ip_len: IpLen,
    cut: Option<Cut>,
}

fn ip_frame(src: &str, l4: L4) -> Frame {
    let net = match src.parse::<IpAddr>().expect("test address") {
        IpAddr::V4(a) => Net::V4 {
            src: a.octets(),
            ihl: 5,
            frag: 0,
        },
        IpAddr::V6(a) => Net::V6 {
            src: a.octets(),
            ext: Vec::new(),
        },
    };
    Frame {
        vlans: Vec::new(),
        net,
        l4,
        version: None,
        ip_len: IpLen::Whole,
        cut: None,
    }
}

/// A TCP segment from `src` to `dport` with these flags.
pub fn tcp(src: &str, dport: u16, flags: u8) -> Frame {
    ip_frame(
        src,
        L4::Tcp {
            sport: 40000,
            dport,
            flags,
            doff: 5,
        },
    )
}

/// A UDP datagram from `src` to `dport`.
pub fn udp(src: &str, dport: u16) -> Frame {
    ip_frame(
        src,
        L4::Udp {
            sport: 40000,
            dport,
        },
    )
}

/// An ICMP (or ICMPv6) echo request from `src`.
pub fn icmp(src: &str) -> Frame {
    ip_frame(src, L4::Icmp)
}

/// A packet of IP protocol (IPv6 next header) `proto` from `src`.
pub fn ip_proto(src: &str, proto: u8) -> Frame {
    ip_frame(src, L4::Proto(proto))
}

/// A frame of another EtherType with a 28-byte body (the size of ARP).
pub fn non_ip(ether_type: u16) -> Frame {
    Frame {
        vlans: Vec::new(),
        net: Net::Other(ether_type),
        // Never written: a non-IP frame ends after its body.
        l4: L4::Icmp,
        version: None,
        ip_len: IpLen::Whole,
        cut: None,
    }
}

impl Frame {
    /// Adds a VLAN tag inside those already there.
    pub fn vlan(mut self, tpid: u16) -> Self {
        self.vlans.push(tpid);
        self
    }

    /// Sets the IPv4 IHL field; above 5 the header gets NOP options.
    pub fn ihl(mut self, value: u8) -> Self {
        match &mut self.net {
            Net::V4 { ihl, .. } => *ihl = value,
            _ => panic!("ihl on a frame that is not IPv4"),
        }
        self
    }

    /// Makes the packet a fragment at `offset` (8-byte units): the IPv4
    /// fragment field, or an IPv6 fragment header after any others.
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        match &mut self.net {
            Net::V4 { frag, .. } => *frag = (u16::from(more) << 13) | offset,
            Net::V6 { ext, .. } => ext.push(Ext::Fragment { offset, more }),
            Net::Other(_) => panic!("fragment on a frame that is not IP"),
        }
        self
    }

    /// Appends an IPv6 extension header.
    pub fn ext(mut self, header: Ext) -> Self {
        match &mut self.net {
            Net::V6 { ext, .. } => ext.push(header),
            _ => panic!("extension header on a frame that is not IPv6"),
        }
        self
    }

    /// Sets the TCP source port, or the UDP one.
    pub fn sport(mut self, port: u16) -> Self {
        match &mut self.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => *sport = port,
            _ => panic!("source port on a frame that is not TCP or UDP"),
        }
        self
    }

    /// Sets the TCP data offset field (32-bit words; 5 is a bare header).
    pub fn data_offset(mut self, words: u8) -> Self {
        match &mut self.l4 {
            L4::Tcp { doff, .. } => *doff = words,
            _ => panic!("data offset on a frame that is not TCP"),
        }
        self
    }

    /// Ends the IP datagram `n` bytes into the transport header: the length
    /// field says so, a first fragment carries that much. The rest of the
    /// transport header stays in the frame after the datagram, where a link
    /// pads a short frame, unless the frame is cut too.
    pub fn carry(mut self, n: usize) -> Self {
        self.ip_len = IpLen::Transport(n);
        self
    }

    /// Writes `value` as the IPv4 total length or IPv6 payload length.
    pub fn ip_len(mut self, value: u16) -> Self {
        self.ip_len = IpLen::Raw(value);
        self
    }

    /// Writes this IP version into the header instead of the right one.
    pub fn version(mut self, v: u8) -> Self {
        self.version = Some(v);
        self
    }

    /// Ends the frame `n` bytes into the network header.
    pub fn cut_network(mut self, n: usize) -> Self {
        self.cut = Some(Cut::Network(n));
        self
    }

    /// Ends the frame `n` bytes into the transport header.
    pub fn cut_transport(mut self, n: usize) -> Self {
        self.cut = Some(Cut::Transport(n));
        self
    }

    /// Ends the frame after `n` bytes.
    pub fn cut_frame(mut self, n: usize) -> Self {
        self.cut = Some(Cut::Frame(n));
        self
    }

    /// Bytes of the transport header and payload as built, before any cut.
    pub fn transport_len(&self) -> usize {
        match self.l4 {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } => 12,
            L4::Icmp | L4::Proto(_) => 8,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let (l4, proto_v4, proto_v6) = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                doff,
            } => {
                let mut b = vec![0u8; self.transport_len()];
                b[0..2].copy_from_slice(&sport.to_be_bytes());
                b[2..4].copy_from_slice(&dport.to_be_bytes());
                b[4..8].copy_from_slice(&1u32.to_be_bytes());
                b[12] = doff << 4;
                b[13] = flags;
                b[14..16].copy_from_slice(&64240u16.to_be_bytes());
                (b, PROTO_TCP, PROTO_TCP)
            }
            L4::Udp { sport, dport } => {
                let mut b = vec![0u8; self.transport_len()];
                b[0..2].copy_from_slice(&sport.to_be_bytes());
                b[2..4].copy_from_slice(&dport.to_be_bytes());
                b[4..6].copy_from_slice(&12u16.to_be_bytes());
                b[8..12].copy_from_slice(b"knok");
                (b, PROTO_UDP, PROTO_UDP)
            }
            L4::Icmp => {
                let ty = if matches!(self.net, Net::V6 { .. }) {
                    128
                } else {
                    8
                };
                (vec![ty, 0, 0, 0, 0, 1, 0, 1], PROTO_ICMP, PROTO_ICMPV6)
            }
            L4::Proto(p) => (vec![0u8; 8], p, p),
        };
        let transport_len = match self.ip_len {
            IpLen::Transport(n) => n,
            IpLen::Whole | IpLen::Raw(_) => l4.len(),
        };
        let ip_len = |header: usize| match self.ip_len {
            IpLen::Raw(v) => v,
            IpLen::Whole | IpLen::Transport(_) => (header + transport_len) as u16,
        };

        let (ether_type, net) = match &self.net {
            Net::V4 { src, ihl, frag } => {
                let hdr_len = usize::from((*ihl).max(5)) * 4;
                let mut b = vec![0u8; hdr_len];
                b[0] = (self.version.unwrap_or(4) << 4) | (ihl & 0x0f);
                b[2..4].copy_from_slice(&ip_len(hdr_len).to_be_bytes());
                b[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
                b[6..8].copy_from_slice(&frag.to_be_bytes());
                b[8] = 64;
                b[9] = proto_v4;
                b[12..16].copy_from_slice(src);
                b[16..20].copy_from_slice(&DST_V4);
                // NOP options.
                b[20..].fill(1);
                (ETHERTYPE_IPV4, b)
            }
            Net::V6 { src, ext } => {
                let mut chain = Vec::new();
                for (i, e) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(proto_v6, |n| n.number());
                    chain.extend(e.bytes(next));
                }
                let mut b = vec![0u8; 40];
                b[0] = self.version.unwrap_or(6) << 4;
                b[4..6].copy_from_slice(&ip_len(chain.len()).to_be_bytes());
                b[6] = ext.first().map_or(proto_v6, |e| e.number());
                b[7] = 64;
                b[8..24].copy_from_slice(src);
                b[24..40].copy_from_slice(&DST_V6);
                b.extend(chain);
                (ETHERTYPE_IPV6, b)
            }
            Net::Other(t) => (*t, vec![0u8; 28]),
        };

        let mut frame = Vec::new();
        frame.extend([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
        for (i, tpid) in self.vlans.iter().enumerate() {
            frame.extend(tpid.to_be_bytes());
            frame.extend((100 + i as u16).to_be_bytes());
        }
        frame.extend(ether_type.to_be_bytes());
        let l3 = frame.len();
        frame.extend(&net);
        let l4_start = frame.len();
        if !matches!(self.net, Net::Other(_)) {
            frame.extend(&l4);
        }
        match self.cut {
            Some(Cut::Network(n)) => frame.truncate(l3 + n),
            Some(Cut::Transport(n)) => frame.truncate(l4_start + n),
            Some(Cut::Frame(n)) => frame.truncate(n),
            None => {}
        }
        frame
    }
}
