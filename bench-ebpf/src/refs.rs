//! Same-work references: for each path of iplock's cost table, a program
//! that does exactly the map operations the contract needs for that path
//! and nothing else — no parsing beyond reading the source address at its
//! fixed offset, no decision, no clock. The bench loads this object with
//! iplock's own maps (the same pinned maps, so the same types, sizes and
//! entries) and runs each reference on the frame of its path, beside
//! iplock and the empty programs. In the cost table every reference passes,
//! and its cost over the empty XDP_PASS program is the bare map work of the
//! path; as a flood's receiver (part 2) it drops, like iplock.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::XdpContext;
use iplock_common::addr::Words;
use iplock_common::config::Config;
use iplock_common::counters::COUNTERS;
use iplock_common::events::{EVENTS_BYTES, Event};
use iplock_common::names::{
    CONFIG_SLOTS, DEFAULT_MAX_BANS, DEFAULT_MAX_KNOCK_BANS, DEFAULT_MAX_SOURCES, MAX_ALLOW,
};
use iplock_common::state::{AllowEntry, BanEntry, SourceState};

// Declared as iplock declares them; the bench points each at iplock's pin.
#[map]
static IPLOCK_SLOT: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static IPLOCK_CONFIG: Array<Config> = Array::with_max_entries(CONFIG_SLOTS, 0);
#[map]
static IPLOCK_SOURCES: LruHashMap<Words, SourceState> =
    LruHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);
#[map]
static IPLOCK_BANS: LruHashMap<Words, BanEntry> = LruHashMap::with_max_entries(DEFAULT_MAX_BANS, 0);
#[map]
static IPLOCK_KNOCK_BANS: LruHashMap<Words, BanEntry> =
    LruHashMap::with_max_entries(DEFAULT_MAX_KNOCK_BANS, 0);
#[map]
static IPLOCK_ALLOW: LpmTrie<Words, AllowEntry> = LpmTrie::with_max_entries(MAX_ALLOW, 0);
#[map]
static IPLOCK_ALLOW_B: LpmTrie<Words, AllowEntry> = LpmTrie::with_max_entries(MAX_ALLOW, 0);
#[map]
static IPLOCK_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);
/// Shaped like iplock's counter map but the references' own, so that the
/// bench can check iplock's counters around runs that interleave both.
#[map]
static REF_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

/// What every reference returns: XDP_PASS for the cost table (compared
/// with the empty XDP_PASS program), XDP_DROP as a flood's receiver. A
/// read-only global the loader sets, so the verifier folds it to a constant.
#[unsafe(no_mangle)]
static REF_VERDICT: u32 = XDP_PASS;

#[inline(always)]
fn verdict() -> u32 {
    // SAFETY: a read of a global; volatile so that the compiler does not
    // fold the default in before the loader has set it.
    unsafe { core::ptr::read_volatile(&REF_VERDICT) }
}

const ETH: usize = 14;

/// The source address as iplock keys it (IPv4-mapped for IPv4), read at
/// the fixed offset of an untagged frame, as words (iplock's form).
#[inline(always)]
fn source(ctx: &XdpContext) -> Option<Words> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ETH + 40 > end {
        return None;
    }
    // SAFETY: the bytes read are inside the frame (checked above).
    let first = unsafe { *((start + ETH) as *const u8) };
    if first >> 4 == 4 {
        // SAFETY: as above.
        let v4 = unsafe { ((start + ETH + 12) as *const [u8; 4]).read_unaligned() };
        Some(Words::v4(v4))
    } else {
        // SAFETY: as above.
        Some(unsafe { ((start + ETH + 8) as *const Words).read_unaligned() })
    }
}

/// The ban key: the address itself for IPv4, its /64 for IPv6 (the prefix
/// of the bench's configuration).
#[inline(always)]
fn ban_key(src: &Words) -> Words {
    if src.is_v4() {
        *src
    } else {
        Words([src.0[0], 0])
    }
}

/// The slot read and the configuration it selects: every path needs the
/// configuration to know what the destination port is.
#[inline(always)]
fn config() -> Option<(u32, &'static Config)> {
    let slot = *IPLOCK_SLOT.get(0)?;
    Some((slot, IPLOCK_CONFIG.get(slot)?))
}

// Each lookup reads a field of what it found (as iplock copies the value
// out), and the references add those up: combining the pointers instead
// would be refused by the verifier.

#[inline(always)]
fn ban(k: &Words) -> u64 {
    // SAFETY: the field is read at once.
    unsafe { IPLOCK_BANS.get(k) }.map_or(0, |b| b.until_ns)
}

#[inline(always)]
fn knock_ban(k: &Words) -> u64 {
    // SAFETY: the field is read at once.
    unsafe { IPLOCK_KNOCK_BANS.get(k) }.map_or(0, |b| b.until_ns)
}

#[inline(always)]
fn source_of(src: &Words) -> u64 {
    // SAFETY: the field is read at once.
    unsafe { IPLOCK_SOURCES.get(src) }.map_or(0, |s| s.open_until_ns)
}

