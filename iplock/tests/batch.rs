//! The batched reader of hash maps (`iplock::kernel::batch`) on the real
//! object's LRU maps: it returns exactly what a map holds, empty or
//! spread over several calls, and when a bucket outgrows the room it
//! starts with.

#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with kernel.rs; this test uses part of it
mod harness;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::Ebpf;
use aya::maps::{HashMap, MapData};
use harness::privileged;
use iplock::kernel::batch;
use iplock_common::addr::{self, AddrKey};
use iplock_common::names;
use iplock_common::state::{BAN_MANUAL, BanEntry, SourceState};

/// The LRU maps' size: well above what the test stores, so that no entry
/// is evicted (see `Harness::sized`).
const ROOM: u32 = 16_384;
/// More than two of the reader's first calls' worth, and enough that many
/// of the map's buckets hold more than one entry.
const SOURCES: u32 = 10_000;
const BANS: u32 = 3_000;

fn take<K: aya::Pod, V: aya::Pod>(ebpf: &mut Ebpf, name: &str) -> HashMap<MapData, K, V> {
    let map = ebpf
        .take_map(name)
        .unwrap_or_else(|| panic!("object has no map {name}"));
    HashMap::try_from(map).unwrap_or_else(|e| panic!("map {name} is not a hash map: {e:?}"))
}

/// Distinct addresses of both families.
fn key(i: u32) -> AddrKey {
    let ip = if i.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        ))
    };
    addr::from_ip(ip)
}

/// The entries as a map, checking none came twice.
fn set<V: Copy>(entries: Vec<(AddrKey, V)>) -> BTreeMap<AddrKey, V> {
    let n = entries.len();
    let set: BTreeMap<_, _> = entries.into_iter().collect();
    assert_eq!(set.len(), n, "the batched read returned an entry twice");
    set
}

#[test]
fn batched_reads_return_exactly_what_the_map_holds() {
    if !privileged("batched_reads_return_exactly_what_the_map_holds") {
        return;
    }
    let mut ebpf = harness::load_sized(Some(ROOM));
    let mut sources: HashMap<MapData, AddrKey, SourceState> = take(&mut ebpf, names::MAP_SOURCES);
    let mut bans: HashMap<MapData, AddrKey, BanEntry> = take(&mut ebpf, names::MAP_BANS);

    assert!(batch::entries(&sources).expect("read").is_empty());
    assert!(batch::entries_by(&bans, 1).expect("read").is_empty());

    let mut want_sources = BTreeMap::new();
    for i in 0..SOURCES {
        let s = SourceState {
            step: i % 4,
            seq: i,
            last_knock_ns: u64::from(i) << 20,
            open_until_ns: u64::from(i) << 32,
        };
        sources.insert(key(i), s, 0).expect("write a source");
        want_sources.insert(key(i), s);
    }
    let mut want_bans = BTreeMap::new();
    for i in 0..BANS {
        let b = BanEntry {
            until_ns: u64::from(i) + 1,
            reason: BAN_MANUAL,
            _pad: 0,
        };
        bans.insert(key(i), b, 0).expect("write a ban");
        want_bans.insert(key(i), b);
    }

    assert_eq!(set(batch::entries(&sources).expect("read")), want_sources);
    assert_eq!(set(batch::entries(&bans).expect("read")), want_bans);
    // Room for one entry per call: every bucket of two or more (thousands
    // of them at this load) is refused first and read after the room grows.
    assert_eq!(
        set(batch::entries_by(&sources, 1).expect("read")),
        want_sources
    );
}
