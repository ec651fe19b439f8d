//! Typed handles on the filter's maps, from a fresh load or from their pins.

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use iplock_common::addr::AddrKey;
use iplock_common::config::Config;
use iplock_common::names::{
    MAP_ALLOW, MAP_BANS, MAP_CONFIG, MAP_COUNTERS, MAP_IFACES, MAP_KNOCK_BANS, MAP_SOURCES,
};
use iplock_common::state::{AllowEntry, BanEntry, IfaceEntry, SourceState};

use crate::error::{Context as _, Result};
use crate::pin_dir::PinDir;

pub struct Maps {
    pub config: Array<MapData, Config>,
    pub sources: HashMap<MapData, AddrKey, SourceState>,
    pub bans: HashMap<MapData, AddrKey, BanEntry>,
    /// Wrong-knock bans, kept apart by the program (see [`MAP_KNOCK_BANS`]).
    pub knock_bans: HashMap<MapData, AddrKey, BanEntry>,
    pub allow: LpmTrie<MapData, AddrKey, AllowEntry>,
    pub counters: PerCpuArray<MapData, u64>,
    pub ifaces: Array<MapData, IfaceEntry>,
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
            config: typed!(MAP_CONFIG),
            sources: typed!(MAP_SOURCES),
            bans: typed!(MAP_BANS),
            knock_bans: typed!(MAP_KNOCK_BANS),
            allow: typed!(MAP_ALLOW),
            counters: typed!(MAP_COUNTERS),
            ifaces: typed!(MAP_IFACES),
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

    pub fn config(&self) -> Result<Config> {
        self.config
            .get(&0, 0)
            .context(|| "reading the configuration map".into())
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
