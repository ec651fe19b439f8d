//! Packet parsing: Ethernet (up to two VLAN tags, more are dropped), IPv4 or IPv6 (with
//! extension headers), then TCP or UDP. Every read goes through [`ptr_at`],
//! which is the one bounds check the verifier needs to see; the IP length
//! fields bound what belongs to the datagram, because the kernel trims the
//! rest as link-layer padding and must not be fooled by bytes it ignores.

use core::mem;

use aya_ebpf::programs::XdpContext;
use iplock_common::addr::Words;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP, Packet};
use network_types::eth::{EthHdr, EtherType};
use network_types::ip::{IpProto, Ipv4Hdr, Ipv6Hdr};
use network_types::udp::UdpHdr;
use network_types::vlan::VlanHdr;

/// Why a frame yields no [`Parsed`].
pub enum Unclassified {
    /// Passed, as the contract says, because the kernel delivers no TCP or
    /// UDP packet to a local socket from it on this interface:
    /// - not IPv4/IPv6 (ARP, LLDP, ...): no IP stack sees it; PPPoE, MPLS
    ///   and the like reach IP only through a device of their own;
    /// - a header cut short, a version that contradicts the EtherType, an
    ///   IPv4 IHL below 5 or a length past the frame: `ip_rcv`/`ipv6_rcv`
    ///   drop it;
    /// - a non-first fragment: reassembly needs the first fragment, which
    ///   this parser decides on (overlaps are dropped by the kernel);
    /// - a transport header cut short in a whole datagram: TCP and UDP
    ///   drop it;
    /// - another protocol (ICMP, ESP, GRE, IPIP, ...): a tunnel delivers
    ///   what it carries on its own device, which the filter must be
    ///   attached to as well (the README says so).
    Pass,
    /// Built to hide its transport header from this parser while the kernel
    /// would still reassemble or parse it (RFC 1858, RFC 7112), or to slip
    /// past it otherwise; [`Reason`] says how. Dropped.
    Malformed(Reason),
}

/// Why a frame was dropped as malformed, for the program's debug log.
#[derive(Clone, Copy)]
pub enum Reason {
    /// A first fragment that ends before the TCP flags, the UDP header or
    /// the end of an IPv6 extension header.
    FirstFragmentCut,
    /// An IPv4 TCP fragment at offset 1 (8 bytes), which can only be
    /// rewriting the flags of the first one (RFC 1858).
    TcpAtOffsetOne,
    /// An IPv6 extension-header chain longer than the parser follows.
    Ipv6ChainTooLong,
    /// A third VLAN tag, inside which Linux would still find the packet.
    ThirdVlanTag,
    /// An IPv4-mapped IPv6 source, which would share the IPv4 address's state.
    V4MappedSource,
}

use Unclassified::{Malformed, Pass};

/// A classified packet: its source and what the decision needs.
pub struct Parsed {
    pub src: Words,
    pub pkt: Packet,
    /// Frame offsets of the transport header and of the datagram's end,
    /// for reading a UDP payload (SPA).
    pub l4: usize,
    pub end: usize,
}

/// The network layer of a packet, as far as the transport header.
struct Net {
    /// Offset of the source address, read once both paths have joined
    /// (see [`source`]).
    src_at: usize,
    v6: bool,
    proto: u8,
    /// Offset of the transport header.
    l4: usize,
    /// Offset of the end of the datagram (never past the frame).
    end: usize,
    /// The first of several fragments: the kernel reassembles the transport
    /// header from what follows, so one cut short here is hiding something.
    first_fragment: bool,
}

/// VLAN tags the parser looks through (802.1Q inside 802.1ad is the deepest
/// stacking seen in practice); a frame with more is dropped.
const MAX_VLAN_TAGS: usize = 2;

/// IPv6 extension headers the parser skips. Legitimate traffic carries one
/// or two; the bound keeps the verifier's work finite, and a longer chain
/// is dropped rather than passed, since the kernel follows any length.
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// TCP header bytes up to and including the flags byte (offset 13).
const TCP_THROUGH_FLAGS: usize = 14;

/// IPv4 "more fragments" flag and fragment offset share one 16-bit field;
/// the low 13 bits are the offset.
const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;

/// IPv6 fragment header: the offset is the top 13 bits of bytes 2..4, the
/// "more fragments" flag the lowest bit.
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;
const IPV6_MORE_FRAGMENTS: u16 = 0x0001;

