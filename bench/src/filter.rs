//! iplock as the bench uses it: settings from TOML text, the program loaded
//! without attaching (for TestRun), or loaded and pinned on an interface
//! with iplock's own `filter::load`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use aya::maps::MapData;
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use iplock::config::settings::{Settings, SettingsArgs};
use iplock::kernel::maps::Maps;
use iplock::kernel::pin_dir::{Owner, PinDir};
use iplock_common::addr::{self, AddrKey};
use iplock_common::config::Config;
use iplock_common::counters::{COUNTERS, Counter};
use iplock_common::names::{
    MAP_ALLOW, MAP_ALLOW_B, MAP_BANS, MAP_CONFIG, MAP_EVENTS, MAP_KNOCK_BANS, MAP_SLOT,
    MAP_SOURCES, PROGRAM,
};
use iplock_common::state::{BAN_MANUAL, BanEntry};

/// Validated settings from the text of a config file, through the same
/// code path as `iplock load --config`.
pub fn settings(toml: &str) -> Result<Settings> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("iplock-bench-{}-{n}.toml", std::process::id()));
    fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    let result = Settings::from_args(&SettingsArgs {
        config: Some(path.clone()),
        ..SettingsArgs::default()
    });
    let _ = fs::remove_file(&path);
    result.with_context(|| format!("the bench's iplock config is invalid:\n{toml}"))
}

/// The maps of iplock that the same-work references of part 1 read and
/// write (bench-ebpf/src/refs.rs declares them alike).
pub const SHARED_MAPS: [&str; 8] = [
    MAP_SLOT,
    MAP_CONFIG,
    MAP_SOURCES,
    MAP_BANS,
    MAP_KNOCK_BANS,
    MAP_ALLOW,
    MAP_ALLOW_B,
    MAP_EVENTS,
];

/// bench-ebpf's same-work references, on iplock's maps pinned in `dir`,
/// the programs `names` loaded, each returning `verdict`.
pub fn load_refs(dir: &Path, verdict: u32, names: &[&str]) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    let pins: Vec<(&str, PathBuf)> = SHARED_MAPS.iter().map(|m| (*m, dir.join(m))).collect();
    for (name, path) in &pins {
        loader.map_pin_path(name, path.as_path());
    }
    loader.override_global("REF_VERDICT", &verdict, true);
    let mut ebpf = loader
        .load(crate::objects::REFS)
        .context("loading the reference object")?;
    for name in names {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .context(name.to_string())?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("the kernel refused {name}"))?;
        }
    }
    Ok(ebpf)
}

/// The iplock program and its maps, loaded and configured but attached
/// nowhere: what `TestRun` needs.
pub struct Unattached {
    ebpf: Ebpf,
    pub maps: Maps,
    /// Where [`SHARED_MAPS`] are pinned, for [`Unattached::load_pinned`].
    pins: Option<PathBuf>,
}

impl Unattached {
    /// Loads with `s`'s map sizes and allow list, and `config` (normally
    /// `s.to_kernel()`) in the config map.
    pub fn load(s: &Settings, config: Config) -> Result<Unattached> {
        Self::load_with(s, config, None)
    }

    /// As [`Unattached::load`], with [`SHARED_MAPS`] pinned in a directory
    /// of their own (removed on drop), so that another object can use them.
    pub fn load_pinned(s: &Settings, config: Config) -> Result<Unattached> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/{PIN_PREFIX}{}-shared{n}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Self::load_with(s, config, Some(dir))
    }

    pub fn pin_dir(&self) -> Option<&std::path::Path> {
        self.pins.as_deref()
    }

    fn load_with(s: &Settings, config: Config, pins: Option<PathBuf>) -> Result<Unattached> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(MAP_SOURCES, s.max_sources)
            .map_max_entries(MAP_BANS, s.max_bans)
            .map_max_entries(MAP_KNOCK_BANS, s.max_knock_bans);
        // Its log off, as `iplock load` loads it.
        iplock::kernel::log::override_level(&mut loader, iplock::kernel::log::level());
        let paths: Vec<(&str, PathBuf)> = match &pins {
            Some(dir) => SHARED_MAPS.iter().map(|m| (*m, dir.join(m))).collect(),
            None => Vec::new(),
        };
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(iplock::kernel::object::OBJECT)
            .context("loading the iplock object")?;
        let mut maps = Maps::build(|name| {
            ebpf.take_map(name).ok_or_else(|| {
                iplock::error::Error::Input(format!("the iplock object has no map {name}"))
            })
        })?;
        iplock::kernel::slots::switch(&mut maps, &config, &s.allow)?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .context("the iplock object has no program")?
            .try_into()?;
        prog.load()
            .context("the kernel refused the iplock program")?;
        Ok(Unattached { ebpf, maps, pins })
    }

    pub fn prog(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .context("the iplock object has no program")?
            .try_into()?)
    }
}

