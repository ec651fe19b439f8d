//! Loading over the pins of an older build (`iplock::kernel::layout::prepare`,
//! then the loader): a stateless map of another shape is made afresh, a
//! stateful one keeps its entries, and a stateful one of another shape
//! refuses the upgrade with every pin left as it was.
//!
//! The old build's maps are made with bpftool, as that build's loader would
//! have left them, in a pin directory of the test's own under /sys/fs/bpf.

#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with kernel.rs; this test uses part of it
mod harness;

use std::collections::BTreeMap;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::process::Command;

use aya::maps::{HashMap, Map, MapData, MapInfo, MapType};
use harness::privileged;
use iplock::config::settings::{Settings, SettingsArgs};
use iplock::error::Error;
use iplock::kernel::filter::{self, Loaded};
use iplock::kernel::layout::prepare;
use iplock::kernel::pin_dir::{Owner, PinDir};
use iplock_common::addr::AddrKey;
use iplock_common::config::Config;
use iplock_common::names::{
    CONFIG_SLOTS, MAP_BANS, MAP_CLOCK, MAP_CONFIG, MAP_SOURCES, PINNED_MAPS,
};
use iplock_common::state::{ClockReading, SourceState};

/// The configuration's value before it grew the 64 KiB port index.
const OLD_CONFIG: usize = size_of::<Config>() - 65536;
/// The old build's LRU maps: small, and left at this size by the loader.
const ROOM: u32 = 64;

/// A pin directory of the test's own, removed with everything in it when
/// the test ends, passed or failed.
struct TempPins(PathBuf);

impl TempPins {
    fn new(test: &str) -> TempPins {
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/iplock-test-upgrade-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempPins(path)
    }

