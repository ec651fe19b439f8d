//! The XDP knock filter: parse, look up, `iplock_common::decide::decide`,
//! write back what the decision says. Nothing here decides anything.
#![no_std]
#![no_main]

mod parse;
mod spa;

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::debug;
use iplock_common::addr::Words;
use iplock_common::config::Config;
use iplock_common::counters::{COUNTERS, Counter};
use iplock_common::decide::{self, BanUpdate, Decision, Lookup, Verdict};
use iplock_common::events::{EVENTS_BYTES, Event};
use iplock_common::names::{
    CONFIG_SLOTS, DEFAULT_MAX_BANS, DEFAULT_MAX_DECISIONS, DEFAULT_MAX_KNOCK_BANS,
    DEFAULT_MAX_SOURCES, MAX_ALLOW, MAX_IFACES, MAX_SPENT,
};
use iplock_common::packet::{PROTO_UDP, Packet};
use iplock_common::spa::{RateWindow, SPA_BYTES, SPA_SOURCES, SPA_STATS};
use iplock_common::state::{
    AllowEntry, BAN_WRONG_KNOCK, BanEntry, ClockReading, CrowdsecStats, DecisionEntry, IfaceEntry,
    SourceState,
};
use parse::{Reason, Unclassified};

/// A full-length LPM trie key of an address, which makes the trie find
/// the longest stored prefix covering it. The trie's key is packed (a u32
/// prefix length, then the address); placed 4 bytes into an 8-aligned
/// struct, the address words land on the 8-aligned stack slots that the
/// verifier requires of the word-sized writes LLVM makes.
#[repr(C, align(8))]
struct FullPrefix {
    _pad: u32,
    key: Key<Words>,
}

impl FullPrefix {
    #[inline(always)]
    fn of(w: &Words) -> Self {
        FullPrefix {
            _pad: 0,
            key: Key::new(128, *w),
        }
    }
}

#[map]
static IPLOCK_SLOT: Array<u32> = Array::with_max_entries(1, 0);

#[map]
static IPLOCK_CONFIG: Array<Config> = Array::with_max_entries(CONFIG_SLOTS, 0);

#[map]
static IPLOCK_SOURCES: LruHashMap<Words, SourceState> =
    LruHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);

#[map]
static IPLOCK_BANS: LruHashMap<Words, BanEntry> = LruHashMap::with_max_entries(DEFAULT_MAX_BANS, 0);

// Wrong-knock bans, apart from the others: a flood of spoofed wrong knocks
// evicts only its own kind, never a closed-door, trap or manual ban.
#[map]
static IPLOCK_KNOCK_BANS: LruHashMap<Words, BanEntry> =
    LruHashMap::with_max_entries(DEFAULT_MAX_KNOCK_BANS, 0);

// One allow list per configuration slot. LpmTrie adds BPF_F_NO_PREALLOC
// itself; the kernel requires it for tries.
#[map]
static IPLOCK_ALLOW: LpmTrie<Words, AllowEntry> = LpmTrie::with_max_entries(MAX_ALLOW, 0);

#[map]
static IPLOCK_ALLOW_B: LpmTrie<Words, AllowEntry> = LpmTrie::with_max_entries(MAX_ALLOW, 0);

// CrowdSec decisions, written only by `iplock run`: addresses as /128,
// ranges as their prefix, so one lookup covers both. Read only when the
// config's FLAG_CROWDSEC is set.
#[map]
static IPLOCK_DECISIONS: LpmTrie<Words, DecisionEntry> =
    LpmTrie::with_max_entries(DEFAULT_MAX_DECISIONS, 0);

// Not read here: created and pinned with the rest for `iplock run`'s
// record of its pulls, which `iplock status` shows.
#[map]
static IPLOCK_CROWDSEC: Array<CrowdsecStats> = Array::with_max_entries(1, 0);

#[map]
static IPLOCK_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

// Not read here: it is in the object so that user space creates and pins it
// with the rest, recording the interfaces the filter is attached to.
#[map]
static IPLOCK_IFACES: Array<IfaceEntry> = Array::with_max_entries(MAX_IFACES as u32, 0);

// Ids of rotating sequences that have opened a door once; a handful are
// live at a time, the LRU forgets the old ones.
#[map]
static IPLOCK_SPENT: LruHashMap<u32, u32> = LruHashMap::with_max_entries(MAX_SPENT, 0);

// This CPU's last clock reading: see ClockReading.
#[map]
static IPLOCK_CLOCK: PerCpuArray<ClockReading> = PerCpuArray::with_max_entries(1, 0);

#[map]
static IPLOCK_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

