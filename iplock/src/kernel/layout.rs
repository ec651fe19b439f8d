//! What each pinned map must look like for this build's program. A filter
//! pinned by another build may have maps of another shape: aya would reuse
//! them as they are, and the new program would read them wrong.

use std::mem::size_of;

use aya::maps::MapInfo;
use iplock_common::addr::AddrKey;
use iplock_common::config::Config;
use iplock_common::counters::COUNTERS;
use iplock_common::events::EVENTS_BYTES;
use iplock_common::names::{
    CONFIG_SLOTS, LOGS_BYTES, MAP_ALLOW, MAP_ALLOW_B, MAP_BANS, MAP_CLOCK, MAP_CONFIG,
    MAP_COUNTERS, MAP_CROWDSEC, MAP_DECISIONS, MAP_EVENTS, MAP_IFACES, MAP_KNOCK_BANS, MAP_LOGS,
    MAP_SLOT, MAP_SOURCES, MAP_SPA, MAP_SPA_RATE, MAP_SPA_SOURCES, MAP_SPA_STATS, MAP_SPENT,
    MAX_IFACES, MAX_SPENT, PINNED_MAPS,
};
use iplock_common::spa::{RateWindow, SPA_BYTES, SPA_SOURCES, SPA_STATS};
use iplock_common::state::{
    AllowEntry, BanEntry, ClockReading, CrowdsecStats, DecisionEntry, IfaceEntry, SourceState,
};

use crate::error::{Context as _, Result, input};
use crate::kernel::pin_dir::PinDir;

struct Layout {
    key: usize,
    value: usize,
    /// Fixed size, or `None` where the administrator sets it.
    entries: Option<u32>,
    /// Whether the map holds state worth refusing an upgrade for; the
    /// others are rebuilt by the loader (configuration, interfaces,
    /// counters, events, spent sequences, the program's log, CrowdSec's
    /// decisions, which `iplock run` pulls again with `startup=true` at
    /// every start and writes whole, and its pull record, the SPA ring, its
    /// rate limits and counters).
    stateful: bool,
}

fn expected(name: &str) -> Layout {
    let (key, value, entries, stateful) = match name {
        MAP_SLOT => (4, 4, Some(1), false),
        MAP_CONFIG => (4, size_of::<Config>(), Some(CONFIG_SLOTS), false),
        MAP_SOURCES => (16, size_of::<SourceState>(), None, true),
        MAP_BANS | MAP_KNOCK_BANS => (16, size_of::<BanEntry>(), None, true),
        MAP_ALLOW | MAP_ALLOW_B => (
            4 + size_of::<AddrKey>(),
            size_of::<AllowEntry>(),
            None,
            true,
        ),
        MAP_DECISIONS => (
            4 + size_of::<AddrKey>(),
            size_of::<DecisionEntry>(),
            None,
            false,
        ),
        MAP_CROWDSEC => (4, size_of::<CrowdsecStats>(), Some(1), false),
        MAP_COUNTERS => (4, 8, Some(COUNTERS), false),
        MAP_IFACES => (4, size_of::<IfaceEntry>(), Some(MAX_IFACES as u32), false),
        MAP_SPENT => (4, 4, Some(MAX_SPENT), false),
        MAP_EVENTS => (0, 0, Some(EVENTS_BYTES), false),
        MAP_LOGS => (0, 0, Some(LOGS_BYTES), false),
        MAP_SPA => (0, 0, Some(SPA_BYTES), false),
        MAP_SPA_RATE => (4, size_of::<RateWindow>(), Some(1), false),
        MAP_CLOCK => (4, size_of::<ClockReading>(), Some(1), false),
        MAP_SPA_SOURCES => (16, size_of::<RateWindow>(), Some(SPA_SOURCES), false),
        MAP_SPA_STATS => (4, 8, Some(SPA_STATS), false),
        _ => unreachable!("{name} is not a pinned map"),
    };
    Layout {
        key,
        value,
        entries,
        stateful,
    }
}

/// Makes the pins in `dir` fit this build before it loads over them: a
/// stateless map of another shape is unpinned so the loader creates it
/// afresh; a map with knock state, bans or allow entries of another shape
/// refuses the upgrade rather than lose them silently.
pub fn prepare(dir: &PinDir) -> Result<()> {
    for name in PINNED_MAPS {
        let path = dir.map(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).context(|| format!("reading {}", path.display()))?;
        let want = expected(name);
        let fits = info.key_size() as usize == want.key
            && info.value_size() as usize == want.value
            && want.entries.is_none_or(|n| n == info.max_entries());
        if fits {
            continue;
        }
        if want.stateful {
            return input(format!(
                "the pinned map {name} in {} was made by an incompatible iplock build; run `iplock unload` and load again (this drops knock state and bans)",
                dir.path().display()
            ));
        }
        std::fs::remove_file(&path)
            .context(|| format!("removing the outdated {}", path.display()))?;
        log::info!("{name} had another layout; it is made afresh");
    }
    Ok(())
}