impl Drop for Unattached {
    fn drop(&mut self) {
        if let Some(dir) = &self.pins {
            // The maps live on while their file descriptors are open.
            if let Err(e) = fs::remove_dir_all(dir) {
                eprintln!("cleanup: {}: {e}", dir.display());
            }
        }
    }
}

/// iplock loaded by `iplock::kernel::filter::load` and pinned in its own pin
/// directory; unloaded (detached, unpinned) on drop.
pub struct Pinned {
    pub dir: PinDir,
    pub maps: Maps,
}

impl Pinned {
    /// Loads in the calling thread's network namespace, where the
    /// settings' interfaces must exist.
    pub fn load(s: &Settings) -> Result<Pinned> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PinDir::new(&pin_path(n))?;
        let _owner = dir.own(Owner::Command)?;
        iplock::kernel::filter::load(s, &dir).context("iplock::kernel::filter::load")?;
        let maps = Maps::open(&dir)?;
        Ok(Pinned { dir, maps })
    }

    /// The pinned map `name`, opened again (for its memory figure).
    pub fn map_data(&self, name: &str) -> Result<MapData> {
        let path = self.dir.map(name);
        MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(e) = self.dir.remove_all() {
            eprintln!("cleanup: {}: {e}", self.dir.path().display());
        }
    }
}

const PIN_PREFIX: &str = "iplock-bench-";

/// Pin directories of this run: `/sys/fs/bpf/iplock-bench-<pid>-<n>`.
pub fn pin_path(n: usize) -> PathBuf {
    PathBuf::from(format!(
        "/sys/fs/bpf/{PIN_PREFIX}{}-{n}",
        std::process::id()
    ))
}

/// Removes the pins (and so the attached programs) of earlier bench runs
/// that died before cleaning up.
pub fn remove_stale_pins() -> Result<()> {
    let Ok(dir) = fs::read_dir("/sys/fs/bpf") else {
        return Ok(());
    };
    for entry in dir {
        let entry = entry.context("listing /sys/fs/bpf")?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PIN_PREFIX)
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if std::path::Path::new("/proc").join(pid).exists() {
            continue;
        }
        println!(
            "cleanup: removing {} left by an earlier run",
            entry.path().display()
        );
        PinDir::new(&entry.path())?.remove_all()?;
    }
    Ok(())
}

/// Per-reason packet counters summed over CPUs, in `Counter` index order.
pub fn counters(maps: &Maps) -> Result<[u64; COUNTERS as usize]> {
    let mut out = [0u64; COUNTERS as usize];
    for c in Counter::ALL {
        out[c as usize] = maps.counters.get(&(c as u32), 0)?.iter().sum();
    }
    Ok(out)
}

/// Bans `ip` (its /64 for IPv6, as the program keys bans) for `secs`.
pub fn ban(maps: &mut Maps, ip: std::net::IpAddr, prefix_v6: u32, secs: u64) -> Result<()> {
    let key: AddrKey = addr::ban_key(&addr::from_ip(ip), prefix_v6);
    let entry = BanEntry {
        until_ns: iplock::system::clock::now_ns() + secs * 1_000_000_000,
        reason: BAN_MANUAL,
        ..BanEntry::default()
    };
    maps.bans.insert(key, entry, 0)?;
    Ok(())
}

/// The `memlock` the kernel charges for a map, from /proc/self/fdinfo.
pub fn memlock(map: &MapData) -> Result<u64> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let fd = map.fd().as_fd().as_raw_fd();
    let path = format!("/proc/self/fdinfo/{fd}");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{path} has no memlock line"))
}
