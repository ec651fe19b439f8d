//! The byte-order convention of every map key that holds an address.
//!
//! An address key is 16 bytes in network byte order, exactly as the bytes
//! appear on the wire. IPv6 addresses are stored as they are; IPv4 addresses
//! are stored as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), so one map
//! serves both families and an LPM trie matches an IPv4 /n as a /(96 + n).
//! Ports and durations in [`crate::config::Config`] are host byte order.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as stored in map keys: see the module documentation.
pub type AddrKey = [u8; 16];

/// Bits of the IPv4-mapped prefix `::ffff:0:0/96`.
pub const V4_MAPPED_PREFIX_BITS: u32 = 96;

/// Key of an IPv4 address given as its four wire bytes.
#[inline(always)]
pub const fn from_v4_bytes(b: [u8; 4]) -> AddrKey {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
    ]
}

/// Key of an IP address.
pub const fn from_ip(ip: IpAddr) -> AddrKey {
    match ip {
        IpAddr::V4(v4) => from_v4_bytes(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Whether a key holds an IPv4 address.
pub const fn is_v4(key: &AddrKey) -> bool {
    let mut i = 0;
    while i < 10 {
        if key[i] != 0 {
            return false;
        }
        i += 1;
    }
    key[10] == 0xff && key[11] == 0xff
}

/// The IP address a key holds: IPv4 for IPv4-mapped keys.
pub fn to_ip(key: &AddrKey) -> IpAddr {
    if is_v4(key) {
        IpAddr::V4(Ipv4Addr::new(key[12], key[13], key[14], key[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*key))
    }
}

/// The key with every bit past the first `bits` cleared.
#[inline(always)]
pub fn mask(key: &AddrKey, bits: u32) -> AddrKey {
    let mut out = [0u8; 16];
    let mut i = 0usize;
    while i < 16 {
        let start = (i as u32) * 8;
        out[i] = if bits >= start + 8 {
            key[i]
        } else if bits <= start {
            0
        } else {
            key[i] & (0xffu8 << (8 - (bits - start)))
        };
        i += 1;
    }
    out
}

/// The key under which a source's ban is stored: an IPv4 source is banned
/// alone, an IPv6 source with the `v6_prefix` bits around it (a /64 by
/// default, because one host usually owns a whole /64).
#[inline(always)]
pub fn ban_key(src: &AddrKey, v6_prefix: u32) -> AddrKey {
    if is_v4(src) {
        *src
    } else {
        mask(src, v6_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_v4_mapped_in_wire_order() {
        let k = from_ip("192.0.2.7".parse().unwrap());
        assert_eq!(&k[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&k[12..], &[192, 0, 2, 7]);
        assert!(is_v4(&k));
        assert_eq!(to_ip(&k), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_is_wire_order() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let k = from_ip(ip);
        assert_eq!(&k[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(k[15], 1);
        assert!(!is_v4(&k));
        assert_eq!(to_ip(&k), ip);
    }

    #[test]
    fn mask_clears_host_bits() {
        let k = from_ip("2001:db8:1:2:3:4:5:6".parse().unwrap());
        assert_eq!(
            to_ip(&mask(&k, 64)),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(to_ip(&mask(&k, 20)), "2001::".parse::<IpAddr>().unwrap());
        assert_eq!(mask(&k, 128), k);
        assert_eq!(mask(&k, 0), [0; 16]);
    }

    #[test]
    fn ban_key_covers_v6_prefix_and_single_v4() {
        let a = from_ip("2001:db8::1".parse().unwrap());
        let b = from_ip("2001:db8::ffff:2".parse().unwrap());
        assert_eq!(ban_key(&a, 64), ban_key(&b, 64));
        let c = from_ip("192.0.2.1".parse().unwrap());
        assert_eq!(ban_key(&c, 64), c);
    }
}
