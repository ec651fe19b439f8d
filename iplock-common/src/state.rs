//! Values of the state maps.

use bytemuck::{Pod, Zeroable};

/// Knock progress and door of one source address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceState {
    /// Steps of the sequence completed (0 = none).
    pub step: u32,
    /// Id of the sequence the steps belong to (`Config::seq_id`; 0 for a
    /// fixed sequence).
    pub seq: u32,
    /// Ns (CLOCK_MONOTONIC_COARSE) of the last accepted knock.
    pub last_knock_ns: u64,
    /// Ns (CLOCK_MONOTONIC_COARSE) until which new connections to protected ports pass.
    pub open_until_ns: u64,
}

/// Why a source was banned.
pub const BAN_WRONG_KNOCK: u32 = 1;
pub const BAN_CLOSED_DOOR: u32 = 2;
pub const BAN_TRAP: u32 = 3;
pub const BAN_MANUAL: u32 = 4;
/// Not stored in the ban maps: how listings name a CrowdSec decision.
pub const BAN_CROWDSEC: u32 = 5;

/// A ban of one address (or IPv6 prefix, see [`crate::addr::ban_key`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BanEntry {
    /// Ns (CLOCK_MONOTONIC_COARSE) when the ban ends.
    pub until_ns: u64,
    /// `BAN_*` reason.
    pub reason: u32,
    pub _pad: u32,
}

impl BanEntry {
    pub const fn reason_name(&self) -> &'static str {
        match self.reason {
            BAN_WRONG_KNOCK => "wrong_knock",
            BAN_CLOSED_DOOR => "closed_door",
            BAN_TRAP => "trap",
            BAN_MANUAL => "manual",
            BAN_CROWDSEC => "crowdsec",
            _ => "unknown",
        }
    }
}

/// Where a CrowdSec decision came from (its `origin` in the Local API),
/// as [`DecisionEntry::origin`] records it.
pub const ORIGIN_OTHER: u32 = 0;
pub const ORIGIN_CROWDSEC: u32 = 1;
pub const ORIGIN_CSCLI: u32 = 2;
pub const ORIGIN_CAPI: u32 = 3;
pub const ORIGIN_LISTS: u32 = 4;
/// Pushed by an iplock (this host's or another's).
pub const ORIGIN_IPLOCK: u32 = 5;
/// Origins by code, for counts by origin.
pub const ORIGINS: [u32; 6] = [
    ORIGIN_OTHER,
    ORIGIN_CROWDSEC,
    ORIGIN_CSCLI,
    ORIGIN_CAPI,
    ORIGIN_LISTS,
    ORIGIN_IPLOCK,
];

/// The code of a Local API origin.
pub fn origin_code(origin: &str) -> u32 {
    match origin {
        "crowdsec" => ORIGIN_CROWDSEC,
        "cscli" => ORIGIN_CSCLI,
        "CAPI" => ORIGIN_CAPI,
        "lists" => ORIGIN_LISTS,
        "iplock" => ORIGIN_IPLOCK,
        _ => ORIGIN_OTHER,
    }
}

/// The name of an origin code.
pub const fn origin_name(code: u32) -> &'static str {
    match code {
        ORIGIN_CROWDSEC => "crowdsec",
        ORIGIN_CSCLI => "cscli",
        ORIGIN_CAPI => "CAPI",
        ORIGIN_LISTS => "lists",
        ORIGIN_IPLOCK => "iplock",
        _ => "other",
    }
}

/// A CrowdSec decision in force for an address or block (the decision
/// map, an LPM trie keyed like the allow list): everything from it is
/// dropped until `until_ns`, unless the allow list covers it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DecisionEntry {
    /// The filter's clock (ns, see iplock::system::clock) when the decision ends.
    pub until_ns: u64,
    /// `ORIGIN_*`.
    pub origin: u32,
    pub _pad: u32,
}

/// What `iplock run` records of its CrowdSec pulls and pushes, for
/// `iplock status` and the metrics (the one entry of an `ARRAY`; the XDP
/// program never reads it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct CrowdsecStats {
    /// Unix seconds of the last successful pull; 0: none yet.
    pub last_pull_unix: u64,
    pub pulls: u64,
    pub pull_errors: u64,
    /// Unix seconds of the last failed pull; 0: none.
    pub last_error_unix: u64,
    /// Bans pushed as alerts, and failed pushes.
    pub pushed: u64,
    pub push_errors: u64,
    /// Decisions the map had no room for at the last write.
    pub refused_full: u64,
    /// Unix seconds when the daemon that writes this started; 0: none ran.
    pub started_unix: u64,
}

/// Where an allow-list entry came from: a reload replaces the
/// configuration's entries and keeps those added at run time.
pub const ALLOW_FROM_CONFIG: u32 = 1;
pub const ALLOW_AT_RUNTIME: u32 = 2;

/// Value of an allow-list entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct AllowEntry {
    /// Ns (CLOCK_MONOTONIC_COARSE) when the entry stops matching; 0 = never.
    pub until_ns: u64,
    /// `ALLOW_*`.
    pub origin: u32,
    pub _pad: u32,
}

impl AllowEntry {
    pub const fn from_config() -> Self {
        Self {
            until_ns: 0,
            origin: ALLOW_FROM_CONFIG,
            _pad: 0,
        }
    }

    pub const fn at_runtime(until_ns: u64) -> Self {
        Self {
            until_ns,
            origin: ALLOW_AT_RUNTIME,
            _pad: 0,
        }
    }

    pub const fn is_from_config(&self) -> bool {
        self.origin == ALLOW_FROM_CONFIG
    }
}

/// XDP attach modes recorded in [`IfaceEntry::mode`].
pub const MODE_NATIVE: u32 = 1;
pub const MODE_SKB: u32 = 2;

/// One interface the filter is attached to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct IfaceEntry {
    pub ifindex: u32,
    /// `MODE_*`; 0 marks an unused slot.
    pub mode: u32,
    /// Interface name, NUL padded (IFNAMSIZ).
    pub name: [u8; 16],
}

/// One CPU's last reading of CLOCK_MONOTONIC_COARSE and the jiffies it
/// was read at (the program's [`crate::names::MAP_CLOCK`]). That clock moves
/// only when the tick that moves jiffies updates the timekeeper, so while
/// jiffies stand still the reading stands: the program reads jiffies (one
/// load, inlined by the verifier) and calls the clock helper only once a
/// tick per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ClockReading {
    pub jiffies: u64,
    pub now_ns: u64,
}

crate::user_pod!(
    ClockReading,
    SourceState,
    BanEntry,
    AllowEntry,
    IfaceEntry,
    DecisionEntry,
    CrowdsecStats
);
