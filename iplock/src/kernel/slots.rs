//! Changing the configuration of a running filter all at once. The
//! program reads the slot index once per packet, then that slot's
//! configuration and allow list; a change writes the other slot whole and
//! switches with one 4-byte write, so every packet sees the old or the new
//! configuration, never a mix. The slot out of force mirrors the one in
//! force between changes, so run-time allow entries go to both.

use std::collections::BTreeMap;
use std::time::Duration;

use aya::maps::lpm_trie::Key;
use iplock_common::addr::AddrKey;
use iplock_common::config::Config;
use iplock_common::names::{CONFIG_SLOTS, MAX_ALLOW};
use iplock_common::state::AllowEntry;

use crate::config::cidr::Cidr;
use crate::error::{Context as _, Result, input};
use crate::kernel::maps::{AllowMap, Maps};

/// An allow list as the maps hold it, by (prefix length, address).
type Entries = BTreeMap<(u32, AddrKey), AllowEntry>;

/// Longer than any packet takes to decide on the slot it read.
const IN_FLIGHT: Duration = Duration::from_millis(5);

/// A slot written and not yet in force.
#[must_use = "a staged configuration does nothing until it is activated"]
pub struct Staged {
    slot: u32,
    /// The slot in force when this one was staged, to go back to.
    previous: u32,
}

/// Writes `config` and an allow list of the configuration's entries plus
/// the run-time ones in force into the slot out of force. Checks first that
/// it all fits, so a refusal changes nothing.
pub fn stage(maps: &mut Maps, config: &Config, config_allow: &[Cidr]) -> Result<Staged> {
    let previous = maps.active_slot()?;
    let slot = (previous + 1) % CONFIG_SLOTS;
    let mut want: Entries = entries(maps.allow(previous))?
        .into_iter()
        .filter(|(_, v)| !v.is_from_config())
        .collect();
    let runtime = want.len();
    for cidr in config_allow {
        let key = cidr.key();
        want.insert((key.prefix_len(), key.data()), AllowEntry::from_config());
    }
    if want.len() > MAX_ALLOW as usize {
        return input(format!(
            "the allow list would hold {} entries ({} from the configuration, {runtime} added with `iplock allow add`), more than the {MAX_ALLOW} it can; remove some with `iplock allow del` first",
            want.len(),
            config_allow.len()
        ));
    }
    sync(maps.allow_mut(slot), &want)?;
    maps.config
        .set(slot, config, 0)
        .context(|| "writing the configuration map".into())?;
    Ok(Staged { slot, previous })
}

impl Staged {
    /// Puts the staged slot in force.
    pub fn activate(&self, maps: &mut Maps) -> Result<()> {
        maps.set_active_slot(self.slot)
    }

    /// Puts the slot in force before this one back, after a failure.
    pub fn roll_back(&self, maps: &mut Maps) -> Result<()> {
        maps.set_active_slot(self.previous)
    }

    /// Once the change stands: the slot now out of force mirrors the one
    /// in force again. It waits first for packets still deciding on the
    /// old slot: XDP runs with preemption off, so a packet that read the
    /// old index is done within microseconds, far inside the wait.
    pub fn settle(self, maps: &mut Maps) -> Result<()> {
        std::thread::sleep(IN_FLIGHT);
        let want = entries(maps.allow(self.slot))?;
        sync(maps.allow_mut(self.previous), &want)
    }
}

/// Stages, activates and settles `config` in one go, for changes with
/// nothing else to apply between (rotation, a first load).
pub fn switch(maps: &mut Maps, config: &Config, config_allow: &[Cidr]) -> Result<()> {
    let staged = stage(maps, config, config_allow)?;
    staged.activate(maps)?;
    staged.settle(maps)
}

fn entries(map: &AllowMap) -> Result<Entries> {
    map.iter()
        .map(|kv| {
            let (k, v) = kv.context(|| "reading the allow list".into())?;
            Ok(((k.prefix_len(), k.data()), v))
        })
        .collect()
}

/// Makes `map` hold exactly `want`, removing first so it never overflows.
fn sync(map: &mut AllowMap, want: &Entries) -> Result<()> {
    for (key, _) in entries(map)? {
        if !want.contains_key(&key) {
            map.remove(&Key::new(key.0, key.1))
                .context(|| "removing an old allow-list entry".into())?;
        }
    }
    for (&(bits, data), v) in want {
        map.insert(&Key::new(bits, data), v, 0).context(|| {
            format!(
                "adding {} to the allow list",
                Cidr::from_key(&Key::new(bits, data))
            )
        })?;
    }
    Ok(())
}
