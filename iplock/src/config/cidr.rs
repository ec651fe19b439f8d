//! Address blocks of the allow list, and their LPM trie keys.

use std::fmt;
use std::net::IpAddr;

use aya::maps::lpm_trie::Key;
use iplock_common::addr::{self, AddrKey, V4_MAPPED_PREFIX_BITS};
use ipnet::IpNet;

use crate::error::{Result, input, quote};

fn not_a_block<T>(s: &str) -> Result<T> {
    input(format!(
        "{} is not an IPv4 or IPv6 address or CIDR block",
        quote(s)
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub ip: IpAddr,
    pub len: u32,
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare address (a single host), with `ipnet`.
    /// Host bits must be clear: `192.0.2.5/24` is refused rather than
    /// silently widened. An IPv4-mapped IPv6 block is refused too: its key
    /// is the IPv4 block's, and the program drops IPv4-mapped sources.
    pub fn parse(s: &str) -> Result<Cidr> {
        let s = s.trim();
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match s.split_once('/') {
                // ipnet says only that the whole is wrong; the address
                // alone tells which part is.
                Some((ip, _)) if ip.parse::<IpAddr>().is_ok() => {
                    let max = if ip.contains(':') { 128 } else { 32 };
                    return input(format!(
                        "{} has a prefix length that is not a number from 0 to {max}",
                        quote(s)
                    ));
                }
                Some(_) => return not_a_block(s),
                None => match s.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return not_a_block(s),
                },
            },
        };
        if let IpNet::V6(v6) = net
            && let Some(v4) = v6.network().to_ipv4_mapped()
        {
            let len = u32::from(v6.prefix_len()).saturating_sub(V4_MAPPED_PREFIX_BITS);
            return input(format!(
                "{} is an IPv4-mapped IPv6 block; write it as {v4}/{len}",
                quote(s)
            ));
        }
        if net.addr() != net.network() {
            return input(format!(
                "{} has host bits set; did you mean {}?",
                quote(s),
                net.trunc()
            ));
        }
        Ok(Cidr {
            ip: net.addr(),
            len: u32::from(net.prefix_len()),
        })
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

    #[test]
    fn sentences_say_what_is_wrong() {
        let sentence = |s: &str| Cidr::parse(s).unwrap_err().to_string();
        assert_eq!(
            sentence("192.0.2.5/24"),
            "`192.0.2.5/24` has host bits set; did you mean 192.0.2.0/24?"
        );
        assert_eq!(
            sentence("10.0.0.0/x"),
            "`10.0.0.0/x` has a prefix length that is not a number from 0 to 32"
        );
        assert_eq!(
            sentence("2001:db8::/129"),
            "`2001:db8::/129` has a prefix length that is not a number from 0 to 128"
        );
        assert_eq!(
            sentence("nonsense/8"),
            "`nonsense/8` is not an IPv4 or IPv6 address or CIDR block"
        );
        assert_eq!(
            sentence("::ffff:192.0.2.0/120"),
            "`::ffff:192.0.2.0/120` is an IPv4-mapped IPv6 block; write it as 192.0.2.0/24"
        );
        assert_eq!(
            Cidr::parse("::ffff:0:0/95").unwrap_err().to_string(),
            "`::ffff:0:0/95` has host bits set; did you mean ::fffe:0:0/95?"
        );
        assert_eq!(Cidr::parse("::/0").unwrap().len, 0);
        assert_eq!(Cidr::parse(" 192.0.2.0/24 ").unwrap().len, 24);
    }
}
