//! The knock decision: parsed packet + state + config + now -> verdict and
//! the state to write back.

use crate::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_CROWDSEC, FLAG_KNOCK_CLEARS_BAN,
    FLAG_KNOCK_DROP, PortRole, Sequence,
};
use crate::counters::Counter;
use crate::packet::{PROTO_TCP, Packet};
use crate::state::{
    AllowEntry, BAN_CLOSED_DOOR, BAN_TRAP, BAN_WRONG_KNOCK, BanEntry, DecisionEntry, SourceState,
};

/// The map lookups a decision may need. They are asked lazily, in the
/// order the contract checks them, so unrelated traffic from a source that
/// is not banned costs one lookup.
pub trait Lookup {
    /// The allow-list entry covering the source, if any.
    fn allow(&mut self) -> Option<AllowEntry>;
    /// The ban covering the source, if any (expired or not), from the map
    /// of bans a flood of cheap ones cannot evict.
    fn ban(&mut self) -> Option<BanEntry>;
    /// The source's ban for a wrong knock, if any (expired or not). Kept
    /// apart so that a flood of spoofed wrong knocks only evicts its kind;
    /// it covers the filter's own ports, so unrelated traffic never asks.
    fn knock_ban(&mut self) -> Option<BanEntry>;
    /// The CrowdSec decision covering the source, if any (expired or not).
    /// Asked only with [`FLAG_CROWDSEC`] and when no ban of the ban map
    /// matched, so a filter without CrowdSec never asks.
    fn decision(&mut self) -> Option<DecisionEntry>;
    /// The source's knock state, if any.
    fn source(&mut self) -> Option<SourceState>;
    /// Whether the rotating sequence with this id has already opened a door.
    fn spent(&mut self, seq_id: u32) -> bool;
    /// The time now, ns of CLOCK_MONOTONIC_COARSE. Asked only when a decision depends on
    /// it: reading the clock costs more than the map lookup it would follow.
    fn now(&mut self) -> u64;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
}

/// What to do with the ban map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanUpdate {
    Keep,
    /// Add this ban: to the wrong-knock map for [`BAN_WRONG_KNOCK`], else
    /// to the ban map.
    Set(BanEntry),
    /// Lift the source's bans, in both maps.
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The verdict counter to add one to.
    pub counter: Counter,
    /// New source state to write, only when it changed.
    pub source: Option<SourceState>,
    pub ban: BanUpdate,
    /// Id of a rotating sequence to mark spent (0: none).
    pub spend: u32,
}

impl Decision {
    const fn new(verdict: Verdict, counter: Counter) -> Self {
        Self {
            verdict,
            counter,
            source: None,
            ban: BanUpdate::Keep,
            spend: 0,
        }
    }
}

#[inline(always)]
fn ban_for(cfg: &Config, now: u64, reason: u32) -> BanUpdate {
    BanUpdate::Set(BanEntry {
        until_ns: now.saturating_add(cfg.ban_time_ns),
        reason,
        _pad: 0,
    })
}

/// The clock, read at most once per decision and only when asked.
struct Clock<'a, L> {
    look: &'a mut L,
    now: Option<u64>,
}

impl<L: Lookup> Clock<'_, L> {
    #[inline(always)]
    fn now(&mut self) -> u64 {
        match self.now {
            Some(t) => t,
            None => {
                let t = self.look.now();
                self.now = Some(t);
                t
            }
        }
    }
}

