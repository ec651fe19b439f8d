//! Typed handles on the filter's maps, from a fresh load or from their pins.

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray, RingBuf};
use iplock_common::addr::AddrKey;
use iplock_common::config::Config;
use iplock_common::names::{
    MAP_ALLOW, MAP_ALLOW_B, MAP_BANS, MAP_CONFIG, MAP_COUNTERS, MAP_IFACES, MAP_KNOCK_BANS,
    MAP_SLOT, MAP_SOURCES, MAP_SPA_STATS,
};
use iplock_common::state::{AllowEntry, BanEntry, IfaceEntry, SourceState};

use crate::error::{Context as _, Error, Result};
use crate::kernel::pin_dir::PinDir;

/// An allow list (one per configuration slot).
pub type AllowMap = LpmTrie<MapData, AddrKey, AllowEntry>;

pub struct Maps {
    /// Which slot of `config` and `allow` is in force (see [`crate::kernel::slots`]).
    pub slot: Array<MapData, u32>,
    pub config: Array<MapData, Config>,
    pub sources: HashMap<MapData, AddrKey, SourceState>,
    pub bans: HashMap<MapData, AddrKey, BanEntry>,
    /// Wrong-knock bans, kept apart by the program (see [`MAP_KNOCK_BANS`]).
    pub knock_bans: HashMap<MapData, AddrKey, BanEntry>,
    /// The allow list of each slot.
    pub allow: [AllowMap; 2],
    pub counters: PerCpuArray<MapData, u64>,
    pub ifaces: Array<MapData, IfaceEntry>,
    /// The daemon's SPA counters (see [`crate::kernel::spa`]).
    pub spa_stats: Array<MapData, u64>,
}

impl Maps {
    /// Builds the handles from `get`, which yields each map by name.
    pub fn build(mut get: impl FnMut(&'static str) -> Result<Map>) -> Result<Maps> {
        macro_rules! typed {
            ($name:expr) => {{
                let name = $name;
                let map: Map = get(name)?;
                map.try_into().map_err(|source| crate::error::Error::Map {
                    what: format!("map {name} has an unexpected type"),
                    source,
                })?
            }};
        }
        Ok(Maps {
            slot: typed!(MAP_SLOT),
            config: typed!(MAP_CONFIG),
            sources: typed!(MAP_SOURCES),
            bans: typed!(MAP_BANS),
            knock_bans: typed!(MAP_KNOCK_BANS),
            allow: [typed!(MAP_ALLOW), typed!(MAP_ALLOW_B)],
            counters: typed!(MAP_COUNTERS),
            ifaces: typed!(MAP_IFACES),
            spa_stats: typed!(MAP_SPA_STATS),
        })
    }

    /// Opens the maps a loaded filter pinned in `dir`.
    pub fn open(dir: &PinDir) -> Result<Maps> {
        dir.require_loaded()?;
        Maps::build(|name| {
            let path = dir.map(name);
            let data =
                MapData::from_pin(&path).context(|| format!("opening {}", path.display()))?;
            Map::from_map_data(data).context(|| format!("opening {}", path.display()))
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Result<Config> {
        let slot = self.active_slot()?;
        self.config
            .get(&slot, 0)
            .context(|| "reading the configuration map".into())
    }

    pub fn active_slot(&self) -> Result<u32> {
        self.slot
            .get(&0, 0)
            .context(|| "reading the configuration slot".into())
    }

    pub fn set_active_slot(&mut self, slot: u32) -> Result<()> {
        self.slot
            .set(0, slot, 0)
            .context(|| "switching the configuration slot".into())
    }

    pub fn allow(&self, slot: u32) -> &AllowMap {
        &self.allow[slot as usize % self.allow.len()]
    }

    pub fn allow_mut(&mut self, slot: u32) -> &mut AllowMap {
        let n = self.allow.len();
        &mut self.allow[slot as usize % n]
    }

    /// The allow list in force.
    pub fn active_allow(&self) -> Result<&AllowMap> {
        Ok(self.allow(self.active_slot()?))
    }

    /// Both ban maps: what lists, lifts or sweeps bans treats them as one.
    pub fn ban_maps(&self) -> [&HashMap<MapData, AddrKey, BanEntry>; 2] {
        [&self.bans, &self.knock_bans]
    }

    pub fn ban_maps_mut(&mut self) -> [&mut HashMap<MapData, AddrKey, BanEntry>; 2] {
        [&mut self.bans, &mut self.knock_bans]
    }

    /// The interfaces the filter is attached to (the used slots).
    pub fn interfaces(&self) -> Result<Vec<IfaceEntry>> {
        let mut out = Vec::new();
        for e in self.ifaces.iter() {
            let e = e.context(|| "reading the interface map".into())?;
            if e.mode != 0 {
                out.push(e);
            }
        }
        Ok(out)
    }
}

/// Opens the ring buffer pinned in `dir` under `name`.
pub fn open_ring(dir: &PinDir, name: &str) -> Result<RingBuf<MapData>> {
    let path = dir.map(name);
    let data = MapData::from_pin(&path).context(|| format!("opening {}", path.display()))?;
    let map = Map::from_map_data(data).context(|| format!("opening {}", path.display()))?;
    RingBuf::try_from(map).map_err(|source| Error::Map {
        what: format!("{} is not a ring buffer", path.display()),
        source,
    })
}
