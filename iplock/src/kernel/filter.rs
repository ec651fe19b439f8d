//! Loading, reloading and attaching the XDP program. Maps live at their
//! pins in the filter's directory: a first load creates them, a reload
//! opens the same maps, so knock state and bans survive.

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use iplock_common::names::{
    MAP_BANS, MAP_DECISIONS, MAP_KNOCK_BANS, MAP_SOURCES, MAX_IFACES, PINNED_MAPS, PROGRAM,
    PROGRAM_SPA,
};
use iplock_common::state::{IfaceEntry, MODE_NATIVE, MODE_SKB};

use crate::config::settings::{Mode, Settings};
use crate::error::{Context as _, Error, Result};
use crate::kernel::batch;
use crate::kernel::maps::Maps;
use crate::kernel::object::OBJECT;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::slots;
use crate::system::iface;

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

/// Loads the filter described by `settings` and pins it in `dir`, for a
/// caller that holds the directory's owner lock. On any failure everything
/// done so far is undone: the directory is removed, which detaches every
/// link already made. Where a filter is already pinned, its program is
/// replaced in place and its state kept.
pub fn load(settings: &Settings, dir: &PinDir) -> Result<Loaded> {
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
    slots::switch(&mut maps, &settings.to_kernel(), &settings.allow)?;
    let prog = program(&mut ebpf, settings)?;
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

impl Reloaded {
    /// What the reload changed, a sentence each, for the command's output
    /// or the daemon's log.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for a in &self.added {
            lines.push(format!(
                "attached to {} in {} mode",
                a.iface,
                if a.native { "native" } else { "skb" }
            ));
        }
        for name in &self.removed {
            lines.push(format!("detached from {name}"));
        }
        if self.progress_reset > 0 {
            lines.push(format!(
                "the knock sequence changed; knock progress was reset for {} source(s)",
                self.progress_reset
            ));
        }
        lines.push(format!(
            "reloaded; {} interface(s) kept their state",
            self.kept.len()
        ));
        lines
    }
}

/// Applies `settings` to the filter loaded in `dir` without detaching it:
/// a new instance of the program takes over every link in place (one
/// atomic switch per interface), reading the same maps; open doors, bans
/// and runtime allow entries stay.
pub fn reload(settings: &Settings, dir: &PinDir) -> Result<Reloaded> {
    let _lock = dir.lock()?;
    dir.require_loaded()?;
    reload_locked(settings, dir)
}

fn reload_locked(settings: &Settings, dir: &PinDir) -> Result<Reloaded> {
    crate::kernel::layout::prepare(dir)?;
    let (mut ebpf, mut maps) = open_object(settings, dir)?;
    let old = maps.config()?;
    let current = maps.interfaces()?;
    let new = settings.to_kernel();
    // Written out of force, after every check that can refuse it: a
    // refusal here changes nothing.
    let staged = slots::stage(&mut maps, &new, &settings.allow)?;
    let prog = program(&mut ebpf, settings)?;
    // In force before the new program takes over, which may be reading
    // maps made afresh for it.
    staged.activate(&mut maps)?;
    let mut r = match switch_links(prog, settings, dir, &current) {
        Ok(r) => r,
        Err(e) => {
            if let Err(back) = staged.roll_back(&mut maps) {
                log::error!("restoring the previous configuration failed: {back}");
            }
            return Err(e);
        }
    };
    staged.settle(&mut maps)?;
    // A rotating sequence changes every period on its own; progress through
    // it expires with it.
    if new.seq_id == 0 && (new.steps != old.steps || new.step_count != old.step_count) {
        r.progress_reset = reset_progress(&mut maps)?;
    }
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

/// Moves every interface the settings keep to `prog` and attaches it to
/// the new ones; on a failure, the links made here are removed again.
fn switch_links(
    prog: &mut Xdp,
    settings: &Settings,
    dir: &PinDir,
    current: &[IfaceEntry],
) -> Result<Reloaded> {
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

    Ok(r)
}

/// Loads the object with every map at its pin in `dir`, created there if
/// missing (aya pins new maps itself), reused with its content if present.
fn open_object(settings: &Settings, dir: &PinDir) -> Result<(Ebpf, Maps)> {
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(MAP_SOURCES, settings.max_sources)
        .map_max_entries(MAP_BANS, settings.max_bans)
        .map_max_entries(MAP_KNOCK_BANS, settings.max_knock_bans)
        .map_max_entries(MAP_DECISIONS, settings.max_decisions);
    crate::kernel::log::override_level(&mut loader, crate::kernel::log::level());
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

/// The program for `settings`: the one with SPA when they have `[spa]`
/// (a reload may switch between the two in place).
fn program<'a>(ebpf: &'a mut Ebpf, settings: &Settings) -> Result<&'a mut Xdp> {
    let name = if settings.spa.is_some() {
        PROGRAM_SPA
    } else {
        PROGRAM
    };
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::Input(format!("the XDP object has no program {name}")))?;
    let prog: &mut Xdp =
        <&mut Xdp>::try_from(prog).context(|| format!("program {name} is not an XDP program"))?;
    let what = if name == PROGRAM_SPA {
        "the kernel refused the XDP program with SPA (it needs Linux 5.18 or newer)"
    } else {
        "the kernel refused the XDP program"
    };
    prog.load().context(|| what.into())?;
    Ok(prog)
}

fn reset_progress(maps: &mut Maps) -> Result<usize> {
    let mut reset = Vec::new();
    for (k, mut s) in batch::entries(&maps.sources).context(|| "reading the source map".into())? {
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
