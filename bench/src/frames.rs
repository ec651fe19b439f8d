//! Ethernet + IPv4/IPv6 + TCP frames with valid checksums: the stack drops
//! a frame with a bad checksum before netfilter sees it, which would make
//! any comparison with iptables meaningless.

use std::net::IpAddr;

pub const TCP_SYN: u8 = 0x02;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const TCP_LEN: usize = 20;
const PROTO_TCP: u8 = 6;

/// One TCP segment without payload or options.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub flags: u8,
}

impl Tcp {
    pub fn frame(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(ETH_LEN + IPV6_LEN + TCP_LEN);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        let mut tcp = [0u8; TCP_LEN];
        tcp[0..2].copy_from_slice(&self.sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[12] = ((TCP_LEN / 4) as u8) << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut ip = [0u8; IPV4_LEN];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((IPV4_LEN + TCP_LEN) as u16).to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = 64;
                ip[9] = PROTO_TCP;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let c = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                let mut pseudo = [0u8; 12];
                pseudo[0..4].copy_from_slice(&s.octets());
                pseudo[4..8].copy_from_slice(&d.octets());
                pseudo[9] = PROTO_TCP;
                pseudo[10..12].copy_from_slice(&(TCP_LEN as u16).to_be_bytes());
                let c = checksum(&[&pseudo, &tcp]);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut ip = [0u8; IPV6_LEN];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(TCP_LEN as u16).to_be_bytes());
                ip[6] = PROTO_TCP;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                let mut pseudo = [0u8; 40];
                pseudo[0..16].copy_from_slice(&s.octets());
                pseudo[16..32].copy_from_slice(&d.octets());
                pseudo[32..36].copy_from_slice(&(TCP_LEN as u32).to_be_bytes());
                pseudo[39] = PROTO_TCP;
                let c = checksum(&[&pseudo, &tcp]);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            _ => panic!("a TCP frame needs two addresses of one family"),
        }
        f.extend_from_slice(&tcp);
        f
    }
}

/// The Internet checksum (RFC 1071) of the concatenated parts, each of even length.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for w in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a frame made by [`Tcp::frame`] (or rewritten by the generator) says,
/// after checking both of its checksums.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub src: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub flags: u8,
}

/// Parses an Ethernet + IPv4/IPv6 + TCP frame and verifies its IPv4 header
/// and TCP checksums; `Err` says what is wrong.
pub fn check(f: &[u8]) -> Result<Checked, String> {
    if f.len() < ETH_LEN + IPV4_LEN + TCP_LEN {
        return Err(format!("a {}-byte frame is too short", f.len()));
    }
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let (src, tcp, pseudo): (IpAddr, &[u8], Vec<u8>) = match ethertype {
        0x0800 => {
            let ip = &f[ETH_LEN..ETH_LEN + IPV4_LEN];
            if checksum(&[ip]) != 0 {
                return Err("bad IPv4 header checksum".into());
            }
            let mut pseudo = Vec::from(&ip[12..20]);
            pseudo.extend_from_slice(&[0, PROTO_TCP]);
            pseudo.extend_from_slice(&(TCP_LEN as u16).to_be_bytes());
            let src: [u8; 4] = ip[12..16].try_into().expect("4 bytes");
            (src.into(), &f[ETH_LEN + IPV4_LEN..], pseudo)
        }
        0x86dd => {
            if f.len() < ETH_LEN + IPV6_LEN + TCP_LEN {
                return Err(format!("a {}-byte IPv6 frame is too short", f.len()));
            }
            let ip = &f[ETH_LEN..ETH_LEN + IPV6_LEN];
            let mut pseudo = Vec::from(&ip[8..40]);
            pseudo.extend_from_slice(&(TCP_LEN as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, PROTO_TCP]);
            let src: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
            (src.into(), &f[ETH_LEN + IPV6_LEN..], pseudo)
        }
        other => return Err(format!("ethertype {other:#06x} is not IP")),
    };
    let tcp = &tcp[..TCP_LEN];
    if checksum(&[&pseudo, tcp]) != 0 {
        return Err("bad TCP checksum".into());
    }
    Ok(Checked {
        src,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        dport: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags: tcp[13],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(src: &str, dst: &str) -> Tcp {
        Tcp {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: 40000,
            dport: 22,
            seq: 7,
            flags: TCP_SYN,
        }
    }

    #[test]
    fn frames_carry_valid_checksums() {
        for t in [
            syn("198.51.100.9", "192.0.2.1"),
            syn("2001:db8::2", "2001:db8::1"),
        ] {
            let c = check(&t.frame()).unwrap();
            assert_eq!((c.src, c.sport, c.dport, c.seq), (t.src, 40000, 22, 7));
            assert_eq!(c.flags, TCP_SYN);
        }
    }

    #[test]
    fn a_flipped_bit_is_caught() {
        let mut f = syn("198.51.100.9", "192.0.2.1").frame();
        f[ETH_LEN + IPV4_LEN + 4] ^= 1;
        assert_eq!(check(&f), Err("bad TCP checksum".into()));
        let mut f = syn("198.51.100.9", "192.0.2.1").frame();
        f[ETH_LEN + 8] ^= 1;
        assert_eq!(check(&f), Err("bad IPv4 header checksum".into()));
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // The worked example of RFC 1071 style sums: a header whose checksum
        // field is filled in must sum to zero, checked independently here.
        let f = syn("192.0.2.2", "192.0.2.1").frame();
        let ip = &f[ETH_LEN..ETH_LEN + IPV4_LEN];
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
    }
}