// SPA payloads for iplock run, and the rate limit on them (see spa.rs).
#[map]
static IPLOCK_SPA: RingBuf = RingBuf::with_byte_size(SPA_BYTES, 0);

#[map]
static IPLOCK_SPA_RATE: PerCpuArray<RateWindow> = PerCpuArray::with_max_entries(1, 0);

#[map]
static IPLOCK_SPA_SOURCES: LruHashMap<Words, RateWindow> =
    LruHashMap::with_max_entries(SPA_SOURCES, 0);

// Not read here, like IPLOCK_IFACES: iplock run counts its SPA verdicts in it.
#[map]
static IPLOCK_SPA_STATS: Array<u64> = Array::with_max_entries(SPA_STATS, 0);

#[xdp]
pub fn iplock(ctx: XdpContext) -> u32 {
    filter::<false>(&ctx)
}

/// The same filter with single packet authorization: UDP to the SPA port
/// goes to spa.rs. A program of its own because its copy of the payload
/// needs Linux 5.18 (bpf_xdp_load_bytes); the loader picks it only when
/// the settings have `[spa]`, so the filter without SPA still loads on 5.9.
#[xdp]
pub fn iplock_spa(ctx: XdpContext) -> u32 {
    filter::<true>(&ctx)
}

#[inline(always)]
fn filter<const SPA: bool>(ctx: &XdpContext) -> u32 {
    // The parser's refusal is the only way try_iplock fails.
    match try_iplock::<SPA>(ctx) {
        Ok(verdict) => verdict,
        Err(Unclassified::Pass) => {
            count(Counter::NotClassified);
            XDP_PASS
        }
        Err(Unclassified::Malformed(why)) => {
            count(Counter::Malformed);
            log_malformed(ctx, why);
            XDP_DROP
        }
    }
}

/// Target of the program's log records, as `iplock run` prints them.
const LOG_TARGET: &str = "iplock::xdp";

/// Says at debug level why a frame was dropped as malformed. The level is
/// a constant the loader writes (see iplock's kernel/log.rs): below debug
/// the verifier removes all of this as dead code.
#[inline(always)]
fn log_malformed(ctx: &XdpContext, why: Reason) {
    match why {
        Reason::FirstFragmentCut => debug!(
            ctx,
            target: LOG_TARGET,
            "dropped a malformed frame: a first fragment cut short before its transport header"
        ),
        Reason::TcpAtOffsetOne => debug!(
            ctx,
            target: LOG_TARGET,
            "dropped a malformed frame: an IPv4 TCP fragment at offset 1"
        ),
        Reason::Ipv6ChainTooLong => debug!(
            ctx,
            target: LOG_TARGET,
            "dropped a malformed frame: an IPv6 extension-header chain too long to follow"
        ),
        Reason::ThirdVlanTag => debug!(
            ctx,
            target: LOG_TARGET,
            "dropped a malformed frame: a third VLAN tag"
        ),
        Reason::V4MappedSource => debug!(
            ctx,
            target: LOG_TARGET,
            "dropped a malformed frame: an IPv4-mapped IPv6 source"
        ),
    }
}

#[inline(always)]
fn try_iplock<const SPA: bool>(ctx: &XdpContext) -> Result<u32, Unclassified> {
    let parse::Parsed { src, pkt, l4, end } = parse::parse(ctx)?;
    // The slot is read once, so the packet sees one whole configuration
    // and its allow list. Index 0 of an array map always exists, and the
    // config map has every slot; the checks are for the verifier.
    let slot = *IPLOCK_SLOT.get(0).ok_or(Unclassified::Pass)?;
    let cfg = IPLOCK_CONFIG.get(slot).ok_or(Unclassified::Pass)?;
    let ban_key = src.ban_key(cfg.ban_prefix_v6);
    let mut maps = Maps {
        src: &src,
        ban_key: &ban_key,
        slot,
    };
    // One compare on the UDP path: the SPA port is never 0 when set.
    if SPA && pkt.proto == PROTO_UDP && pkt.dport == cfg.spa_port && cfg.spa_port != 0 {
        return Ok(spa::handle(ctx, &mut maps, cfg, l4, end));
    }
    let d = decide::decide(&pkt, cfg, &mut maps);

    if let Some(state) = d.source {
        // A full LRU map evicts rather than fails, so an error here means the
        // kernel is out of memory; the packet verdict stands either way.
        let _ = IPLOCK_SOURCES.insert(src, state, 0);
    }
    match d.ban {
        BanUpdate::Keep => {}
        BanUpdate::Set(ban) => {
            let map = if ban.reason == BAN_WRONG_KNOCK {
                &IPLOCK_KNOCK_BANS
            } else {
                &IPLOCK_BANS
            };
            if map.insert(ban_key, ban, 0).is_ok() {
                count(Counter::BansAdded);
            }
        }
        BanUpdate::Remove => {
            let _ = IPLOCK_BANS.remove(ban_key);
            let _ = IPLOCK_KNOCK_BANS.remove(ban_key);
        }
    }
    if d.spend != 0 {
        let _ = IPLOCK_SPENT.insert(d.spend, 1, 0);
    }
    count(d.counter);
    report(ctx, &src, &pkt, &d);
    Ok(match d.verdict {
        Verdict::Pass => XDP_PASS,
        Verdict::Drop => XDP_DROP,
    })
}

