//! Names and limits both sides agree on: map and program names, pin
//! layout, array sizes and default map sizes.

/// Name of the XDP program in the object file.
pub const PROGRAM: &str = "iplock";
/// The same program with single packet authorization (Linux 5.18), which
/// the loader picks when the settings have `[spa]`.
pub const PROGRAM_SPA: &str = "iplock_spa";

/// Per-source knock progress and open doors (`LRU_HASH`, [`crate::addr::AddrKey`] ->
/// [`crate::state::SourceState`]).
pub const MAP_SOURCES: &str = "IPLOCK_SOURCES";
/// Bans (`LRU_HASH`, [`crate::addr::AddrKey`] -> [`crate::state::BanEntry`]).
pub const MAP_BANS: &str = "IPLOCK_BANS";
/// Bans for wrong knocks (`LRU_HASH`, as [`MAP_BANS`]), apart so their
/// floods cannot evict the others.
pub const MAP_KNOCK_BANS: &str = "IPLOCK_KNOCK_BANS";
/// Allow list of configuration slot 0 (`LPM_TRIE`, `Key<AddrKey>` ->
/// [`crate::state::AllowEntry`]).
pub const MAP_ALLOW: &str = "IPLOCK_ALLOW";
/// Allow list of configuration slot 1: each slot has its own, so a switch
/// of slot changes the configuration and the allow list at once.
pub const MAP_ALLOW_B: &str = "IPLOCK_ALLOW_B";
/// The [`crate::config::Config`] of each slot (`ARRAY` of [`CONFIG_SLOTS`]).
pub const MAP_CONFIG: &str = "IPLOCK_CONFIG";
/// Which slot of [`MAP_CONFIG`] and allow list the program reads (`ARRAY`
/// of one u32). A reload writes the other slot whole, then switches.
pub const MAP_SLOT: &str = "IPLOCK_SLOT";
/// Configuration slots: the one in force and the one being written.
pub const CONFIG_SLOTS: u32 = 2;
/// Packet counters (`PERCPU_ARRAY` of u64, indexed by [`crate::counters::Counter`]).
pub const MAP_COUNTERS: &str = "IPLOCK_COUNTERS";
/// Interfaces the filter is attached to (`ARRAY` of [`crate::state::IfaceEntry`]),
/// kept in bpffs so `iplock status` and `unload` need no other file.
pub const MAP_IFACES: &str = "IPLOCK_IFACES";

/// Events for `iplock run` (`RINGBUF` of [`crate::events::Event`]).
pub const MAP_EVENTS: &str = "IPLOCK_EVENTS";

/// The program's diagnostics (`RINGBUF` of aya-log records), made by
/// aya-log-ebpf and pinned with the rest so that every program that
/// replaces another writes to the ring `iplock run` reads.
pub const MAP_LOGS: &str = "AYA_LOGS";
/// Size of [`MAP_LOGS`], fixed by aya-log-ebpf 0.2.
pub const LOGS_BYTES: u32 = 1 << 17;

/// Rotating sequences already used (`LRU_HASH`, sequence id -> 1).
pub const MAP_SPENT: &str = "IPLOCK_SPENT";
/// Spent sequence ids remembered: two are live at a time.
pub const MAX_SPENT: u32 = 64;

/// CrowdSec decisions (`LPM_TRIE`, `Key<AddrKey>` ->
/// [`crate::state::DecisionEntry`]): exact addresses as /128 (IPv4 as
/// v4-mapped /128), ranges as their prefix, so one lookup covers both.
/// Only `iplock run` writes it; the kernel never does, so neither a flood
/// nor iplock's own bans can evict a decision, nor decisions a ban.
pub const MAP_DECISIONS: &str = "IPLOCK_DECISIONS";
/// `iplock run`'s record of its CrowdSec pulls (`ARRAY` of one
/// [`crate::state::CrowdsecStats`]), for `iplock status`.
pub const MAP_CROWDSEC: &str = "IPLOCK_CROWDSEC";

/// SPA payloads for `iplock run` (`RINGBUF` of [`crate::spa::SpaRecord`]).
pub const MAP_SPA: &str = "IPLOCK_SPA";
/// The SPA rate limit of each CPU (`PERCPU_ARRAY` of one
/// [`crate::spa::RateWindow`]).
pub const MAP_SPA_RATE: &str = "IPLOCK_SPA_RATE";
/// The SPA rate limit of each source (`LRU_HASH`, [`crate::addr::AddrKey`]
/// with the ban prefix -> [`crate::spa::RateWindow`]).
pub const MAP_SPA_SOURCES: &str = "IPLOCK_SPA_SOURCES";
/// The daemon's SPA counters (`ARRAY` of [`crate::spa::SPA_STATS`] u64):
/// written by `iplock run` only, read by `iplock status` and the metrics.
pub const MAP_SPA_STATS: &str = "IPLOCK_SPA_STATS";

/// Each CPU's last clock reading (`PERCPU_ARRAY` of one
/// [`crate::state::ClockReading`]).
pub const MAP_CLOCK: &str = "IPLOCK_CLOCK";

/// Every map the loader pins.
pub const PINNED_MAPS: [&str; 19] = [
    MAP_SLOT,
    MAP_CONFIG,
    MAP_ALLOW_B,
    MAP_SOURCES,
    MAP_BANS,
    MAP_KNOCK_BANS,
    MAP_ALLOW,
    MAP_COUNTERS,
    MAP_IFACES,
    MAP_EVENTS,
    MAP_SPENT,
    MAP_LOGS,
    MAP_DECISIONS,
    MAP_CROWDSEC,
    MAP_SPA,
    MAP_SPA_RATE,
    MAP_SPA_SOURCES,
    MAP_SPA_STATS,
    MAP_CLOCK,
];

/// Default pin directory under bpffs.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/iplock";
/// Prefix of the pinned XDP link of one interface: `link_<ifname>`.
pub const LINK_PIN_PREFIX: &str = "link_";

/// Most steps in a knock sequence.
pub const MAX_STEPS: usize = 8;
/// Most protected TCP ports.
pub const MAX_PROTECT: usize = 8;
/// Most trap ports.
pub const MAX_TRAPS: usize = 16;
/// Most interfaces one filter attaches to.
pub const MAX_IFACES: usize = 32;
/// Most allow-list entries.
pub const MAX_ALLOW: u32 = 4096;

/// Default size of the source map: at 24-byte values about 6 MiB with hash
/// overhead, enough for every source of a busy server and small enough that
/// a spoofed flood only evicts the least recently seen knockers.
pub const DEFAULT_MAX_SOURCES: u32 = 65_536;
/// Default size of the ban map.
pub const DEFAULT_MAX_BANS: u32 = 262_144;
/// Default size of the decision map: room for a community blocklist. An
/// LPM trie is never preallocated, so unused room costs nothing.
pub const DEFAULT_MAX_DECISIONS: u32 = 65_536;
/// Default size of the wrong-knock ban map (only used with `wrong_knock = true`).
pub const DEFAULT_MAX_KNOCK_BANS: u32 = 65_536;