/// Decide the fate of one TCP or UDP packet from one source.
///
/// The clock is read only where the packet is not unrelated traffic from
/// an unbanned source (the bulk of a server's), and then once. The allow list is asked only where its answer
/// changes what happens, that is where the packet would otherwise be
/// dropped or leave state behind: a SYN through an open door and
/// established traffic to a protected port pass either way.
#[inline(always)]
pub fn decide<L: Lookup>(pkt: &Packet, cfg: &Config, look: &mut L) -> Decision {
    let role = cfg.role(pkt);
    let ban = look.ban();
    let mut clock = Clock { look, now: None };
    let mut banned = matches!(ban, Some(b) if b.until_ns > clock.now());
    let knock_may_clear = cfg.has_flag(FLAG_KNOCK_CLEARS_BAN) && role == PortRole::Knock;
    // A CrowdSec decision bans on every port, like a closed-door ban, but
    // no knock lifts it: only the Local API does. Asked when no ban matched
    // (or one a knock may lift), so only unbanned traffic pays for it.
    let mut decided = false;
    if cfg.has_flag(FLAG_CROWDSEC) && (!banned || knock_may_clear) {
        let decision = clock.look.decision();
        decided = matches!(decision, Some(d) if d.until_ns > clock.now());
        banned |= decided;
    }
    if !banned && role != PortRole::Other {
        let knock_ban = clock.look.knock_ban();
        banned = matches!(knock_ban, Some(b) if b.until_ns > clock.now());
    }
    if role == PortRole::Other && !banned {
        return elsewhere(pkt, cfg, &mut clock);
    }
    // One plain value from here on: a clock read deferred through the
    // branches below multiplies the paths the kernel's verifier walks.
    let now = clock.now();
    let mut clock = Clock {
        look: clock.look,
        now: Some(now),
    };
    if banned && (decided || !knock_may_clear) {
        return if allowed(&mut clock) {
            Decision::new(Verdict::Pass, Counter::Allowed)
        } else {
            Decision::new(Verdict::Drop, Counter::Banned)
        };
    }
    match role {
        PortRole::Protected => protected(pkt, cfg, &mut clock),
        PortRole::Knock => {
            if allowed(&mut clock) {
                return Decision::new(Verdict::Pass, Counter::Allowed);
            }
            knock(pkt, banned, cfg, &mut clock)
        }
        PortRole::Trap => {
            if allowed(&mut clock) {
                return Decision::new(Verdict::Pass, Counter::Allowed);
            }
            let source = clock.look.source();
            let now = clock.now();
            Decision {
                ban: ban_for(cfg, now, BAN_TRAP),
                source: source.and_then(|s| reset(&s, cfg, now)),
                ..Decision::new(Verdict::Drop, Counter::Trapped)
            }
        }
        // Banned, allowed: passed past the ban.
        PortRole::Other => {
            if allowed(&mut clock) {
                Decision::new(Verdict::Pass, Counter::Allowed)
            } else {
                Decision::new(Verdict::Pass, Counter::Unrelated)
            }
        }
    }
}

/// Traffic to a port the filter does not guard. A new connection attempt
/// (a bare SYN or a datagram) in the middle of a sequence resets it, as
/// the article's catch-all rules do: a spray over many ports between two
/// knocks must not satisfy a step.
#[inline(always)]
fn elsewhere<L: Lookup>(pkt: &Packet, cfg: &Config, clock: &mut Clock<'_, L>) -> Decision {
    let mut d = Decision::new(Verdict::Pass, Counter::Unrelated);
    if !pkt.opens_connection() {
        return d;
    }
    let Some(s) = clock.look.source().filter(|s| s.step > 0) else {
        return d;
    };
    let now = clock.now();
    let Some(reset) = reset(&s, cfg, now) else {
        return d;
    };
    // An allow-listed source never gets state (asked last: it is rare to
    // find one in the middle of a sequence).
    if allowed(clock) {
        return d;
    }
    d.source = Some(reset);
    d.counter = Counter::KnockReset;
    d
}

/// Whether an allow-list entry covers the source now (0: forever; the
/// clock is read only for an entry that ends).
#[inline(always)]
fn allowed<L: Lookup>(clock: &mut Clock<'_, L>) -> bool {
    matches!(clock.look.allow(), Some(a) if a.until_ns == 0 || a.until_ns > clock.now())
}

/// The state to write when a source in the middle of a sequence does
/// something other than its next knock: its progress gone. `None` where
/// there is no live progress to lose (none yet, or a completed sequence,
/// whose door another connection must not close).
#[inline(always)]
fn reset(s: &SourceState, cfg: &Config, now: u64) -> Option<SourceState> {
    let progress = live_progress(s, cfg, now);
    let count = cfg.sequence(s.seq).map_or(0, |q| q.count);
    (progress > 0 && progress < count).then_some(SourceState { step: 0, ..*s })
}

#[inline(always)]
fn protected<L: Lookup>(pkt: &Packet, cfg: &Config, clock: &mut Clock<'_, L>) -> Decision {
    if !pkt.is_bare_syn() {
        return Decision::new(Verdict::Pass, Counter::ProtectedOther);
    }
    let source = clock.look.source();
    if matches!(source, Some(s) if s.open_until_ns > clock.now()) {
        return Decision::new(Verdict::Pass, Counter::DoorPassed);
    }
    if allowed(clock) {
        return Decision::new(Verdict::Pass, Counter::Allowed);
    }
    let mut d = Decision::new(Verdict::Drop, Counter::DoorClosed);
    if let Some(s) = source {
        d.source = reset(&s, cfg, clock.now());
    }
    if cfg.has_flag(FLAG_BAN_CLOSED_DOOR) {
        d.ban = ban_for(cfg, clock.now(), BAN_CLOSED_DOOR);
    }
    d
}

