//! Knock sequences that change every period: HMAC-SHA256 of the shared
//! secret and the period's index picks the ports (and, when allowed, the
//! protocols), so a sequence seen on the wire is worthless a period later.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use iplock_common::names::MAX_STEPS;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP};
use sha2::Sha256;

use crate::config::duration;
use crate::config::knock::Step;
use crate::config::secret::Secret;
use crate::error::{Result, input};

/// Domain separation for the HMAC input, so the secret serves nothing else.
const LABEL: &[u8] = b"iplock rotating knock v1";
const ID_LABEL: &[u8] = b"iplock rotating knock id v1";

/// How a rotating sequence is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub secret: Secret,
    pub period: Duration,
    pub steps: usize,
    /// Steps may be udp as well as tcp.
    pub udp: bool,
}

/// The period and steps when nothing says otherwise, on both sides.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30);
pub const DEFAULT_STEPS: usize = 3;

/// Everything besides the secret that decides a rotating sequence: a
/// client draws the server's ports only when it has all of it right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub period: Duration,
    pub steps: usize,
    /// Steps may be udp as well as tcp.
    pub udp: bool,
    /// Ports never drawn (the server's protected and trap ports), sorted,
    /// each once: the same set written in another order draws the same ports.
    pub exclude: Vec<u16>,
}

impl Params {
    /// Checks what the filter can take: a period of whole seconds (it
    /// counts periods in seconds) and 1 to 8 steps. `source` says where
    /// they were written, as in "rotate." or "--".
    pub fn new(
        period: Duration,
        steps: usize,
        udp: bool,
        exclude: &[u16],
        source: &str,
    ) -> Result<Params> {
        if period.subsec_nanos() != 0 {
            return input(format!(
                "{source}period {} is not a whole number of seconds",
                duration::format(period)
            ));
        }
        if !(1..=MAX_STEPS).contains(&steps) {
            return input(format!(
                "{source}steps {steps} is out of range; use 1 to {MAX_STEPS}"
            ));
        }
        if exclude.contains(&0) {
            return input(format!(
                "{source}exclude has port 0, which is not a port number from 1 to 65535"
            ));
        }
        let mut exclude = exclude.to_vec();
        exclude.sort_unstable();
        exclude.dedup();
        Ok(Params {
            period,
            steps,
            udp,
            exclude,
        })
    }

    pub fn rotation(&self, secret: Secret) -> Rotation {
        Rotation {
            secret,
            period: self.period,
            steps: self.steps,
            udp: self.udp,
        }
    }

    /// The first parameter on which `self` and `other` differ: its name,
    /// `self`'s value and `other`'s.
    pub fn difference(&self, other: &Params) -> Option<(&'static str, String, String)> {
        let pairs = [
            (
                "period",
                duration::format(self.period),
                duration::format(other.period),
            ),
            ("steps", self.steps.to_string(), other.steps.to_string()),
            ("udp", self.udp.to_string(), other.udp.to_string()),
            ("exclude", ports(&self.exclude), ports(&other.exclude)),
        ];
        pairs.into_iter().find(|(_, a, b)| a != b)
    }

    /// The flags of `iplock secret new` (and `iplock knock`) for these parameters.
    pub fn flags(&self) -> String {
        let mut flags = format!(
            "--period {} --steps {}",
            duration::format(self.period),
            self.steps
        );
        if !self.exclude.is_empty() {
            flags += &format!(" --exclude {}", ports(&self.exclude));
        }
        if self.udp {
            flags += " --udp";
        }
        flags
    }
}

/// `22,23,3389`, or `none`.
fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    list.join(",")
}

/// The index of the period containing `unix_secs`.
pub fn period_index(unix_secs: u64, period: Duration) -> u64 {
    unix_secs / period.as_secs().max(1)
}

/// Seconds since the epoch, from this machine's clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A stream of uniform 32-bit words from HMAC(secret, label, index, block).
struct Words {
    secret: Secret,
    index: u64,
    block: u32,
    buf: Vec<u32>,
}

impl Words {
    fn next(&mut self) -> u32 {
        if self.buf.is_empty() {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
            mac.update(LABEL);
            mac.update(&self.index.to_be_bytes());
            mac.update(&self.block.to_be_bytes());
            self.block += 1;
            let out = mac.finalize().into_bytes();
            self.buf = out
                .chunks(4)
                .rev()
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        self.buf.pop().expect("refilled above")
    }

    /// Uniform in 0..n, by rejection so no value is favoured.
    fn below(&mut self, n: u32) -> u32 {
        let limit = u32::MAX - u32::MAX % n;
        loop {
            let w = self.next();
            if w < limit {
                return w % n;
            }
        }
    }
}

impl Rotation {
    /// The id the kernel knows period `index`'s sequence by, for marking
    /// it spent: from the same HMAC, so a new secret's sequences are never
    /// taken for the old one's; never 0, which marks a fixed sequence.
    pub fn sequence_id(&self, index: u64) -> u32 {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(ID_LABEL);
        mac.update(&index.to_be_bytes());
        let out = mac.finalize().into_bytes();
        u32::from_be_bytes([out[0], out[1], out[2], out[3]]).max(1)
    }

    /// How early the filter switches to the next period's sequence: the
    /// previous one stays valid, so an early switch costs a client whose
    /// clock is right nothing and lets one whose clock runs a little ahead,
    /// or who knocks right at the boundary, in.
    pub fn lead(&self) -> u64 {
        (self.period.as_secs() / 4).clamp(1, 2)
    }

    /// The period the filter is in at `unix_secs` (see [`Rotation::lead`]).
    pub fn filter_period(&self, unix_secs: u64) -> u64 {
        period_index(unix_secs + self.lead(), self.period)
    }

