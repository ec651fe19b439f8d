//! Address blocks of the allow list, and their LPM trie keys.

use std::fmt;
use std::net::IpAddr;

use aya::maps::lpm_trie::Key;
use iplock_common::addr::{self, AddrKey, V4_MAPPED_PREFIX_BITS};

use crate::error::{Result, input, quote};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub ip: IpAddr,
    pub len: u32,
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare address (a single host). Host bits must
    /// be clear: `192.0.2.5/24` is refused rather than silently widened.
    pub fn parse(s: &str) -> Result<Cidr> {
        let s = s.trim();
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return input(format!(
                "{} is not an IPv4 or IPv6 address or CIDR block",
                quote(s)
            ));
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len.map(str::parse::<u32>) {
            None => max,
            Some(Ok(n)) if n <= max => n,
            Some(_) => {
                return input(format!(
                    "{} has a prefix length that is not a number from 0 to {max}",
                    quote(s)
                ));
            }
        };
        let cidr = Cidr { ip, len };
        let masked = addr::to_ip(&addr::mask(&addr::from_ip(ip), cidr.key_bits()));
        if masked != ip {
            return input(format!(
                "{} has host bits set; did you mean {masked}/{len}?",
                quote(s)
            ));
        }
        Ok(cidr)
    }

    /// Prefix length on the 16-byte key (IPv4 blocks sit under ::ffff:0:0/96).
    pub fn key_bits(&self) -> u32 {
        if self.ip.is_ipv4() {
            V4_MAPPED_PREFIX_BITS + self.len
        } else {
            self.len
        }
    }

    pub fn key(&self) -> Key<AddrKey> {
        Key::new(self.key_bits(), addr::from_ip(self.ip))
    }

    /// The block an LPM key stands for.
    pub fn from_key(key: &Key<AddrKey>) -> Cidr {
        let data = key.data();
        let ip = addr::to_ip(&data);
        let len = if ip.is_ipv4() {
            key.prefix_len().saturating_sub(V4_MAPPED_PREFIX_BITS)
        } else {
            key.prefix_len()
        };
        Cidr { ip, len }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let key = addr::from_ip(ip);
        ip.is_ipv4() == self.ip.is_ipv4()
            && addr::mask(&key, self.key_bits()) == addr::from_ip(self.ip)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_blocks_use_the_mapped_prefix() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert_eq!(c.key_bits(), 120);
        assert_eq!(Cidr::from_key(&c.key()), c);
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(!c.contains("198.51.100.1".parse().unwrap()));
        assert_eq!(Cidr::parse("192.0.2.9").unwrap().len, 32);
    }

    #[test]
    fn v6_blocks() {
        let c = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(c.key_bits(), 64);
        assert_eq!(Cidr::from_key(&c.key()), c);
        assert!(c.contains("2001:db8::5".parse().unwrap()));
        assert!(!c.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_blocks_in_one_sentence() {
        for bad in [
            "192.0.2.5/24",
            "192.0.2.0/33",
            "nonsense",
            "2001:db8::/129",
            "10.0.0.0/x",
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string().contains(bad.split('/').next().unwrap()),
                "{err}"
            );
        }
    }
}
