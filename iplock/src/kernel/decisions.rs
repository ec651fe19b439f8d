//! The CrowdSec decision map and `iplock run`'s record of its pulls: what
//! the daemon writes into them, what the sweep removes, what `iplock
//! status` and `iplock ban list` read.
//!
//! Decisions live in an LPM trie of their own (`IPLOCK_DECISIONS`): an
//! exact address is a /128 (an IPv4 one as a v4-mapped /128), a range its
//! prefix, so one lookup of the source covers both. Only `iplock run`
//! writes it, so neither iplock's own bans nor a flood can evict one.

use std::collections::{BTreeMap, HashMap};

use aya::maps::{Array, LpmTrie, Map, MapData, MapError};
use iplock_common::addr::AddrKey;
use iplock_common::names::{MAP_CROWDSEC, MAP_DECISIONS};
use iplock_common::state::{CrowdsecStats, DecisionEntry, ORIGINS, origin_name};

use crate::config::cidr::Cidr;
use crate::error::{Context as _, Error, Result};
use crate::kernel::pin_dir::PinDir;

pub type DecisionMap = LpmTrie<MapData, AddrKey, DecisionEntry>;

/// Decisions in force, counted by origin code (index of [`ORIGINS`]).
pub type ByOrigin = [usize; ORIGINS.len()];

/// Handles on the decision map and the pull record of a loaded filter.
pub struct Decisions {
    pub map: DecisionMap,
    pub stats: Array<MapData, CrowdsecStats>,
}

/// What one write of decisions did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub banned: usize,
    pub lifted: usize,
    /// Decisions the map had no room for (`maps.decisions` is full).
    pub no_room: usize,
}

fn open_map(dir: &PinDir, name: &str) -> Result<Map> {
    let path = dir.map(name);
    let data = MapData::from_pin(&path).context(|| format!("opening {}", path.display()))?;
    Map::from_map_data(data).context(|| format!("opening {}", path.display()))
}

fn typed<T>(map: Map, name: &str) -> Result<T>
where
    T: TryFrom<Map, Error = MapError>,
{
    T::try_from(map).map_err(|source| Error::Map {
        what: format!("map {name} has an unexpected type"),
        source,
    })
}

fn entry(until_ns: u64, origin: u32) -> DecisionEntry {
    DecisionEntry {
        until_ns,
        origin,
        _pad: 0,
    }
}

impl Decisions {
    /// Opens the maps a loaded filter pinned in `dir`.
    pub fn open(dir: &PinDir) -> Result<Decisions> {
        dir.require_loaded()?;
        Ok(Decisions {
            map: typed(open_map(dir, MAP_DECISIONS)?, MAP_DECISIONS)?,
            stats: typed(open_map(dir, MAP_CROWDSEC)?, MAP_CROWDSEC)?,
        })
    }

    fn ban(&mut self, target: &Cidr, until_ns: u64, origin: u32, w: &mut Written) -> Result<()> {
        match self.map.insert(&target.key(), entry(until_ns, origin), 0) {
            Ok(()) => w.banned += 1,
            // A full trie refuses new keys (ENOSPC; E2BIG on some kernels).
            Err(MapError::SyscallError(e))
                if matches!(
                    e.io_error.raw_os_error(),
                    Some(libc::ENOSPC | libc::E2BIG | libc::ENOMEM)
                ) =>
            {
                w.no_room += 1
            }
            Err(e) => {
                return Err(Error::Map {
                    what: format!("writing the CrowdSec decision on {target}"),
                    source: e,
                });
            }
        }
        Ok(())
    }

    fn lift(&mut self, target: &Cidr, w: &mut Written) -> Result<()> {
        match self.map.remove(&target.key()) {
            Ok(()) => w.lifted += 1,
            Err(MapError::KeyNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(Error::Map {
                    what: format!("lifting the CrowdSec decision on {target}"),
                    source: e,
                });
            }
        }
        Ok(())
    }

    /// Writes the changes of a delta pull in their order: a target with
    /// its end and origin is banned, one with `None` lifted.
    pub fn apply(&mut self, changes: &[(Cidr, Option<(u64, u32)>)]) -> Result<Written> {
        let mut w = Written::default();
        for (target, ban) in changes {
            match ban {
                None => self.lift(target, &mut w)?,
                Some((until_ns, origin)) => self.ban(target, *until_ns, *origin, &mut w)?,
            }
        }
        Ok(w)
    }

    /// Makes the map hold exactly `wanted` (target, end, origin): after a
    /// startup pull, which lists every decision in force, so that nothing
    /// from before a restart or an outage stays. Entries already right
    /// (same origin, ends less than `slack_ns` apart) are not written again.
    pub fn sync(
        &mut self,
        wanted: impl IntoIterator<Item = (Cidr, u64, u32)>,
        slack_ns: u64,
    ) -> Result<Written> {
        let mut have: HashMap<Cidr, DecisionEntry> = HashMap::new();
        for kv in self.map.iter() {
            let (k, v) = kv.context(|| "reading the decision map".into())?;
            have.insert(Cidr::from_key(&k), v);
        }
        let mut w = Written::default();
        let mut bans = Vec::new();
        for (target, until_ns, origin) in wanted {
            match have.remove(&target) {
                Some(e) if e.origin == origin && e.until_ns.abs_diff(until_ns) < slack_ns => {}
                _ => bans.push((target, until_ns, origin)),
            }
        }
        // Lifts first: they make room.
        for target in have.keys() {
            self.lift(target, &mut w)?;
        }
        for (target, until_ns, origin) in bans {
            self.ban(&target, until_ns, origin, &mut w)?;
        }
        Ok(w)
    }

    /// Decisions in force at `now`, sorted by block.
    pub fn list(&self, now: u64) -> Result<Vec<(Cidr, DecisionEntry)>> {
        let mut out = Vec::new();
        for kv in self.map.iter() {
            let (k, v) = kv.context(|| "reading the decision map".into())?;
            if v.until_ns > now {
                out.push((Cidr::from_key(&k), v));
            }
        }
        out.sort_by_key(|(c, _)| (c.ip, c.len));
        Ok(out)
    }

    /// Removes decisions that ended by `now` (the filter ignores them
    /// already; this gives their room back) and counts the rest by origin.
    pub fn sweep(&mut self, now: u64) -> Result<(usize, ByOrigin)> {
        let mut dead = Vec::new();
        let mut live = ByOrigin::default();
        for kv in self.map.iter() {
            let (k, v) = kv.context(|| "reading the decision map".into())?;
            if v.until_ns <= now {
                dead.push(k);
            } else if let Some(i) = ORIGINS.iter().position(|o| *o == v.origin) {
                live[i] += 1;
            }
        }
        let mut swept = 0;
        for k in dead {
            // The daemon may have written the entry since it was read.
            if matches!(self.map.get(&k, 0), Ok(v) if v.until_ns <= now)
                && self.map.remove(&k).is_ok()
            {
                swept += 1;
            }
        }
        Ok((swept, live))
    }

    pub fn stats(&self) -> Result<CrowdsecStats> {
        self.stats
            .get(&0, 0)
            .context(|| "reading the CrowdSec pull record".into())
    }

    pub fn set_stats(&mut self, s: CrowdsecStats) -> Result<()> {
        self.stats
            .set(0, s, 0)
            .context(|| "writing the CrowdSec pull record".into())
    }
}

/// Counts by origin name, leaving out origins with none.
pub fn by_origin_names(counts: &ByOrigin) -> BTreeMap<&'static str, usize> {
    ORIGINS
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(o, n)| (origin_name(*o), *n))
        .collect()
}
