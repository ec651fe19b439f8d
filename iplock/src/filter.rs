//! Loading, reloading and attaching the XDP program. Maps live at their
//! pins in the filter's directory: a first load creates them, a reload
//! opens the same maps, so knock state and bans survive.

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use iplock_common::addr::AddrKey;
use iplock_common::names::{
    MAP_BANS, MAP_KNOCK_BANS, MAP_SOURCES, MAX_IFACES, PINNED_MAPS, PROGRAM,
};
use iplock_common::state::{AllowEntry, IfaceEntry, MODE_NATIVE, MODE_SKB};

use crate::cidr::Cidr;
use crate::error::{Context as _, Error, Result};
use crate::iface;
use crate::maps::Maps;
use crate::object::OBJECT;
use crate::pin_dir::PinDir;
use crate::settings::{Mode, Settings};

/// One interface the program was attached to.
#[derive(Debug)]
pub struct Attached {
    pub iface: String,
    pub native: bool,
    /// Why native mode was not used, when `auto` fell back to skb.
    pub fallback: Option<String>,
}

/// What `load` did.
#[derive(Debug)]
pub enum Loaded {
    /// A new filter, attached to these interfaces.
    New(Vec<Attached>),
    /// A filter was already pinned there: this build's program took its
    /// place with the maps and their content (see [`reload`]).
    Replaced(Reloaded),
}

/// Loads the filter described by `settings` and pins it in `dir`. On any
/// failure everything done so far is undone: the directory is removed,
/// which detaches every link already made. Where a filter is already
/// pinned, its program is replaced in place and its state kept.
pub fn load(settings: &Settings, dir: &PinDir) -> Result<Loaded> {
    dir.preflight()?;
    let _lock = dir.lock()?;
    if dir.require_loaded().is_ok() {
        return reload_locked(settings, dir).map(Loaded::Replaced);
    }
    dir.create()?;
    load_into(settings, dir)
        .inspect_err(|_| {
            if let Err(e) = dir.remove_all() {
                log::error!("cleaning up {} failed: {e}", dir.path().display());
            }
        })
        .map(Loaded::New)
}

fn load_into(settings: &Settings, dir: &PinDir) -> Result<Vec<Attached>> {
    let (mut ebpf, mut maps) = open_object(settings, dir)?;
    write_settings(&mut maps, settings, &[])?;
    let prog = program(&mut ebpf)?;
    let mut attached = Vec::new();
    for name in &settings.interfaces {
        attached.push(attach(prog, name, settings.mode, dir)?);
    }
    record_interfaces(&mut maps, &attached.iter().collect::<Vec<_>>())?;
    Ok(attached)
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Interfaces that now run the new program and settings.
    pub kept: Vec<Attached>,
    pub added: Vec<Attached>,
    pub removed: Vec<String>,
    /// Sources whose knock progress was reset because the sequence changed.
    pub progress_reset: usize,
}

/// Applies `settings` to the filter loaded in `dir` without detaching it:
/// a new instance of the program takes over every link in place (one
/// atomic switch per interface), reading the same maps; open doors, bans
/// and runtime allow entries stay.
pub fn reload(settings: &Settings, dir: &PinDir) -> Result<Reloaded> {
    dir.preflight()?;
    let _lock = dir.lock()?;
    dir.require_loaded()?;
    reload_locked(settings, dir)
}

