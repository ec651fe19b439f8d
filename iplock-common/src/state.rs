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
            _ => "unknown",
        }
    }
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

crate::user_pod!(SourceState, BanEntry, AllowEntry, IfaceEntry);
