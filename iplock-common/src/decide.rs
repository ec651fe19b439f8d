//! The knock decision: parsed packet + state + config + now -> verdict and
//! the state to write back.

use crate::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_KNOCK_CLEARS_BAN, PortRole,
};
use crate::counters::Counter;
use crate::packet::{PROTO_TCP, Packet};
use crate::state::{AllowEntry, BAN_CLOSED_DOOR, BAN_TRAP, BAN_WRONG_KNOCK, BanEntry, SourceState};

/// The map lookups a decision may need. They are asked lazily, in the
/// order the contract checks them, so unrelated traffic from a source that
/// is not banned costs one lookup.
pub trait Lookup {
    /// The allow-list entry covering the source, if any.
    fn allow(&mut self) -> Option<AllowEntry>;
    /// The ban covering the source, if any (expired or not).
    fn ban(&mut self) -> Option<BanEntry>;
    /// The source's knock state, if any.
    fn source(&mut self) -> Option<SourceState>;
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
    Set(BanEntry),
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
}

impl Decision {
    const fn new(verdict: Verdict, counter: Counter) -> Self {
        Self {
            verdict,
            counter,
            source: None,
            ban: BanUpdate::Keep,
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

/// Decide the fate of one TCP or UDP packet from one source.
#[inline(always)]
pub fn decide<L: Lookup>(pkt: &Packet, cfg: &Config, now: u64, look: &mut L) -> Decision {
    let role = cfg.role(pkt);
    let banned = matches!(look.ban(), Some(b) if b.until_ns > now);
    if role == PortRole::Other && !banned {
        return Decision::new(Verdict::Pass, Counter::Unrelated);
    }
    if matches!(look.allow(), Some(a) if a.until_ns == 0 || a.until_ns > now) {
        return Decision::new(Verdict::Pass, Counter::Allowed);
    }
    let knock_may_clear = cfg.has_flag(FLAG_KNOCK_CLEARS_BAN) && matches!(role, PortRole::Knock(_));
    if banned && !knock_may_clear {
        return Decision::new(Verdict::Drop, Counter::Banned);
    }
    match role {
        PortRole::Protected => protected(pkt, cfg, now, look),
        PortRole::Knock(i) => knock(pkt, i, banned, cfg, now, look),
        PortRole::Trap => Decision {
            ban: ban_for(cfg, now, BAN_TRAP),
            ..Decision::new(Verdict::Drop, Counter::Trapped)
        },
        PortRole::Other => Decision::new(Verdict::Pass, Counter::Unrelated),
    }
}

#[inline(always)]
fn protected<L: Lookup>(pkt: &Packet, cfg: &Config, now: u64, look: &mut L) -> Decision {
    if !pkt.is_bare_syn() {
        return Decision::new(Verdict::Pass, Counter::ProtectedOther);
    }
    if matches!(look.source(), Some(s) if s.open_until_ns > now) {
        return Decision::new(Verdict::Pass, Counter::DoorPassed);
    }
    let mut d = Decision::new(Verdict::Drop, Counter::DoorClosed);
    if cfg.has_flag(FLAG_BAN_CLOSED_DOOR) {
        d.ban = ban_for(cfg, now, BAN_CLOSED_DOOR);
    }
    d
}

/// Steps completed that still count at `now`: progress older than the
/// timeout of the step it waits for counts as none. A completed sequence
/// stays alive while its door is open, and at least for the last step's
/// timeout, so late retransmits of the last knock are ignored, not banned.
#[inline(always)]
pub fn live_progress(s: &SourceState, cfg: &Config, now: u64) -> u32 {
    if s.step == 0 {
        return 0;
    }
    if s.step >= cfg.step_count && s.open_until_ns > now {
        return cfg.step_count;
    }
    let waits_for = if s.step >= cfg.step_count {
        cfg.step_count.saturating_sub(1)
    } else {
        s.step
    };
    if now.saturating_sub(s.last_knock_ns) <= cfg.step_timeout(waits_for) {
        s.step.min(cfg.step_count)
    } else {
        0
    }
}

#[inline(always)]
fn knock<L: Lookup>(
    pkt: &Packet,
    i: u32,
    banned: bool,
    cfg: &Config,
    now: u64,
    look: &mut L,
) -> Decision {
    if pkt.proto == PROTO_TCP && !pkt.is_bare_syn() {
        return Decision::new(Verdict::Drop, Counter::KnockNoise);
    }
    let old = look.source().unwrap_or_default();
    let progress = live_progress(&old, cfg, now);
    let mut new = old;
    let mut d = Decision::new(Verdict::Drop, Counter::KnockAdvanced);
    // With one step the repeated knock is also step 0: once the door it
    // opened has closed, it starts the sequence again.
    let reopens = cfg.step_count == 1 && old.open_until_ns <= now;
    if progress > 0 && i == progress - 1 && !reopens {
        d.counter = Counter::KnockRepeated;
    } else if i == progress || i == 0 {
        // The expected step, or a fresh start of the sequence.
        new.step = i + 1;
        new.last_knock_ns = now;
        if new.step == cfg.step_count {
            new.open_until_ns = now.saturating_add(cfg.open_window_ns);
            d.counter = Counter::DoorOpened;
            if banned {
                d.ban = BanUpdate::Remove;
            }
        }
    } else {
        new.step = 0;
        d.counter = Counter::WrongKnock;
        if cfg.has_flag(FLAG_BAN_WRONG_KNOCK) {
            d.ban = ban_for(cfg, now, BAN_WRONG_KNOCK);
        }
    }
    if new != old {
        d.source = Some(new);
    }
    d
}