    fn map(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pins a new map at `path`, as an older build's loader would have.
fn create(path: &Path, kind: &str, key: usize, value: usize, entries: u32) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args(["type", kind, "key", &key.to_string(), "value"])
        .args([&value.to_string(), "entries", &entries.to_string()])
        .args(["name", &name[..name.len().min(15)]])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool map create {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn info(path: &Path) -> MapInfo {
    MapInfo::from_pin(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn sources(path: &Path) -> HashMap<MapData, AddrKey, SourceState> {
    let data = MapData::from_pin(path).expect("open the source map");
    HashMap::try_from(Map::from_map_data(data).expect("a known map type"))
        .expect("the source map is a hash map of this build's entries")
}

/// Every pin in the directory, with the id of the map behind it (a map
/// made afresh has a new id).
fn pins(dir: &Path) -> BTreeMap<String, u32> {
    std::fs::read_dir(dir)
        .expect("read the pin directory")
        .map(|e| {
            let e = e.expect("read the pin directory");
            (e.file_name().into_string().unwrap(), info(&e.path()).id())
        })
        .collect()
}

/// A source with an open door, as a knock of the older build left it
/// (no knock in progress: a load whose configuration map is new counts the
/// sequence as changed and resets progress).
fn door() -> (AddrKey, SourceState) {
    let key = harness::key("198.51.100.7");
    let state = SourceState {
        step: 0,
        seq: 0,
        last_knock_ns: 5_000_000_000,
        open_until_ns: u64::MAX / 2,
    };
    (key, state)
}

/// An older build's pins: its smaller configuration map, a source map
/// holding one open door, and no clock map.
fn old_build(pins: &TempPins) {
    create(&pins.map(MAP_CONFIG), "array", 4, OLD_CONFIG, CONFIG_SLOTS);
    create(
        &pins.map(MAP_SOURCES),
        "lru_hash",
        16,
        size_of::<SourceState>(),
        ROOM,
    );
    let (key, state) = door();
    sources(&pins.map(MAP_SOURCES))
        .insert(key, state, 0)
        .expect("write a source");
}

/// Validated settings attached to no interface: the loader runs whole
/// (verifier included) without touching the host's network.
fn settings() -> Settings {
    let mut s = Settings::from_args(&SettingsArgs {
        interfaces: vec!["lo".into()],
        knock: Some("tcp:100,udp:300,tcp:200".into()),
        ..SettingsArgs::default()
    })
    .expect("valid settings");
    s.interfaces.clear();
    // Preallocating the LRU maps' default sizes would cost most of the load.
    s.max_sources = ROOM;
    s.max_bans = ROOM;
    s.max_knock_bans = ROOM;
    s.max_decisions = ROOM;
    s
}

#[test]
fn maps_of_an_older_shape_are_made_afresh_and_state_is_kept() {
    if !privileged("maps_of_an_older_shape_are_made_afresh_and_state_is_kept") {
        return;
    }
    let tmp = TempPins::new("rebuilt");
    old_build(&tmp);
    let sources_id = info(&tmp.map(MAP_SOURCES)).id();
    let dir = PinDir::new(&tmp.0).expect("a pin directory");

    prepare(&dir).expect("prepare the older build's pins");
    // The configuration map is left for the loader to make in its new
    // shape, the source map kept with its entry, and no clock made here.
    assert_eq!(
        pins(&tmp.0),
        BTreeMap::from([(MAP_SOURCES.to_string(), sources_id)])
    );
    let (key, state) = door();
    assert_eq!(
        sources(&tmp.map(MAP_SOURCES)).get(&key, 0).ok(),
        Some(state)
    );

    // The real load over an older build's pins, which prepares them itself.
    let tmp = TempPins::new("loaded");
    old_build(&tmp);
    let sources_id = info(&tmp.map(MAP_SOURCES)).id();
    let dir = PinDir::new(&tmp.0).expect("a pin directory");
    let _owner = dir.own(Owner::Command).expect("the owner lock");
    match filter::load(&settings(), &dir).expect("load over the older build's pins") {
        Loaded::Replaced(r) => assert_eq!(r.progress_reset, 0, "{r:?}"),
        Loaded::New(_) => panic!("the older build's filter was not found"),
    }
    let config = info(&tmp.map(MAP_CONFIG));
    assert_eq!(config.value_size() as usize, size_of::<Config>());
    assert_eq!(config.max_entries(), CONFIG_SLOTS);
    let clock = info(&tmp.map(MAP_CLOCK));
    assert!(matches!(clock.map_type(), Ok(MapType::PerCpuArray)));
    assert_eq!(clock.value_size() as usize, size_of::<ClockReading>());
    assert_eq!(clock.max_entries(), 1);
    assert_eq!(info(&tmp.map(MAP_SOURCES)).id(), sources_id);
    assert_eq!(
        sources(&tmp.map(MAP_SOURCES)).get(&key, 0).ok(),
        Some(state)
    );
    let loaded = pins(&tmp.0);
    let names: Vec<&str> = loaded.keys().map(String::as_str).collect();
    let mut want = PINNED_MAPS.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "the loader pins every map and nothing else");

    // Every pin now has this build's shape: a second prepare removes none.
    prepare(&dir).expect("prepare this build's pins");
    assert_eq!(pins(&tmp.0), loaded);
}

#[test]
fn a_stateful_map_of_another_shape_refuses_and_nothing_is_removed() {
    if !privileged("a_stateful_map_of_another_shape_refuses_and_nothing_is_removed") {
        return;
    }
    let tmp = TempPins::new("refused");
    // The configuration map comes before the ban map in PINNED_MAPS: a
    // check that removed outdated maps as it went would have removed it.
    old_build(&tmp);
    create(&tmp.map(MAP_BANS), "lru_hash", 16, 8, ROOM);
    let before = pins(&tmp.0);
    let dir = PinDir::new(&tmp.0).expect("a pin directory");

    let err = prepare(&dir).expect_err("a ban map of another shape refuses");
    let msg = err.to_string();
    assert!(matches!(err, Error::Input(_)), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    assert!(msg.contains(MAP_BANS), "{msg}");
    assert!(msg.contains("run `iplock unload` and load again"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert_eq!(pins(&tmp.0), before, "the refusal removed a pin");

    // The command refuses alike, before it loads or attaches anything: it
    // runs in a network namespace of its own, so that a load which went on
    // would attach only to that namespace's loopback.
    let out = Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_iplock"))
        .args([
            "load",
            "--iface",
            "lo",
            "--knock",
            "tcp:100,udp:300,tcp:200",
        ])
        .arg("--pin-dir")
        .arg(&tmp.0)
        .output()
        .expect("run iplock load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr, format!("iplock: {msg}\n"));
    assert_eq!(pins(&tmp.0), before, "the refused load changed a pin");
    let (key, state) = door();
    assert_eq!(
        sources(&tmp.map(MAP_SOURCES)).get(&key, 0).ok(),
        Some(state)
    );

    // The way out the message gives works: the directory is still a filter
    // that `iplock unload` knows and removes.
    let out = Command::new(env!("CARGO_BIN_EXE_iplock"))
        .arg("unload")
        .arg("--pin-dir")
        .arg(&tmp.0)
        .output()
        .expect("run iplock unload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.0.exists());
}