/// The map lookups of one packet's decision.
struct Maps<'a> {
    src: &'a Words,
    ban_key: &'a Words,
    slot: u32,
}

impl Lookup for Maps<'_> {
    #[inline(always)]
    fn allow(&mut self) -> Option<AllowEntry> {
        let key = FullPrefix::of(self.src);
        if self.slot == 0 {
            IPLOCK_ALLOW.get(&key.key).copied()
        } else {
            IPLOCK_ALLOW_B.get(&key.key).copied()
        }
    }

    #[inline(always)]
    fn ban(&mut self) -> Option<BanEntry> {
        // SAFETY: the value is copied out at once; a concurrent update can at
        // worst make this one packet see the old or the new ban.
        unsafe { IPLOCK_BANS.get(self.ban_key) }.copied()
    }

    #[inline(always)]
    fn knock_ban(&mut self) -> Option<BanEntry> {
        // SAFETY: as for `ban`.
        unsafe { IPLOCK_KNOCK_BANS.get(self.ban_key) }.copied()
    }

    #[inline(always)]
    fn decision(&mut self) -> Option<DecisionEntry> {
        IPLOCK_DECISIONS.get(&FullPrefix::of(self.src).key).copied()
    }

    #[inline(always)]
    fn source(&mut self) -> Option<SourceState> {
        // SAFETY: as for `ban`.
        unsafe { IPLOCK_SOURCES.get(self.src) }.copied()
    }

    #[inline(always)]
    fn now(&mut self) -> u64 {
        // CLOCK_MONOTONIC_COARSE: the last tick's time, cheaper to read than
        // the boot-time clock; user space reads the same clock
        // (iplock::system::clock). Read through this CPU's last reading
        // while jiffies have not moved: the kernel advances jiffies just
        // before the timekeeper at each tick, so a reading taken between
        // the two lags one tick for the rest of that tick, and never leads.
        // Timeouts are accurate to two ticks (2-8 ms).
        // SAFETY: helpers without arguments or preconditions; the pointer
        // is this CPU's slot, which nothing else writes while this program
        // runs (XDP runs with migration off, one program at a time a CPU).
        unsafe {
            let tick = bpf_jiffies64();
            let Some(last) = IPLOCK_CLOCK.get_ptr_mut(0) else {
                return bpf_ktime_get_coarse_ns();
            };
            if (*last).jiffies != tick {
                *last = ClockReading {
                    jiffies: tick,
                    now_ns: bpf_ktime_get_coarse_ns(),
                };
            }
            (*last).now_ns
        }
    }

    #[inline(always)]
    fn spent(&mut self, seq_id: u32) -> bool {
        // SAFETY: only the key's presence is read.
        unsafe { IPLOCK_SPENT.get(seq_id) }.is_some()
    }
}

/// Tells `iplock run` about doors opened, wrong knocks and bans. A full
/// ring buffer loses the event, never the packet's verdict; at debug level
/// the loss is logged.
#[inline(always)]
fn report(ctx: &XdpContext, src: &Words, pkt: &Packet, d: &Decision) {
    let Some(kind) = d.event_kind() else {
        return;
    };
    if let Some(mut slot) = IPLOCK_EVENTS.reserve::<Event>(0) {
        // SAFETY: the kernel hands XDP programs a valid xdp_md.
        let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
        slot.write(Event {
            addr: src.bytes(),
            ifindex,
            kind,
            ban_reason: d.ban_reason(),
            dport: pkt.dport,
            proto: pkt.proto,
            _pad: 0,
        });
        slot.submit(0);
    } else {
        debug!(
            ctx,
            target: LOG_TARGET,
            "the event ring buffer is full: an event for iplock run was lost"
        );
    }
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(n) = IPLOCK_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot, written only by this CPU while this
        // program runs, so a plain increment does not race.
        unsafe { *n += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