/// Steps completed that still count at `now`: progress older than the
/// timeout of the step it waits for counts as none, and so does progress
/// through a sequence the config no longer accepts. A completed sequence
/// stays alive while its door is open, and at least for the last step's
/// timeout, so late retransmits of the last knock are ignored, not banned.
#[inline(always)]
pub fn live_progress(s: &SourceState, cfg: &Config, now: u64) -> u32 {
    match cfg.sequence(s.seq) {
        Some(seq) if s.step > 0 && now <= knock_deadline(s, &seq) => s.step.min(seq.count),
        Some(seq) if s.step >= seq.count && s.open_until_ns > now => seq.count,
        _ => 0,
    }
}

/// When the source's progress through `seq` expires: its last knock plus
/// the timeout of the step it waits for.
#[inline(always)]
pub fn knock_deadline(s: &SourceState, seq: &Sequence<'_>) -> u64 {
    let waits_for = if s.step >= seq.count {
        seq.count.saturating_sub(1)
    } else {
        s.step
    };
    s.last_knock_ns.saturating_add(seq.timeout(waits_for))
}

#[inline(always)]
fn knock<L: Lookup>(
    pkt: &Packet,
    banned: bool,
    cfg: &Config,
    clock: &mut Clock<'_, L>,
) -> Decision {
    // By default a knock goes on to the host's stack, which answers it as
    // it answers every unused port, so a scan cannot tell knock ports from
    // the rest. A banned source gets silence here as everywhere else.
    let answer = if banned || cfg.has_flag(FLAG_KNOCK_DROP) {
        Verdict::Drop
    } else {
        Verdict::Pass
    };
    if pkt.proto == PROTO_TCP && !pkt.is_bare_syn() {
        return Decision::new(answer, Counter::KnockNoise);
    }
    let old = clock.look.source().unwrap_or_default();
    // Read here once: nearly every knock writes a time, and one plain value
    // through the rest keeps the verifier's paths few.
    let now = clock.now();
    let progress = live_progress(&old, cfg, now);
    let mut d = Decision::new(answer, Counter::KnockAdvanced);
    // The next step of the sequence the source is in the middle of, else a
    // fresh start of the current sequence, else of the previous period's.
    let mut next = None;
    if let Some(seq) = cfg.sequence(old.seq).filter(|_| progress > 0) {
        // With one step the repeated knock is also step 0: once the door it
        // opened has closed, it starts the sequence again.
        let reopens = seq.count == 1 && old.open_until_ns <= now;
        if seq.is_step(progress - 1, pkt) && !reopens {
            d.counter = Counter::KnockRepeated;
            return d;
        }
        if progress < seq.count && seq.is_step(progress, pkt) {
            next = Some((seq, progress + 1));
        }
    }
    if next.is_none() {
        let cur = cfg.current();
        if cur.is_step(0, pkt) {
            next = Some((cur, 1));
        } else if let Some(prev) = cfg.previous().filter(|p| p.is_step(0, pkt)) {
            next = Some((prev, 1));
        }
    }
    let mut new = old;
    match next {
        // A rotating sequence opens the door once. Completing it again is
        // refused like a wrong knock but not banned: it may be the client
        // that used it, knocking again within the period.
        Some((seq, step)) if step == seq.count && seq.id != 0 && clock.look.spent(seq.id) => {
            new.step = 0;
            d.counter = Counter::WrongKnock;
        }
        Some((seq, step)) => {
            new.step = step;
            new.seq = seq.id;
            new.last_knock_ns = now;
            if step == seq.count {
                new.open_until_ns = now.saturating_add(cfg.open_window_ns);
                d.counter = Counter::DoorOpened;
                d.spend = seq.id;
                if banned {
                    d.ban = BanUpdate::Remove;
                }
            }
        }
        _ => {
            new.step = 0;
            d.counter = Counter::WrongKnock;
            if cfg.has_flag(FLAG_BAN_WRONG_KNOCK) {
                d.ban = ban_for(cfg, now, BAN_WRONG_KNOCK);
            }
        }
    }
    if new != old {
        d.source = Some(new);
    }
    d
}
