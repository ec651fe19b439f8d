//! The byte-order convention of every map key that holds an address.
//!
//! An address key is 16 bytes in network byte order, exactly as the bytes
//! appear on the wire. IPv6 addresses are stored as they are; IPv4 addresses
//! are stored as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), so one map
//! serves both families and an LPM trie matches an IPv4 /n as a /(96 + n).
//! Ports and durations in [`crate::config::Config`] are host byte order.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytemuck::{Pod, Zeroable};

/// An address as stored in map keys: see the module documentation.
pub type AddrKey = [u8; 16];

/// Bits of the IPv4-mapped prefix `::ffff:0:0/96`.
pub const V4_MAPPED_PREFIX_BITS: u32 = 96;

/// An [`AddrKey`] as the XDP program holds it: the same 16 bytes in the
/// same order, as two native-endian words. BPF has no unaligned access to
/// its stack, so a byte array is built, copied, compared and masked a byte
/// at a time (some 200 instructions a packet); two aligned words take a
/// few. Maps keyed by an [`AddrKey`] take it unchanged: the bytes are the
/// key, whatever the type that holds them.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Words(pub [u64; 2]);

crate::user_pod!(Words);

/// The first four bytes of the second word of an IPv4-mapped key.
const MAPPED_MARK: [u8; 4] = [0, 0, 0xff, 0xff];

impl Words {
    /// The words of a key.
    #[inline(always)]
    pub const fn of(k: &AddrKey) -> Words {
        Words([
            u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]),
            u64::from_ne_bytes([k[8], k[9], k[10], k[11], k[12], k[13], k[14], k[15]]),
        ])
    }

    /// The key these words hold.
    #[inline(always)]
    pub const fn bytes(&self) -> AddrKey {
        let [a, b] = self.0;
        let (a, b) = (a.to_ne_bytes(), b.to_ne_bytes());
        [
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1], b[2], b[3], b[4], b[5],
            b[6], b[7],
        ]
    }

    /// The key of an IPv4 address given as its four wire bytes.
    #[inline(always)]
    pub const fn v4(b: [u8; 4]) -> Words {
        let m = MAPPED_MARK;
        Words([
            0,
            u64::from_ne_bytes([m[0], m[1], m[2], m[3], b[0], b[1], b[2], b[3]]),
        ])
    }

    /// Whether these words hold an IPv4 address.
    #[inline(always)]
    pub const fn is_v4(&self) -> bool {
        let b = self.0[1].to_ne_bytes();
        self.0[0] == 0
            && u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) == u32::from_ne_bytes(MAPPED_MARK)
    }

    /// The words with every bit past the first `bits` cleared.
    #[inline(always)]
    pub const fn masked(&self, bits: u32) -> Words {
        Words([
            self.0[0] & word_mask(bits),
            self.0[1] & word_mask(bits.saturating_sub(64)),
        ])
    }

    /// The key under which a source's ban is stored: see [`ban_key`].
    #[inline(always)]
    pub const fn ban_key(&self, v6_prefix: u32) -> Words {
        if self.is_v4() {
            *self
        } else {
            self.masked(v6_prefix)
        }
    }
}

/// The mask of a word's first `bits` bits in wire order (all of them from
/// 64 on), as a native-endian word.
#[inline(always)]
const fn word_mask(bits: u32) -> u64 {
    let be = if bits >= 64 {
        u64::MAX
    } else if bits == 0 {
        0
    } else {
        u64::MAX << (64 - bits)
    };
    be.to_be()
}

/// Key of an IPv4 address given as its four wire bytes.
#[inline(always)]
pub const fn from_v4_bytes(b: [u8; 4]) -> AddrKey {
    Words::v4(b).bytes()
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
    Words::of(key).is_v4()
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
    Words::of(key).masked(bits).bytes()
}

/// The key under which a source's ban is stored: an IPv4 source is banned
/// alone, an IPv6 source with the `v6_prefix` bits around it (a /64 by
/// default, because one host usually owns a whole /64).
#[inline(always)]
pub fn ban_key(src: &AddrKey, v6_prefix: u32) -> AddrKey {
    Words::of(src).ban_key(v6_prefix).bytes()
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
    fn words_hold_the_key_bytes() {
        let k = from_ip("2001:db8:1:2:3:4:5:6".parse().unwrap());
        let w = Words::of(&k);
        assert_eq!(w.bytes(), k);
        assert_eq!(bytemuck::bytes_of(&w), &k);
        assert_eq!(
            Words::v4([192, 0, 2, 7]).bytes(),
            from_ip("192.0.2.7".parse().unwrap())
        );
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