/// Authentication Header: its length field counts 4-octet units, minus 2.
const IPPROTO_AH: u8 = 51;

#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Unclassified> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(Pass);
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

#[inline(always)]
fn read_be16(p: *const u16) -> u16 {
    // SAFETY: callers pass a pointer that ptr_at bounds-checked; packet data
    // has no alignment guarantee, hence the unaligned read.
    u16::from_be(unsafe { p.read_unaligned() })
}

/// A header that does not fit in the datagram: the kernel drops such a
/// packet, unless it is a first fragment, whose rest comes later.
#[inline(always)]
fn cut(first_fragment: bool) -> Unclassified {
    if first_fragment {
        Malformed(Reason::FirstFragmentCut)
    } else {
        Pass
    }
}

/// The EtherTypes the kernel's receive path takes for a VLAN tag
/// (`eth_type_vlan`).
#[inline(always)]
fn is_vlan(ether_type: u16) -> bool {
    ether_type == u16::from_be(EtherType::Ieee8021q as u16)
        || ether_type == u16::from_be(EtherType::Ieee8021ad as u16)
}

/// The source address, read from the packet after the IPv4 and IPv6 paths
/// have joined: two whole words chosen between, where a key built on each
/// path would be merged byte by byte.
#[inline(always)]
fn source(ctx: &XdpContext, net: &Net) -> Result<Words, Unclassified> {
    Ok(if net.v6 {
        // SAFETY: bounds-checked by ptr_at; packet data is unaligned.
        unsafe { ptr_at::<Words>(ctx, net.src_at)?.read_unaligned() }
    } else {
        // SAFETY: as above.
        Words::v4(unsafe { ptr_at::<[u8; 4]>(ctx, net.src_at)?.read_unaligned() })
    })
}

/// Parses the frame down to the transport header.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Parsed, Unclassified> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: bounds-checked by ptr_at.
    let mut ether_type = read_be16(unsafe { &raw const (*eth).ether_type });
    let mut off = EthHdr::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ether_type) {
            break;
        }
        let vlan: *const VlanHdr = ptr_at(ctx, off)?;
        // SAFETY: bounds-checked by ptr_at.
        ether_type = read_be16(unsafe { &raw const (*vlan).ether_type });
        off += VlanHdr::LEN;
    }
    // Linux strips any number of priority tags and delivers what is inside
    // on this interface: a deeper stack would otherwise pass unfiltered.
    if is_vlan(ether_type) {
        return Err(Malformed(Reason::ThirdVlanTag));
    }

    let net = if ether_type == u16::from_be(EtherType::Ipv4 as u16) {
        ipv4(ctx, off)?
    } else if ether_type == u16::from_be(EtherType::Ipv6 as u16) {
        ipv6(ctx, off)?
    } else {
        return Err(Pass);
    };

    if net.proto != PROTO_TCP && net.proto != PROTO_UDP {
        return Err(Pass);
    }
    let need = if net.proto == PROTO_TCP {
        TCP_THROUGH_FLAGS
    } else {
        UdpHdr::LEN
    };
    if net.l4 + need > net.end {
        return Err(cut(net.first_fragment));
    }
    // The datagram ends within the frame, so these reads cannot fail; the
    // verifier needs to see the frame's bound all the same.
    let pkt = if net.proto == PROTO_TCP {
        let tcp: *const [u8; TCP_THROUGH_FLAGS] = ptr_at(ctx, net.l4)?;
        // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
        let tcp = unsafe { &*tcp };
        Packet {
            proto: PROTO_TCP,
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
            tcp_flags: tcp[13],
        }
    } else {
        let udp: *const UdpHdr = ptr_at(ctx, net.l4)?;
        Packet {
            proto: PROTO_UDP,
            // SAFETY: bounds-checked by ptr_at; UdpHdr is all byte arrays.
            dport: unsafe { (*udp).dst_port() },
            tcp_flags: 0,
        }
    };
    Ok(Parsed {
        src: source(ctx, &net)?,
        pkt,
        l4: net.l4,
        end: net.end,
    })
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, off: usize) -> Result<Net, Unclassified> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, off)?;
    // SAFETY: bounds-checked by ptr_at; Ipv4Hdr is all bytes and byte arrays.
    let ip = unsafe { &*ip };
    if ip.vihl >> 4 != 4 {
        return Err(Pass);
    }
    let ihl = usize::from(ip.vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes(ip.tot_len));
    // The kernel drops these before looking further.
    if ihl < Ipv4Hdr::LEN || total < ihl || off + total > frame_len(ctx) {
        return Err(Pass);
    }
    let frags = u16::from_be_bytes(ip.frags);
    let frag_offset = frags & IPV4_FRAG_OFFSET_MASK;
    if frag_offset != 0 {
        // A non-first fragment carries no transport header; the kernel
        // decides about the reassembled datagram by its first fragment.
        // Except at offset 1 (8 bytes), where a TCP fragment can only be
        // rewriting the flags of the first one (RFC 1858).
        return Err(if frag_offset == 1 && ip.proto == PROTO_TCP {
            Malformed(Reason::TcpAtOffsetOne)
        } else {
            Pass
        });
    }
    Ok(Net {
        src_at: off + mem::offset_of!(Ipv4Hdr, src_addr),
        v6: false,
        proto: ip.proto,
        l4: off + ihl,
        end: off + total,
        first_fragment: frags & IPV4_MORE_FRAGMENTS != 0,
    })
}

