//! Part 4: control-plane costs of the `iplock` command: load and unload
//! wall time, and `status --json` with 100,000 sources and 100,000 bans.

use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use iplock::kernel::pin_dir::PinDir;
use iplock_common::addr;
use iplock_common::names::{MAP_BANS, MAP_SOURCES};
use iplock_common::state::{BAN_MANUAL, BanEntry, SourceState};
use serde::Serialize;

use crate::netns::{self, Pair};
use crate::stats::Summary;
use crate::{deadline, filter};

const LOAD_RUNS: usize = 7;
const STATUS_RUNS: usize = 5;
/// Sources and bans in the maps while `status` is timed.
pub const ENTRIES: u32 = 100_000;
/// Map sizes for the status runs: room for ENTRIES without LRU eviction.
const BIG_MAPS: u32 = 131_072;

#[derive(Clone, Debug, Serialize)]
pub struct Control {
    pub load_ms: Summary,
    pub unload_ms: Summary,
    pub load_config: String,
    /// memlock of the default-size maps (65,536 sources, 262,144 bans).
    pub default_sources_memlock_bytes: u64,
    pub default_bans_memlock_bytes: u64,
    pub status_entries: u32,
    pub status_json_ms: Summary,
    pub status_json_bytes: usize,
    pub status_config: String,
    pub big_sources_memlock_bytes: u64,
    pub big_bans_memlock_bytes: u64,
}

fn config(iface: &str, maps: Option<u32>) -> String {
    let mut c = format!(
        "interfaces = [\"{iface}\"]\nmode = \"native\"\nprotect = [22]\nknock = \"tcp:100,tcp:300,tcp:200\"\n"
    );
    if let Some(n) = maps {
        c.push_str(&format!("[maps]\nsources = {n}\nbans = {n}\n"));
    }
    c
}

/// Runs `iplock ARGS` from a thread in `ns` (so the process starts in that
/// network namespace) and returns its wall time in ms and its stdout.
fn iplock(bin: &Path, ns: &str, args: &[&str]) -> Result<(f64, Vec<u8>)> {
    netns::run_in(ns, || {
        let start = Instant::now();
        let out = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if !out.status.success() {
            bail!(
                "`iplock {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((ms, out.stdout))
    })
}

fn memlock_of(dir: &PinDir, name: &str) -> Result<u64> {
    let path = dir.map(name);
    filter::memlock(
        &aya::maps::MapData::from_pin(&path)
            .with_context(|| format!("opening {}", path.display()))?,
    )
}

pub fn run(bin: &Path) -> Result<Control> {
    deadline::check("the control-plane part")?;
    let pair = Pair::create()?;
    let v = &pair.veth;
    let cfg_dir = std::env::temp_dir();
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let p = cfg_dir.join(format!("iplock-bench-{}-{name}.toml", std::process::id()));
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    };
    let load_config = config(&v.server_if, None);
    let load_path = write("load", &load_config)?;
    let dir = PinDir::new(&filter::pin_path(1000))?;
    let dir_arg = dir
        .path()
        .to_str()
        .context("pin path is not UTF-8")?
        .to_string();
    let cfg_arg = load_path
        .to_str()
        .context("temp path is not UTF-8")?
        .to_string();

    let (mut load, mut unload) = (vec![], vec![]);
    let (mut src_mem, mut ban_mem) = (0, 0);
    for i in 0..LOAD_RUNS {
        load.push(
            iplock(
                bin,
                &v.server,
                &["load", "--config", &cfg_arg, "--pin-dir", &dir_arg],
            )?
            .0,
        );
        if i == 0 {
            src_mem = memlock_of(&dir, MAP_SOURCES)?;
            ban_mem = memlock_of(&dir, MAP_BANS)?;
        }
        unload.push(iplock(bin, &v.server, &["unload", "--pin-dir", &dir_arg])?.0);
    }

    let status_config = config(&v.server_if, Some(BIG_MAPS));
    let status_path = write("status", &status_config)?;
    let status_arg = status_path
        .to_str()
        .context("temp path is not UTF-8")?
        .to_string();
    iplock(
        bin,
        &v.server,
        &["load", "--config", &status_arg, "--pin-dir", &dir_arg],
    )?;
    let result = status_runs(bin, &v.server, &dir, &dir_arg);
    let unloaded = iplock(bin, &v.server, &["unload", "--pin-dir", &dir_arg]);
    let _ = fs::remove_file(&load_path);
    let _ = fs::remove_file(&status_path);
    let (status_ms, bytes, big_src, big_ban) = result?;
    unloaded?;
    Ok(Control {
        load_ms: Summary::of(&load),
        unload_ms: Summary::of(&unload),
        load_config,
        default_sources_memlock_bytes: src_mem,
        default_bans_memlock_bytes: ban_mem,
        status_entries: ENTRIES,
        status_json_ms: Summary::of(&status_ms),
        status_json_bytes: bytes,
        status_config,
        big_sources_memlock_bytes: big_src,
        big_bans_memlock_bytes: big_ban,
    })
}

/// Fills the maps through their pins and times `status --json`.
fn status_runs(
    bin: &Path,
    ns: &str,
    dir: &PinDir,
    dir_arg: &str,
) -> Result<(Vec<f64>, usize, u64, u64)> {
    let mut maps = iplock::kernel::maps::Maps::open(dir)?;
    let now = iplock::system::clock::now_ns();
    let hour = 3_600_000_000_000u64;
    for i in 0..ENTRIES {
        // Distinct /64s, so that every ban is its own entry.
        let ip = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xe000 | (i >> 16) as u16,
            i as u16,
            0,
            0,
            0,
            1,
        ));
        let key = addr::from_ip(ip);
        let state = SourceState {
            step: 3,
            last_knock_ns: now,
            open_until_ns: now + hour,
            ..SourceState::default()
        };
        maps.sources.insert(key, state, 0)?;
        let ban = BanEntry {
            until_ns: now + hour,
            reason: BAN_MANUAL,
            ..BanEntry::default()
        };
        maps.bans.insert(addr::ban_key(&key, 64), ban, 0)?;
    }
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..STATUS_RUNS {
        let (ms, out) = iplock(bin, ns, &["status", "--json", "--pin-dir", dir_arg])?;
        let json: serde_json::Value =
            serde_json::from_slice(&out).context("status --json printed invalid JSON")?;
        let sources = json["sources"].as_array().map_or(0, Vec::len);
        let bans = json["bans"].as_array().map_or(0, Vec::len);
        ensure!(
            sources == ENTRIES as usize && bans == ENTRIES as usize,
            "status listed {sources} sources and {bans} bans, not {ENTRIES} of each"
        );
        times.push(ms);
        bytes = out.len();
    }
    Ok((
        times,
        bytes,
        memlock_of(dir, MAP_SOURCES)?,
        memlock_of(dir, MAP_BANS)?,
    ))
}