    /// The sequence of period `index`: `steps` distinct ports drawn
    /// uniformly from 1..=65535 without the `excluded` ones (protected and
    /// trap ports), redrawn while it is sorted either way (from 3 steps on),
    /// exactly the rules a fixed sequence must obey.
    pub fn sequence(&self, index: u64, excluded: &[u16]) -> Vec<Step> {
        let mut skip: Vec<u16> = excluded.iter().copied().filter(|&p| p != 0).collect();
        skip.sort_unstable();
        skip.dedup();
        let usable = u32::from(u16::MAX) - skip.len() as u32;
        // The r-th port (from 0) of 1..=65535 that is not skipped.
        let nth = |r: u32| {
            let mut p = r + 1;
            for &s in &skip {
                if u32::from(s) <= p {
                    p += 1;
                }
            }
            p as u16
        };
        let mut words = Words {
            secret: self.secret,
            index,
            block: 0,
            buf: Vec::new(),
        };
        loop {
            let mut ports: Vec<u16> = Vec::with_capacity(self.steps);
            while ports.len() < self.steps {
                let p = nth(words.below(usable));
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            let sorted = self.steps >= 3
                && (ports.windows(2).all(|w| w[0] < w[1]) || ports.windows(2).all(|w| w[0] > w[1]));
            if sorted {
                continue;
            }
            return ports
                .into_iter()
                .map(|port| Step {
                    proto: if self.udp && words.next() & 1 == 1 {
                        PROTO_UDP
                    } else {
                        PROTO_TCP
                    },
                    port,
                    timeout: None,
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::knock::validate;

    fn rot(udp: bool, steps: usize) -> Rotation {
        Rotation {
            secret: [7; 32],
            period: Duration::from_secs(30),
            steps,
            udp,
        }
    }

    #[test]
    fn same_inputs_same_sequence_other_period_other_sequence() {
        let r = rot(false, 3);
        assert_eq!(r.sequence(100, &[22]), r.sequence(100, &[22]));
        assert_ne!(r.sequence(100, &[22]), r.sequence(101, &[22]));
        let other = Rotation {
            secret: [8; 32],
            ..r.clone()
        };
        assert_ne!(r.sequence(100, &[22]), other.sequence(100, &[22]));
    }

    #[test]
    fn every_sequence_obeys_the_fixed_rules() {
        for steps in 1..=8 {
            let r = rot(true, steps);
            for index in 0..100 {
                let seq = r.sequence(index, &[22, 2222]);
                assert_eq!(seq.len(), steps);
                validate(&seq, &[22, 2222]).unwrap();
            }
        }
    }

    #[test]
    fn udp_only_when_allowed_and_then_both_appear() {
        let tcp_only = (0..200).flat_map(|i| rot(false, 4).sequence(i, &[22]));
        assert!(tcp_only.into_iter().all(|s| s.proto == PROTO_TCP));
        let mixed: Vec<_> = (0..200)
            .flat_map(|i| rot(true, 4).sequence(i, &[22]))
            .collect();
        assert!(mixed.iter().any(|s| s.proto == PROTO_UDP));
        assert!(mixed.iter().any(|s| s.proto == PROTO_TCP));
    }

    #[test]
    fn ports_are_spread_over_the_range() {
        let ports: Vec<u16> = (0..2000)
            .flat_map(|i| rot(false, 1).sequence(i, &[]))
            .map(|s| s.port)
            .collect();
        let high = ports.iter().filter(|&&p| p > 32768).count();
        assert!((800..1200).contains(&high), "{high} of 2000 above 32768");
    }

    #[test]
    fn excluded_ports_are_never_drawn_and_the_rest_are_reachable() {
        let r = rot(false, 1);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..3000 {
            let p = r.sequence(i, &[1, 2, 3, 65535]);
            assert!(![1, 2, 3, 65535].contains(&p[0].port));
            seen.insert(p[0].port);
        }
        assert!(seen.len() > 2900);
    }

    #[test]
    fn params_are_checked_and_compared_as_sets() {
        let p = |secs, steps, exclude: &[u16]| {
            Params::new(Duration::from_secs(secs), steps, false, exclude, "--")
        };
        let a = p(30, 3, &[3389, 22, 23, 22]).unwrap();
        assert_eq!(a.exclude, [22, 23, 3389]);
        assert_eq!(a.difference(&p(30, 3, &[23, 3389, 22]).unwrap()), None);
        assert_eq!(
            a.difference(&p(20, 3, &[22]).unwrap()),
            Some(("period", "30s".into(), "20s".into()))
        );
        assert_eq!(a.flags(), "--period 30s --steps 3 --exclude 22,23,3389");
        for (bad, needle) in [
            (
                Params::new(Duration::from_millis(1500), 3, false, &[], "--"),
                "--period 1500ms is not a whole",
            ),
            (p(30, 9, &[]), "--steps 9 is out of range"),
            (p(30, 0, &[]), "--steps 0 is out of range"),
            (p(30, 3, &[0]), "port 0"),
        ] {
            let msg = bad.unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
    }

    #[test]
    fn periods_and_ids() {
        let p = Duration::from_secs(30);
        assert_eq!(period_index(59, p), 1);
        assert_eq!(period_index(60, p), 2);
        let r = rot(false, 3);
        assert_ne!(r.sequence_id(5), r.sequence_id(6));
        let other = Rotation {
            secret: [8; 32],
            ..r.clone()
        };
        assert_ne!(r.sequence_id(5), other.sequence_id(5));
        assert_eq!(r.filter_period(27), 0);
        assert_eq!(
            r.filter_period(28),
            1,
            "switches 2 s before the boundary of a 30 s period"
        );
    }
}
