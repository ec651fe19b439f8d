//! Loading the XDP program, attaching it and pinning it: all or nothing.

use aya::EbpfLoader;
use aya::programs::links::FdLink;
use aya::programs::{Xdp, XdpMode};
use iplock_common::names::{MAP_BANS, MAP_SOURCES, PROGRAM};
use iplock_common::state::{AllowEntry, IfaceEntry, MODE_NATIVE, MODE_SKB};

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

/// Loads the filter described by `settings` and pins it in `dir`. On any
/// failure everything done so far is undone: the directory is removed,
/// which detaches every link already made.
pub fn load(settings: &Settings, dir: &PinDir) -> Result<Vec<Attached>> {
    dir.preflight()?;
    dir.create()?;
    load_into(settings, dir).inspect_err(|_| {
        if let Err(e) = dir.remove_all() {
            log::error!("cleaning up {} failed: {e}", dir.path().display());
        }
    })
}

fn load_into(settings: &Settings, dir: &PinDir) -> Result<Vec<Attached>> {
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(MAP_SOURCES, settings.max_sources)
        .map_max_entries(MAP_BANS, settings.max_bans)
        .load(OBJECT)?;
    let mut maps = Maps::build(|name| {
        let map = ebpf
            .take_map(name)
            .ok_or_else(|| Error::Input(format!("the XDP object has no map {name}")))?;
        map.pin(dir.map(name))
            .context(|| format!("pinning map {name} in {}", dir.path().display()))?;
        Ok(map)
    })?;
    maps.config
        .set(0, settings.to_kernel(), 0)
        .context(|| "writing the configuration map".into())?;
    for cidr in &settings.allow {
        maps.allow
            .insert(&cidr.key(), AllowEntry { until_ns: 0 }, 0)
            .context(|| format!("adding {cidr} to the allow list"))?;
    }
    let prog = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| Error::Input(format!("the XDP object has no program {PROGRAM}")))?;
    let prog: &mut Xdp = <&mut Xdp>::try_from(prog)
        .context(|| format!("program {PROGRAM} is not an XDP program"))?;
    prog.load()
        .context(|| "the kernel refused the XDP program".into())?;

    let mut attached = Vec::new();
    for (slot, name) in settings.interfaces.iter().enumerate() {
        let a = attach(prog, name, settings.mode, dir)?;
        let entry = IfaceEntry {
            ifindex: iface::index(name).unwrap_or(0),
            mode: if a.native { MODE_NATIVE } else { MODE_SKB },
            name: iface::to_fixed(name),
        };
        maps.ifaces
            .set(slot as u32, entry, 0)
            .context(|| "recording the interfaces".into())?;
        attached.push(a);
    }
    Ok(attached)
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