fn reload_locked(settings: &Settings, dir: &PinDir) -> Result<Reloaded> {
    crate::layout::prepare(dir)?;
    let (mut ebpf, mut maps) = open_object(settings, dir)?;
    let old = maps.config()?;
    let current = maps.interfaces()?;
    let prog = program(&mut ebpf)?;
    let mut r = Reloaded::default();

    // An interface deleted and created again has a new index and a dead
    // link: it is attached afresh below, like a new one.
    for name in &settings.interfaces {
        let live = |e: &&IfaceEntry| {
            iface::from_fixed(&e.name) == *name && iface::index(name) == Some(e.ifindex)
        };
        if let Some(e) = current.iter().find(live) {
            let pinned = PinnedLink::from_pin(dir.link(name)).map_err(|e| {
                Error::Input(format!(
                    "the XDP link of {name} is missing from {}: {e}",
                    dir.path().display()
                ))
            })?;
            let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| {
                Error::Input(format!("the pinned link of {name} is not an XDP link: {e}"))
            })?;
            prog.attach_to_link(link)
                .context(|| format!("switching {name} to the new program"))?;
            r.kept.push(Attached {
                iface: name.clone(),
                native: e.mode == MODE_NATIVE,
                fallback: None,
            });
        }
    }
    for name in &settings.interfaces {
        if !r.kept.iter().any(|a| a.iface == *name) {
            remove_stale_link(dir, name)?;
            match attach(prog, name, settings.mode, dir) {
                Ok(a) => r.added.push(a),
                Err(e) => {
                    for a in &r.added {
                        let _ = std::fs::remove_file(dir.link(&a.iface));
                    }
                    return Err(e);
                }
            }
        }
    }

    let new = settings.to_kernel();
    // A rotating sequence changes every period on its own; progress through
    // it expires with it.
    if new.seq_id == 0 && (new.steps != old.steps || new.step_count != old.step_count) {
        r.progress_reset = reset_progress(&mut maps)?;
    }
    let old_allow = config_allow_keys(&maps)?;
    write_settings(&mut maps, settings, &old_allow)?;

    for e in &current {
        let name = iface::from_fixed(&e.name);
        if !settings.interfaces.contains(&name) {
            std::fs::remove_file(dir.link(&name)).context(|| format!("detaching from {name}"))?;
            r.removed.push(name);
        }
    }
    record_interfaces(
        &mut maps,
        &r.kept.iter().chain(&r.added).collect::<Vec<_>>(),
    )?;
    Ok(r)
}

/// Loads the object with every map at its pin in `dir`, created there if
/// missing (aya pins new maps itself), reused with its content if present.
fn open_object(settings: &Settings, dir: &PinDir) -> Result<(Ebpf, Maps)> {
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(MAP_SOURCES, settings.max_sources)
        .map_max_entries(MAP_BANS, settings.max_bans)
        .map_max_entries(MAP_KNOCK_BANS, settings.max_knock_bans);
    for name in PINNED_MAPS {
        loader.map_pin_path(name, dir.map(name));
    }
    let mut ebpf = loader.load(OBJECT)?;
    let maps = Maps::build(|name| {
        ebpf.take_map(name)
            .ok_or_else(|| Error::Input(format!("the XDP object has no map {name}")))
    })?;
    Ok((ebpf, maps))
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    let prog = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| Error::Input(format!("the XDP object has no program {PROGRAM}")))?;
    let prog: &mut Xdp = <&mut Xdp>::try_from(prog)
        .context(|| format!("program {PROGRAM} is not an XDP program"))?;
    prog.load()
        .context(|| "the kernel refused the XDP program".into())?;
    Ok(prog)
}

/// Writes the configuration and the config file's allow list, replacing
/// the entries in `old_allow` (the previous config's) that it no longer has.
fn write_settings(
    maps: &mut Maps,
    settings: &Settings,
    old_allow: &[aya::maps::lpm_trie::Key<AddrKey>],
) -> Result<()> {
    maps.config
        .set(0, settings.to_kernel(), 0)
        .context(|| "writing the configuration map".into())?;
    for key in old_allow {
        if !settings.allow.contains(&Cidr::from_key(key)) {
            maps.allow
                .remove(key)
                .context(|| "removing an old allow-list entry".into())?;
        }
    }
    for cidr in &settings.allow {
        maps.allow
            .insert(&cidr.key(), AllowEntry::from_config(), 0)
            .context(|| format!("adding {cidr} to the allow list"))?;
    }
    Ok(())
}

