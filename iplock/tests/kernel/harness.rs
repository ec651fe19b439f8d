//! One loaded copy of the real XDP program with its own (unpinned) maps,
//! driven with BPF_PROG_TEST_RUN.

use std::collections::BTreeMap;
use std::net::IpAddr;

use aya::maps::lpm_trie::Key;
use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, PerCpuValues};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use iplock_common::addr::{self, AddrKey};
use iplock_common::config::Config;
use iplock_common::counters::Counter;
use iplock_common::decide::Verdict;
use iplock_common::names;
use iplock_common::state::{AllowEntry, BAN_WRONG_KNOCK, BanEntry, DecisionEntry, SourceState};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The verdict an XDP action stands for; `None` for any action the program
/// must never return (XDP_ABORTED among them).
pub fn verdict(action: u32) -> Option<Verdict> {
    match action {
        XDP_PASS => Some(Verdict::Pass),
        XDP_DROP => Some(Verdict::Drop),
        _ => None,
    }
}

/// Whether the caller may load BPF programs. Without root this prints a
/// skip notice, or panics when `IPLOCK_REQUIRE_PRIVILEGED=1` forbids skipping.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let reason = format!("{test} needs root to load an XDP program");
    if std::env::var("IPLOCK_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{reason}, and IPLOCK_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("SKIP: {reason}");
    false
}

/// `now` moved by a signed number of seconds.
pub fn at(now: u64, secs: i64) -> u64 {
    now.checked_add_signed(secs * 1_000_000_000)
        .expect("time offset in range")
}

pub fn key(ip: &str) -> AddrKey {
    addr::from_ip(ip.parse().expect("test address"))
}

pub struct Harness {
    ebpf: Ebpf,
    config: Array<MapData, Config>,
    sources: HashMap<MapData, AddrKey, SourceState>,
    bans: HashMap<MapData, AddrKey, BanEntry>,
    knock_bans: HashMap<MapData, AddrKey, BanEntry>,
    allow: LpmTrie<MapData, AddrKey, AllowEntry>,
    decisions: LpmTrie<MapData, AddrKey, DecisionEntry>,
    counters: PerCpuArray<MapData, u64>,
}

fn take<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    let map = ebpf
        .take_map(name)
        .unwrap_or_else(|| panic!("object has no map {name}"));
    T::try_from(map).unwrap_or_else(|e| panic!("map {name} has the wrong type: {e:?}"))
}

/// Loads the object and the program (through the verifier); no attach.
/// `small` shrinks the two LRU maps: preallocating their default sizes
/// costs most of a load, and no case stores more than a few entries.
pub fn load(small: bool) -> Ebpf {
    load_sized(small.then_some(1024))
}

/// Like [`load`], with the two LRU maps at `entries` (default sizes for
/// `None`).
pub fn load_sized(entries: Option<u32>) -> Ebpf {
    load_with(entries, log::LevelFilter::Off)
}

/// Like [`load_sized`], with the program's log at `level` (off elsewhere,
/// as `iplock load` loads it).
pub fn load_with(entries: Option<u32>, level: log::LevelFilter) -> Ebpf {
    let mut loader = EbpfLoader::new();
    iplock::kernel::log::override_level(&mut loader, level);
    if let Some(n) = entries {
        loader
            .map_max_entries(names::MAP_SOURCES, n)
            .map_max_entries(names::MAP_BANS, n)
            .map_max_entries(names::MAP_KNOCK_BANS, n);
    }
    let mut ebpf = loader
        .load(iplock::kernel::object::OBJECT)
        .expect("load the eBPF object");
    let prog: &mut Xdp = ebpf
        .program_mut(names::PROGRAM)
        .expect("object has the iplock program")
        .try_into()
        .expect("iplock is an XDP program");
    prog.load().expect("the verifier accepts the program");
    ebpf
}

impl Harness {
    pub fn new(cfg: &Config) -> Self {
        Self::with_ebpf(load(true), cfg)
    }

    /// With LRU maps of `entries` each. An LRU map may evict before it is
    /// full, when other CPUs hold free entries in their local lists (up to
    /// 128 each), so a test that must never see an eviction sizes them well
    /// above what it stores.
    pub fn sized(cfg: &Config, entries: u32) -> Self {
        Self::with_ebpf(load_sized(Some(entries)), cfg)
    }

    fn with_ebpf(mut ebpf: Ebpf, cfg: &Config) -> Self {
        let mut h = Self {
            config: take(&mut ebpf, names::MAP_CONFIG),
            sources: take(&mut ebpf, names::MAP_SOURCES),
            bans: take(&mut ebpf, names::MAP_BANS),
            knock_bans: take(&mut ebpf, names::MAP_KNOCK_BANS),
            allow: take(&mut ebpf, names::MAP_ALLOW),
            decisions: take(&mut ebpf, names::MAP_DECISIONS),
            counters: take(&mut ebpf, names::MAP_COUNTERS),
            ebpf,
        };
        h.write_config(cfg);
        h
    }

    /// Writes `cfg`, its port index built from its lists (tests build and
    /// change configurations field by field).
    fn write_config(&mut self, cfg: &Config) {
        let mut cfg = *cfg;
        cfg.index_ports();
        self.config.set(0, cfg, 0).expect("write the config");
    }