/// The IPv6 header and the extension headers a host may put before the
/// transport header.
#[inline(always)]
fn ipv6(ctx: &XdpContext, off: usize) -> Result<Net, Unclassified> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, off)?;
    // SAFETY: bounds-checked by ptr_at; Ipv6Hdr is all bytes and byte arrays.
    let ip = unsafe { &*ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(Pass);
    }
    // An IPv4-mapped source would share the IPv4 address's state (the key
    // convention maps both to one key); the kernel drops such packets too.
    // SAFETY: bounds-checked with the header by ptr_at; unaligned, like
    // all packet data.
    let src = unsafe { (&raw const ip.src_addr).cast::<Words>().read_unaligned() };
    let src_at = off + mem::offset_of!(Ipv6Hdr, src_addr);
    if src.is_v4() {
        return Err(Malformed(Reason::V4MappedSource));
    }
    let mut next = ip.next_hdr;
    let payload = usize::from(u16::from_be_bytes(ip.payload_len));
    // Length 0 behind a hop-by-hop header announces a jumbogram, whose
    // length is an option; the frame is then the most the kernel can use.
    let end = if payload == 0 && next == IpProto::HopOpt as u8 {
        frame_len(ctx)
    } else {
        off + Ipv6Hdr::LEN + payload
    };
    if end > frame_len(ctx) {
        return Err(Pass);
    }
    let mut off = off + Ipv6Hdr::LEN;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if next == IpProto::HopOpt as u8
            || next == IpProto::Ipv6Route as u8
            || next == IpProto::Ipv6Opts as u8
            || next == IPPROTO_AH
        {
            if off + 2 > end {
                return Err(cut(first_fragment));
            }
            // Next header, then the length.
            let ext: *const [u8; 2] = ptr_at(ctx, off)?;
            // SAFETY: bounds-checked by ptr_at.
            let ext = unsafe { &*ext };
            let len = usize::from(ext[1]);
            off += if next == IPPROTO_AH {
                (len + 2) * 4
            } else {
                // 8-octet units not counting the first.
                (len + 1) * 8
            };
            next = ext[0];
        } else if next == IpProto::Ipv6Frag as u8 {
            if off + 8 > end {
                return Err(cut(first_fragment));
            }
            // Fixed 8 bytes: next header, reserved, offset + flags, id.
            let frag: *const [u8; 8] = ptr_at(ctx, off)?;
            // SAFETY: bounds-checked by ptr_at.
            let frag = unsafe { &*frag };
            let field = u16::from_be_bytes([frag[2], frag[3]]);
            if field & IPV6_FRAG_OFFSET_MASK != 0 {
                return Err(Pass);
            }
            // Without "more fragments" it is an atomic fragment (RFC 6946):
            // a whole packet the kernel processes as such.
            first_fragment |= field & IPV6_MORE_FRAGMENTS != 0;
            next = frag[0];
            off += 8;
        } else {
            break;
        }
    }
    if next == IpProto::HopOpt as u8
        || next == IpProto::Ipv6Route as u8
        || next == IpProto::Ipv6Opts as u8
        || next == IpProto::Ipv6Frag as u8
        || next == IPPROTO_AH
    {
        return Err(Malformed(Reason::Ipv6ChainTooLong));
    }
    Ok(Net {
        src_at,
        v6: true,
        proto: next,
        l4: off,
        end,
        first_fragment,
    })
}
