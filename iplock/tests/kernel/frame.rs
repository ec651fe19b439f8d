//! Builds the Ethernet frames the kernel tests feed to the program: optional
//! VLAN tags, IPv4 with any IHL and fragment field, IPv6 with extension
//! headers, then TCP, UDP or ICMP, optionally cut short. Checksums are left
//! zero: XDP runs before anything verifies them.

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
}

impl Ext {
    fn number(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => 0,
            Ext::Routing { .. } => 43,
            Ext::DestOpts { .. } => 60,
            Ext::Fragment { .. } => 44,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop { len } | Ext::DestOpts { len } => {
                // Pad1 options fill the body.
                let mut b = vec![0u8; (usize::from(len) + 1) * 8];
                b[0] = next;
                b[1] = len;
                b
            }
            Ext::Routing { len } => {
                let mut b = vec![0u8; (usize::from(len) + 1) * 8];
                b[0] = next;
                b[1] = len;
                // Segment routing with no segments left: routers ignore it.
                b[2] = 4;
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
    Tcp { dport: u16, flags: u8 },
    Udp { dport: u16 },
    Icmp,
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Keep this many bytes of the network header (IP header and extensions).
    Network(usize),
    /// Keep this many bytes of the transport header.
    Transport(usize),
}

#[derive(Clone, Debug)]
pub struct Frame {
    /// TPIDs, outermost first.
    vlans: Vec<u16>,
    net: Net,
    l4: L4,
    /// IP version field, when it should lie about the EtherType.
    version: Option<u8>,
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
        cut: None,
    }
}

/// A TCP segment from `src` to `dport` with these flags.
pub fn tcp(src: &str, dport: u16, flags: u8) -> Frame {
    ip_frame(src, L4::Tcp { dport, flags })
}

/// A UDP datagram from `src` to `dport`.
pub fn udp(src: &str, dport: u16) -> Frame {
    ip_frame(src, L4::Udp { dport })
}

/// An ICMP (or ICMPv6) echo request from `src`.
pub fn icmp(src: &str) -> Frame {
    ip_frame(src, L4::Icmp)
}

/// A frame of another EtherType with a 28-byte body (the size of ARP).
pub fn non_ip(ether_type: u16) -> Frame {
    Frame {
        vlans: Vec::new(),
        net: Net::Other(ether_type),
        // Never written: a non-IP frame ends after its body.
        l4: L4::Icmp,
        version: None,
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

    pub fn bytes(&self) -> Vec<u8> {
        let (l4, proto_v4, proto_v6) = match self.l4 {
            L4::Tcp { dport, flags } => {
                let mut b = vec![0u8; 20];
                b[0..2].copy_from_slice(&40000u16.to_be_bytes());
                b[2..4].copy_from_slice(&dport.to_be_bytes());
                b[4..8].copy_from_slice(&1u32.to_be_bytes());
                b[12] = 5 << 4;
                b[13] = flags;
                b[14..16].copy_from_slice(&64240u16.to_be_bytes());
                (b, PROTO_TCP, PROTO_TCP)
            }
            L4::Udp { dport } => {
                let mut b = vec![0u8; 12];
                b[0..2].copy_from_slice(&40000u16.to_be_bytes());
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
        };

        let (ether_type, net) = match &self.net {
            Net::V4 { src, ihl, frag } => {
                let hdr_len = usize::from((*ihl).max(5)) * 4;
                let mut b = vec![0u8; hdr_len];
                b[0] = (self.version.unwrap_or(4) << 4) | (ihl & 0x0f);
                b[2..4].copy_from_slice(&((hdr_len + l4.len()) as u16).to_be_bytes());
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
                b[4..6].copy_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
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
            None => {}
        }
        frame
    }
}
