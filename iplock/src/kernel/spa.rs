//! Single packet authorization on the kernel's side: the ring the program
//! copies SPA datagrams into, the door an accepted packet opens (the
//! source map entry the program reads), and the daemon's SPA counters in
//! their pinned array.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use iplock_common::addr::{self, AddrKey};
use iplock_common::names::MAP_SPA;
use iplock_common::spa::{SPA_STAT_ACCEPTED, SPA_STAT_REFUSED, SPA_STATS, SpaHeader};
use iplock_common::state::{BAN_CLOSED_DOOR, BAN_WRONG_KNOCK, SourceState};
use serde::Serialize;

use crate::error::{Context as _, Result};
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::spa::Reason;
use crate::system::clock::now_ns;

/// One datagram to the SPA port, as the program copied it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaDatagram {
    pub source: IpAddr,
    pub ifindex: u32,
    /// The payload, cut at [`iplock_common::spa::SPA_PAYLOAD_MAX`] bytes.
    pub payload: Vec<u8>,
    /// The payload's length on the wire.
    pub wire_len: usize,
}

impl SpaDatagram {
    /// Whether the program cut the payload: such a datagram is refused as
    /// too long, never verified on its first bytes.
    pub fn was_cut(&self) -> bool {
        self.wire_len > self.payload.len()
    }
}

/// The SPA ring, pinned with the filter.
pub struct SpaRing(RingBuf<MapData>);

impl SpaRing {
    pub fn open(dir: &PinDir) -> Result<SpaRing> {
        crate::kernel::maps::open_ring(dir, MAP_SPA).map(SpaRing)
    }

    /// The next datagram in the ring, or None once it is empty; a record
    /// too short for its header or its length (another writer) is skipped.
    pub fn read(&mut self) -> Option<SpaDatagram> {
        while let Some(item) = self.0.next() {
            if let Some(d) = parse_record(&item) {
                return Some(d);
            }
        }
        None
    }
}

fn parse_record(item: &[u8]) -> Option<SpaDatagram> {
    let head = item.get(..size_of::<SpaHeader>())?;
    let h: SpaHeader = bytemuck::pod_read_unaligned(head);
    let start = size_of::<SpaHeader>();
    let payload = item.get(start..start + h.len as usize)?;
    Some(SpaDatagram {
        source: addr::to_ip(&h.addr),
        ifindex: h.ifindex,
        payload: payload.to_vec(),
        wire_len: h.wire_len as usize,
    })
}

impl AsRawFd for SpaRing {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What opening the door did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Boot-time ns until which the door is open.
    pub until_ns: u64,
    /// Reasons of the guessing bans lifted (closed door, wrong knock).
    pub lifted: Vec<&'static str>,
}

/// Opens the door of `address` for `window` from now, as the last knock
/// of a sequence does: the source's entry gets `open_until_ns`, its knock
/// progress untouched, and a door already open longer stays so. Bans
/// earned by guessing (a closed-door SYN, a wrong knock) covering the
/// address are lifted, since the packet proved the key; trap, manual and
/// other bans stay, and the program keeps dropping what they cover.
pub fn open_door(maps: &mut Maps, address: IpAddr, window: Duration) -> Result<Opened> {
    let key: AddrKey = addr::from_ip(address.to_canonical());
    let now = now_ns();
    let until = now.saturating_add(window.as_nanos() as u64);
    let old = maps.sources.get(&key, 0).unwrap_or_default();
    let new = SourceState {
        open_until_ns: old.open_until_ns.max(until),
        ..old
    };
    maps.sources
        .insert(key, new, 0)
        .context(|| format!("opening the door for {address}"))?;
    let cfg = maps.config()?;
    let ban_key = addr::ban_key(&key, cfg.ban_prefix_v6);
    let mut lifted = Vec::new();
    for map in maps.ban_maps_mut() {
        if let Ok(b) = map.get(&ban_key, 0)
            && (b.reason == BAN_CLOSED_DOOR || b.reason == BAN_WRONG_KNOCK)
            && map.remove(&ban_key).is_ok()
        {
            lifted.push(b.reason_name());
        }
    }
    Ok(Opened {
        until_ns: new.open_until_ns,
        lifted,
    })
}

/// What `iplock status` and the metrics show of the daemon's SPA work.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SpaCounters {
    pub accepted: u64,
    /// Refused packets by [`Reason::name`], every reason listed.
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

fn index(verdict: Option<Reason>) -> u32 {
    match verdict {
        None => SPA_STAT_ACCEPTED,
        Some(r) => {
            let i = Reason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u32;
            (SPA_STAT_REFUSED + i).min(SPA_STATS - 1)
        }
    }
}

/// Adds one to the count of an accepted packet (`None`) or of a refusal.
pub fn count(maps: &mut Maps, verdict: Option<Reason>) -> Result<()> {
    let i = index(verdict);
    let n = maps.spa_stats.get(&i, 0).unwrap_or(0);
    maps.spa_stats
        .set(i, n.wrapping_add(1), 0)
        .context(|| "counting an SPA packet".into())
}

/// The daemon's SPA counters.
pub fn counters(maps: &Maps) -> Result<SpaCounters> {
    let get = |i: u32| {
        maps.spa_stats
            .get(&i, 0)
            .context(|| "reading the SPA counters".into())
    };
    let mut c = SpaCounters {
        accepted: get(SPA_STAT_ACCEPTED)?,
        ..SpaCounters::default()
    };
    for r in Reason::ALL {
        c.refused.insert(r.name(), get(index(Some(r)))?);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_counter_of_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        assert!(seen.insert(index(None)));
        for r in Reason::ALL {
            let i = index(Some(r));
            assert!(i < SPA_STATS);
            assert!(seen.insert(i), "{r} shares counter {i}");
        }
    }

    #[test]
    fn a_record_is_read_up_to_its_length() {
        let h = SpaHeader {
            addr: addr::from_ip("192.0.2.2".parse().unwrap()),
            ifindex: 7,
            len: 3,
            wire_len: 3,
            _pad: 0,
        };
        let mut item = bytemuck::bytes_of(&h).to_vec();
        item.extend_from_slice(b"abcdef");
        let d = parse_record(&item).unwrap();
        assert_eq!(d.source, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(d.payload, b"abc");
        assert!(!d.was_cut());
        item.truncate(size_of::<SpaHeader>() + 2);
        assert_eq!(parse_record(&item), None, "shorter than its length");
    }
}
