//! Removing entries that no longer mean anything, so the maps hold only
//! live state: expired bans and allow entries, and sources whose progress
//! expired with their door closed. The same pass counts what is live, so
//! that a reader of the counts need not walk the maps again.

use iplock_common::config::Config;
use iplock_common::decide::live_progress;
use iplock_common::state::SourceState;

use crate::error::{Context as _, Result};
use crate::kernel::batch;
use crate::kernel::maps::Maps;
use crate::kernel::status::source_state;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub sources: usize,
    pub bans: usize,
    pub allow: usize,
}

/// What the maps hold that status shows: sources knocking or open, and bans in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub sources: usize,
    pub bans: usize,
    /// CrowdSec decisions in force, by origin (see [`crate::kernel::decisions`]).
    pub decisions: crate::kernel::decisions::ByOrigin,
}

fn source_is_dead(s: &SourceState, cfg: &Config, now: u64) -> bool {
    s.open_until_ns <= now && live_progress(s, cfg, now) == 0
}

/// Removes what is dead at `now`, and counts what is live.
pub fn sweep(maps: &mut Maps, now: u64) -> Result<(Swept, Live)> {
    let cfg = maps.config()?;
    let mut swept = Swept::default();
    let mut live = Live::default();

    let mut dead = Vec::new();
    for (k, s) in batch::entries(&maps.sources).context(|| "reading the source map".into())? {
        if source_is_dead(&s, &cfg, now) {
            dead.push(k);
        } else if source_state(&s, &cfg, now).is_some() {
            live.sources += 1;
        }
    }
    for k in dead {
        // The program may have written the entry since it was read: look
        // again so a knock that just arrived is not thrown away.
        if matches!(maps.sources.get(&k, 0), Ok(s) if source_is_dead(&s, &cfg, now))
            && maps.sources.remove(&k).is_ok()
        {
            swept.sources += 1;
        }
    }

    for bans in maps.ban_maps_mut() {
        let mut dead = Vec::new();
        for (k, b) in batch::entries(bans).context(|| "reading the ban map".into())? {
            if b.until_ns <= now {
                dead.push(k);
            } else {
                live.bans += 1;
            }
        }
        for k in dead {
            if matches!(bans.get(&k, 0), Ok(b) if b.until_ns <= now) && bans.remove(&k).is_ok() {
                swept.bans += 1;
            }
        }
    }

    // Run-time entries are in both slots' lists.
    let mut dead = Vec::new();
    for kv in maps.active_allow()?.iter() {
        let (k, a) = kv.context(|| "reading the allow list".into())?;
        if a.until_ns != 0 && a.until_ns <= now {
            dead.push(k);
        }
    }
    for k in dead {
        let mut removed = false;
        for allow in &mut maps.allow {
            removed |= allow.remove(&k).is_ok();
        }
        swept.allow += usize::from(removed);
    }
    Ok((swept, live))
}
