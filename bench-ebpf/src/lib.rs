//! What the frame generator (`src/gen.rs`) and the bench (`iplock-bench`)
//! agree on: the slots of its two array maps. The lib target also lets
//! iplock-bench name this crate as a build dependency, so cargo rebuilds
//! the programs when their sources change.
#![no_std]

/// `GEN_CONFIG` (`ARRAY` of u32): how many distinct source addresses the
/// generated frames cycle through.
pub const CFG_SRC_COUNT: u32 = 0;
/// `GEN_CONFIG`: the low 32 bits of the first source address, as a number
/// (for IPv4 the whole address); frame `n` uses `base + n % src_count`.
pub const CFG_SRC_BASE: u32 = 1;
/// `GEN_CONFIG`: how many distinct source ports (from 1024) each source uses.
pub const CFG_PORT_COUNT: u32 = 2;
/// Entries of `GEN_CONFIG`.
pub const CFG_LEN: u32 = 3;

/// `GEN_STATE` (`ARRAY` of u64): frames filled in so far.
pub const STATE_FRAMES: u32 = 0;
/// `GEN_STATE`: frames the generator could not fill (not the expected
/// IPv4/IPv6 TCP layout) and dropped instead of sending.
pub const STATE_BAD: u32 = 1;
/// Entries of `GEN_STATE`.
pub const STATE_LEN: u32 = 2;