/// Allow-list entries that came from the configuration (not `allow add`).
fn config_allow_keys(maps: &Maps) -> Result<Vec<aya::maps::lpm_trie::Key<AddrKey>>> {
    let mut keys = Vec::new();
    for kv in maps.allow.iter() {
        let (k, v) = kv.context(|| "reading the allow list".into())?;
        if v.is_from_config() {
            keys.push(k);
        }
    }
    Ok(keys)
}

fn reset_progress(maps: &mut Maps) -> Result<usize> {
    let mut reset = Vec::new();
    for kv in maps.sources.iter() {
        let (k, mut s) = kv.context(|| "reading the source map".into())?;
        if s.step != 0 {
            s.step = 0;
            reset.push((k, s));
        }
    }
    for (k, s) in &reset {
        maps.sources
            .insert(k, s, 0)
            .context(|| "resetting knock progress".into())?;
    }
    Ok(reset.len())
}

fn remove_stale_link(dir: &PinDir, name: &str) -> Result<()> {
    match std::fs::remove_file(dir.link(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context(|| format!("removing the dead link of {name}"))
        }
        _ => Ok(()),
    }
}

/// Interfaces of the filter in `dir` that are gone, and those that are
/// gone no more (created again under the same name, not yet reattached).
pub fn interface_changes(dir: &PinDir) -> Result<(Vec<String>, Vec<String>)> {
    let maps = Maps::open(dir)?;
    let (mut gone, mut back) = (Vec::new(), Vec::new());
    for e in maps.interfaces()? {
        let name = iface::from_fixed(&e.name);
        match iface::index(&name) {
            None => gone.push(name),
            Some(i) if i != e.ifindex => back.push(name),
            Some(_) => {}
        }
    }
    Ok((gone, back))
}

fn record_interfaces(maps: &mut Maps, attached: &[&Attached]) -> Result<()> {
    for slot in 0..MAX_IFACES {
        let entry = match attached.get(slot) {
            Some(a) => IfaceEntry {
                ifindex: iface::index(&a.iface).unwrap_or(0),
                mode: if a.native { MODE_NATIVE } else { MODE_SKB },
                name: iface::to_fixed(&a.iface),
            },
            None => IfaceEntry::default(),
        };
        maps.ifaces
            .set(slot as u32, entry, 0)
            .context(|| "recording the interfaces".into())?;
    }
    Ok(())
}

fn attach(prog: &mut Xdp, name: &str, mode: Mode, dir: &PinDir) -> Result<Attached> {
    let (id, native, fallback) = match mode {
        Mode::Native => (attach_mode(prog, name, XdpMode::Driver)?, true, None),
        Mode::Skb => (attach_mode(prog, name, XdpMode::Skb)?, false, None),
        Mode::Auto => match attach_mode(prog, name, XdpMode::Driver) {
            Ok(id) => (id, true, None),
            Err(e) => (
                attach_mode(prog, name, XdpMode::Skb)?,
                false,
                Some(e.to_string()),
            ),
        },
    };
    let link = prog
        .take_link(id)
        .context(|| format!("taking the XDP link of {name}"))?;
    let link = FdLink::try_from(link).map_err(|e| {
        Error::Input(format!(
            "the kernel attached XDP to {name} without a BPF link ({e}), so it cannot stay attached after iplock exits"
        ))
    })?;
    link.pin(dir.link(name))
        .context(|| format!("pinning the XDP link of {name}"))?;
    Ok(Attached {
        iface: name.to_string(),
        native,
        fallback,
    })
}

fn attach_mode(prog: &mut Xdp, name: &str, mode: XdpMode) -> Result<aya::programs::xdp::XdpLinkId> {
    let what = if mode == XdpMode::Driver {
        "native"
    } else {
        "skb"
    };
    prog.attach(name, mode)
        .context(|| format!("attaching to {name} in {what} mode"))
}