#[inline(always)]
fn allow(slot: u32, src: &Words) -> u64 {
    // Placed as iplock places it (iplock-ebpf's FullPrefix): the packed
    // key's address words on 8-aligned stack slots.
    #[repr(C, align(8))]
    struct FullPrefix {
        _pad: u32,
        key: Key<Words>,
    }
    let k = FullPrefix {
        _pad: 0,
        key: Key::new(128, *src),
    };
    if slot == 0 {
        IPLOCK_ALLOW.get(&k.key).map_or(0, |a| a.until_ns + 1)
    } else {
        IPLOCK_ALLOW_B.get(&k.key).map_or(0, |a| a.until_ns + 1)
    }
}

/// Adds one to the reference's counter, at a slot that depends on what
/// the lookups found (so none of them is optimised away).
#[inline(always)]
fn count_found(found: u64) {
    count(SINK + u32::from(found != 0));
}

#[inline(always)]
fn count(i: u32) {
    if let Some(n) = REF_COUNTERS.get_ptr_mut(i) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *n += 1 };
    }
}

/// The counter slot a reference adds to (one more when a lookup found an
/// entry, so that no lookup is optimised away).
const SINK: u32 = 0;

/// unrelated: ban miss, source miss (a new connection elsewhere resets a
/// sequence in progress), counter.
#[xdp]
pub fn ref_unrelated(ctx: XdpContext) -> u32 {
    if let (Some(src), Some(_)) = (source(&ctx), config()) {
        let b = ban(&ban_key(&src));
        let s = source_of(&src);
        count_found(b.wrapping_add(s));
    }
    verdict()
}

/// SYN to the protected port, no state (and wrong knock, no state): ban
/// miss, knock-ban miss, source miss, allow miss, counter.
#[xdp]
pub fn ref_closed(ctx: XdpContext) -> u32 {
    closed(&ctx)
}

#[inline(always)]
fn closed(ctx: &XdpContext) -> u32 {
    if let (Some(src), Some((slot, _))) = (source(ctx), config()) {
        let k = ban_key(&src);
        let b = ban(&k).wrapping_add(knock_ban(&k));
        let s = source_of(&src);
        let a = allow(slot, &src);
        count_found(b.wrapping_add(s).wrapping_add(a));
    }
    verdict()
}

/// Wrong knock, no state: the lookups of a closed-door SYN, and the event
/// that `iplock run` logs wrong knocks from, reserved and submitted on
/// iplock's own event ring (in the bench nothing reads the ring, so once
/// full the reserve fails, for iplock as for this).
#[xdp]
pub fn ref_wrong_knock(ctx: XdpContext) -> u32 {
    let verdict = closed(&ctx);
    if let Some(mut e) = IPLOCK_EVENTS.reserve::<Event>(0) {
        e.write(Event::default());
        e.submit(0);
    }
    verdict
}

/// SYN from an open source: ban miss, knock-ban miss, source hit, counter.
#[xdp]
pub fn ref_open(ctx: XdpContext) -> u32 {
    if let (Some(src), Some(_)) = (source(&ctx), config()) {
        let k = ban_key(&src);
        let b = ban(&k).wrapping_add(knock_ban(&k));
        let open = source_of(&src);
        count_found(b.wrapping_add(open));
    }
    verdict()
}

/// Banned: ban hit, allow miss (an allow entry outranks a ban), counter.
#[xdp]
pub fn ref_banned(ctx: XdpContext) -> u32 {
    if let (Some(src), Some((slot, _))) = (source(&ctx), config()) {
        let b = ban(&ban_key(&src));
        let a = allow(slot, &src);
        count_found(b.wrapping_add(a));
    }
    verdict()
}

/// Allowed SYN to the protected port: the lookups of a closed-door SYN,
/// the last of which finds the allow entry.
#[xdp]
pub fn ref_allowed(ctx: XdpContext) -> u32 {
    closed(&ctx)
}

/// First knock of a new source: ban miss, knock-ban miss, source miss,
/// allow miss, source insert, counter.
#[xdp]
pub fn ref_knock_new(ctx: XdpContext) -> u32 {
    if let (Some(src), Some((slot, _))) = (source(&ctx), config()) {
        let k = ban_key(&src);
        let b = ban(&k).wrapping_add(knock_ban(&k));
        let s = source_of(&src);
        let a = allow(slot, &src);
        let state = SourceState {
            step: 1,
            ..SourceState::default()
        };
        let _ = IPLOCK_SOURCES.insert(src, state, 0);
        count_found(b.wrapping_add(s).wrapping_add(a));
    }
    verdict()
}

/// Next knock of a known source: ban miss, knock-ban miss, source hit,
/// allow miss, the entry written in place, counter.
#[xdp]
pub fn ref_knock_next(ctx: XdpContext) -> u32 {
    if let (Some(src), Some((slot, _))) = (source(&ctx), config()) {
        let k = ban_key(&src);
        let b = ban(&k).wrapping_add(knock_ban(&k));
        let a = allow(slot, &src);
        if let Some(p) = IPLOCK_SOURCES.get_ptr_mut(src) {
            // SAFETY: a pointer to the value the lookup found. The step
            // and sequence id (one 8-byte word) and the knock time, as
            // iplock writes them.
            unsafe {
                (*p).last_knock_ns = src.0[1];
                (*p).step = 2;
            }
        }
        count_found(b.wrapping_add(a));
    }
    verdict()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
