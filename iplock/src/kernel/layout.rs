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

/// A pinned map's shape, as the kernel reports it.
#[derive(Clone, Copy, Debug)]
struct Shape {
    key: u32,
    value: u32,
    entries: u32,
}

fn fits(name: &str, shape: Shape) -> bool {
    let want = expected(name);
    shape.key as usize == want.key
        && shape.value as usize == want.value
        && want.entries.is_none_or(|n| n == shape.entries)
}

/// Which of the `found` pins (name and shape) the loader must make afresh;
/// an error, and nothing to remove, when any stateful one does not fit.
fn outdated<'a>(found: &[(&'a str, Shape)], dir: &std::path::Path) -> Result<Vec<&'a str>> {
    let unfit = || found.iter().filter(|(name, shape)| !fits(name, *shape));
    if let Some((name, _)) = unfit().find(|(name, _)| expected(name).stateful) {
        return input(format!(
            "the pinned map {name} in {} was made by an incompatible iplock build; run `iplock unload` and load again (this drops knock state and bans)",
            dir.display()
        ));
    }
    Ok(unfit().map(|(name, _)| *name).collect())
}

/// Makes the pins in `dir` fit this build before it loads over them: a
/// stateless map of another shape is unpinned so the loader creates it
/// afresh; a map with knock state, bans or allow entries of another shape
/// refuses the upgrade rather than lose them silently. Every pin is checked
/// before any is removed, so a refusal leaves the directory as it was.
pub fn prepare(dir: &PinDir) -> Result<()> {
    let mut found = Vec::new();
    for name in PINNED_MAPS {
        let path = dir.map(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).context(|| format!("reading {}", path.display()))?;
        let shape = Shape {
            key: info.key_size(),
            value: info.value_size(),
            entries: info.max_entries(),
        };
        found.push((name, shape));
    }
    for name in outdated(&found, dir.path())? {
        let path = dir.map(name);
        std::fs::remove_file(&path)
            .context(|| format!("removing the outdated {}", path.display()))?;
        log::info!("{name} had another layout; it is made afresh");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn shape(name: &str) -> Shape {
        let want = expected(name);
        Shape {
            key: want.key as u32,
            value: want.value as u32,
            entries: want.entries.unwrap_or(1000),
        }
    }

    #[test]
    fn only_stateless_maps_of_another_shape_are_made_afresh() {
        let dir = std::path::Path::new("/sys/fs/bpf/x");
        let mut old_config = shape(MAP_CONFIG);
        old_config.value -= 65536;
        let mut sized = shape(MAP_SOURCES);
        sized.entries = 7;
        let found = [
            (MAP_CONFIG, old_config),
            (MAP_SOURCES, sized),
            (MAP_BANS, shape(MAP_BANS)),
        ];
        assert_eq!(outdated(&found, dir).unwrap(), [MAP_CONFIG]);
        let current: Vec<_> = PINNED_MAPS.iter().map(|n| (*n, shape(n))).collect();
        assert!(outdated(&current, dir).unwrap().is_empty());
    }

    #[test]
    fn a_stateful_map_of_another_shape_refuses_and_nothing_is_removed() {
        let mut old_config = shape(MAP_CONFIG);
        old_config.value -= 65536;
        let mut bans = shape(MAP_BANS);
        bans.value = 8;
        // The stateless map comes first, as in PINNED_MAPS.
        let found = [(MAP_CONFIG, old_config), (MAP_BANS, bans)];
        match outdated(&found, std::path::Path::new("/sys/fs/bpf/x")) {
            Err(Error::Input(msg)) => {
                assert!(msg.contains(MAP_BANS), "{msg}");
                assert!(msg.contains("`iplock unload` and load again"), "{msg}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