    /// Empties every map and writes `cfg`: the state of a fresh load, at a
    /// fraction of the cost of running the verifier again.
    pub fn reset(&mut self, cfg: &Config) {
        self.write_config(cfg);
        let keys: Vec<AddrKey> = self.sources.keys().map(|k| k.expect("key")).collect();
        for k in keys {
            self.sources.remove(&k).expect("remove a source");
        }
        for bans in [&mut self.bans, &mut self.knock_bans] {
            let keys: Vec<AddrKey> = bans.keys().map(|k| k.expect("key")).collect();
            for k in keys {
                bans.remove(&k).expect("remove a ban");
            }
        }
        let keys: Vec<Key<AddrKey>> = self.allow.keys().map(|k| k.expect("key")).collect();
        for k in keys {
            self.allow.remove(&k).expect("remove an allow entry");
        }
        let keys: Vec<Key<AddrKey>> = self.decisions.keys().map(|k| k.expect("key")).collect();
        for k in keys {
            self.decisions.remove(&k).expect("remove a decision");
        }
        let cpus = aya::util::nr_cpus().expect("number of CPUs");
        for c in Counter::ALL {
            let zeros = PerCpuValues::try_from(vec![0u64; cpus]).expect("per-CPU zeros");
            self.counters
                .set(c as u32, zeros, 0)
                .expect("zero a counter");
        }
        assert!(
            self.sources.keys().next().is_none()
                && self.bans.keys().next().is_none()
                && self.knock_bans.keys().next().is_none()
                && self.allow.keys().next().is_none()
                && self.counters().is_empty(),
            "maps not empty after a reset"
        );
    }

    pub fn config(&self) -> Config {
        self.config.get(&0, 0).expect("read the config")
    }

    /// Runs the program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Verdict {
        let action = self.run_action(frame);
        verdict(action).unwrap_or_else(|| panic!("unexpected XDP action {action}"))
    }

    /// Runs the program once on `frame` (at least 14 bytes, the kernel's
    /// minimum) and returns its XDP action as it is.
    pub fn run_action(&self, frame: &[u8]) -> u32 {
        let prog: &Xdp = self
            .ebpf
            .program(names::PROGRAM)
            .expect("program")
            .try_into()
            .expect("XDP program");
        prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN")
        .return_value
    }

    pub fn set_source(&mut self, ip: &str, state: SourceState) {
        self.sources
            .insert(key(ip), state, 0)
            .expect("write a source");
    }

    /// `ip` is the ban key's address: for IPv6 the masked prefix. A
    /// wrong-knock ban goes to its own map, as the program puts it.
    pub fn set_ban(&mut self, ip: &str, ban: BanEntry) {
        let map = if ban.reason == BAN_WRONG_KNOCK {
            &mut self.knock_bans
        } else {
            &mut self.bans
        };
        map.insert(key(ip), ban, 0).expect("write a ban");
    }

    /// Adds a CIDR the way the loader stores it: IPv4 /n as /(96+n) on the
    /// v4-mapped key.
    pub fn allow(&mut self, cidr: &str, until_ns: u64) {
        let (ip, len) = cidr.split_once('/').expect("CIDR");
        let ip: IpAddr = ip.parse().expect("CIDR address");
        let len: u32 = len.parse().expect("CIDR length");
        let prefix_len = match ip {
            IpAddr::V4(_) => addr::V4_MAPPED_PREFIX_BITS + len,
            IpAddr::V6(_) => len,
        };
        self.allow
            .insert(
                &Key::new(prefix_len, addr::from_ip(ip)),
                AllowEntry::at_runtime(until_ns),
                0,
            )
            .expect("write an allow entry");
    }

    /// Adds a CrowdSec decision the way `iplock run` stores it: an address
    /// (`/32`, `/128`) or range, IPv4 on the v4-mapped key.
    pub fn decision(&mut self, cidr: &str, until_ns: u64) {
        let (ip, len) = cidr.split_once('/').expect("CIDR");
        let ip: IpAddr = ip.parse().expect("CIDR address");
        let len: u32 = len.parse().expect("CIDR length");
        let prefix_len = match ip {
            IpAddr::V4(_) => addr::V4_MAPPED_PREFIX_BITS + len,
            IpAddr::V6(_) => len,
        };
        self.decisions
            .insert(
                &Key::new(prefix_len, addr::from_ip(ip)),
                DecisionEntry {
                    until_ns,
                    origin: iplock_common::state::ORIGIN_CSCLI,
                    _pad: 0,
                },
                0,
            )
            .expect("write a decision");
    }

    pub fn sources(&self) -> BTreeMap<IpAddr, SourceState> {
        self.sources
            .iter()
            .map(|kv| {
                let (k, v) = kv.expect("iterate sources");
                (addr::to_ip(&k), v)
            })
            .collect()
    }

    /// The bans of both ban maps; where a source has one in each, the
    /// ban map's, which the program asks first.
    pub fn bans(&self) -> BTreeMap<IpAddr, BanEntry> {
        let mut out = BTreeMap::new();
        for bans in [&self.knock_bans, &self.bans] {
            for kv in bans.iter() {
                let (k, v) = kv.expect("iterate bans");
                out.insert(addr::to_ip(&k), v);
            }
        }
        out
    }

    /// One counter's value on each possible CPU, by CPU number.
    pub fn per_cpu(&self, c: Counter) -> Vec<u64> {
        self.counters
            .get(&(c as u32), 0)
            .expect("read a counter")
            .to_vec()
    }

    /// Every non-zero counter, summed over CPUs.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        Counter::ALL
            .iter()
            .map(|c| {
                let per_cpu = self.counters.get(&(*c as u32), 0).expect("read a counter");
                (c.name(), per_cpu.iter().sum::<u64>())
            })
            .filter(|(_, n)| *n != 0)
            .collect()
    }
}
