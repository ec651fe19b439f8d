//! Packet parsing: Ethernet (up to two VLAN tags), IPv4 or IPv6 (with
//! extension headers), then TCP or UDP. Every read goes through [`ptr_at`],
//! which is the one bounds check the verifier needs to see.

use core::mem;

use aya_ebpf::programs::XdpContext;
use iplock_common::addr::{self, AddrKey};
use iplock_common::packet::{PROTO_TCP, PROTO_UDP, Packet};
use network_types::eth::{EthHdr, EtherType};
use network_types::ip::{IpProto, Ipv4Hdr, Ipv6Hdr};
use network_types::udp::UdpHdr;
use network_types::vlan::VlanHdr;

/// The packet is not TCP/UDP over IP, is a non-first fragment, or is too
/// short to tell; the program passes it untouched.
pub struct NotClassified;

/// A classified packet: its source and what the decision needs.
pub struct Parsed {
    pub src: AddrKey,
    pub pkt: Packet,
}

/// VLAN tags the parser looks through (802.1Q inside 802.1ad is the deepest
/// stacking seen in practice).
const MAX_VLAN_TAGS: usize = 2;

/// IPv6 extension headers the parser skips before giving up. Legitimate
/// traffic carries one or two; the bound keeps the verifier's work finite.
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// TCP header bytes up to and including the flags byte (offset 13).
const TCP_THROUGH_FLAGS: usize = 14;

/// IPv4 "more fragments" flag and fragment offset share one 16-bit field;
/// the low 13 bits are the offset.
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;

/// IPv6 fragment header: the offset is the top 13 bits of bytes 2..4.
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;

#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, NotClassified> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(NotClassified);
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn read_be16(p: *const u16) -> u16 {
    // SAFETY: callers pass a pointer that ptr_at bounds-checked; packet data
    // has no alignment guarantee, hence the unaligned read.
    u16::from_be(unsafe { p.read_unaligned() })
}

/// Parses the frame down to the transport header.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Parsed, NotClassified> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: bounds-checked by ptr_at.
    let mut ether_type = read_be16(unsafe { &raw const (*eth).ether_type });
    let mut off = EthHdr::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != u16::from_be(EtherType::Ieee8021q as u16)
            && ether_type != u16::from_be(EtherType::Ieee8021ad as u16)
        {
            break;
        }
        let vlan: *const VlanHdr = ptr_at(ctx, off)?;
        // SAFETY: bounds-checked by ptr_at.
        ether_type = read_be16(unsafe { &raw const (*vlan).ether_type });
        off += VlanHdr::LEN;
    }

    let (src, proto, l4) = if ether_type == u16::from_be(EtherType::Ipv4 as u16) {
        ipv4(ctx, off)?
    } else if ether_type == u16::from_be(EtherType::Ipv6 as u16) {
        ipv6(ctx, off)?
    } else {
        return Err(NotClassified);
    };

    let pkt = if proto == PROTO_TCP {
        let tcp: *const [u8; TCP_THROUGH_FLAGS] = ptr_at(ctx, l4)?;
        // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
        let tcp = unsafe { &*tcp };
        Packet {
            proto,
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
            tcp_flags: tcp[13],
        }
    } else if proto == PROTO_UDP {
        let udp: *const UdpHdr = ptr_at(ctx, l4)?;
        Packet {
            proto,
            // SAFETY: bounds-checked by ptr_at; UdpHdr is all byte arrays.
            dport: unsafe { (*udp).dst_port() },
            tcp_flags: 0,
        }
    } else {
        return Err(NotClassified);
    };
    Ok(Parsed { src, pkt })
}

/// Source, transport protocol and transport header offset of an IPv4 packet.
#[inline(always)]
fn ipv4(ctx: &XdpContext, off: usize) -> Result<(AddrKey, u8, usize), NotClassified> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, off)?;
    // SAFETY: bounds-checked by ptr_at; Ipv4Hdr is all bytes and byte arrays.
    let ip = unsafe { &*ip };
    if ip.vihl >> 4 != 4 {
        return Err(NotClassified);
    }
    let ihl = usize::from(ip.vihl & 0x0f) * 4;
    if ihl < Ipv4Hdr::LEN {
        return Err(NotClassified);
    }
    // A non-first fragment carries no transport header; the kernel decides
    // about the reassembled datagram by its first fragment.
    if u16::from_be_bytes(ip.frags) & IPV4_FRAG_OFFSET_MASK != 0 {
        return Err(NotClassified);
    }
    Ok((addr::from_v4_bytes(ip.src_addr), ip.proto, off + ihl))
}

/// Source, transport protocol and transport header offset of an IPv6
/// packet, after the extension headers a host may put before it.
#[inline(always)]
fn ipv6(ctx: &XdpContext, off: usize) -> Result<(AddrKey, u8, usize), NotClassified> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, off)?;
    // SAFETY: bounds-checked by ptr_at; Ipv6Hdr is all bytes and byte arrays.
    let ip = unsafe { &*ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(NotClassified);
    }
    let src = ip.src_addr;
    let mut next = ip.next_hdr;
    let mut off = off + Ipv6Hdr::LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if next == IpProto::HopOpt as u8
            || next == IpProto::Ipv6Route as u8
            || next == IpProto::Ipv6Opts as u8
        {
            // Next header, then length in 8-octet units not counting the first.
            let ext: *const [u8; 2] = ptr_at(ctx, off)?;
            // SAFETY: bounds-checked by ptr_at.
            let ext = unsafe { &*ext };
            next = ext[0];
            off += (usize::from(ext[1]) + 1) * 8;
        } else if next == IpProto::Ipv6Frag as u8 {
            // Fixed 8 bytes: next header, reserved, offset + flags, id.
            let frag: *const [u8; 8] = ptr_at(ctx, off)?;
            // SAFETY: bounds-checked by ptr_at.
            let frag = unsafe { &*frag };
            if u16::from_be_bytes([frag[2], frag[3]]) & IPV6_FRAG_OFFSET_MASK != 0 {
                return Err(NotClassified);
            }
            next = frag[0];
            off += 8;
        } else {
            break;
        }
    }
    // A chain longer than the bound leaves `next` at an extension header,
    // which the caller rejects like any other non-TCP/UDP protocol.
    Ok((src, next, off))
}
