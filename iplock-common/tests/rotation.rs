//! The decision with rotating sequences: the current and the previous
//! period's sequence are both accepted, each opens the door once.

use std::collections::HashSet;

use bytemuck::Zeroable as _;
use iplock_common::config::{Config, FLAG_BAN_WRONG_KNOCK, Step};
use iplock_common::counters::Counter;
use iplock_common::decide::{BanUpdate, Decision, Lookup, decide};
use iplock_common::packet::{PROTO_TCP, PROTO_UDP, Packet, TCP_SYN};
use iplock_common::state::{AllowEntry, BanEntry, DecisionEntry, SourceState};

const SEC: u64 = 1_000_000_000;

#[derive(Default)]
struct Fake {
    source: Option<SourceState>,
    ban: Option<BanEntry>,
    spent: HashSet<u32>,
    now: u64,
}

impl Lookup for Fake {
    fn allow(&mut self) -> Option<AllowEntry> {
        None
    }
    // One map is enough here: these tests look at whether a ban came, not
    // where the glue keeps it.
    fn ban(&mut self) -> Option<BanEntry> {
        self.ban
    }
    fn knock_ban(&mut self) -> Option<BanEntry> {
        None
    }
    fn decision(&mut self) -> Option<DecisionEntry> {
        None
    }
    fn source(&mut self) -> Option<SourceState> {
        self.source
    }
    fn spent(&mut self, seq_id: u32) -> bool {
        self.spent.contains(&seq_id)
    }
    fn now(&mut self) -> u64 {
        self.now
    }
}

impl Fake {
    fn knock(&mut self, cfg: &Config, proto: u8, port: u16, now: u64) -> Decision {
        let pkt = Packet {
            proto,
            dport: port,
            tcp_flags: if proto == PROTO_TCP { TCP_SYN } else { 0 },
        };
        self.now = now;
        let d = decide(&pkt, cfg, self);
        if let Some(s) = d.source {
            self.source = Some(s);
        }
        if let BanUpdate::Set(b) = d.ban {
            self.ban = Some(b);
        }
        if d.spend != 0 {
            self.spent.insert(d.spend);
        }
        d
    }

    fn sequence(&mut self, cfg: &Config, ports: &[u16], start: u64) -> Counter {
        let mut last = Counter::Unrelated;
        for (i, p) in ports.iter().enumerate() {
            last = self
                .knock(cfg, PROTO_TCP, *p, start + i as u64 * SEC)
                .counter;
        }
        last
    }

    fn open(&self, now: u64) -> bool {
        self.source.is_some_and(|s| s.open_until_ns > now)
    }
}

fn steps(ports: &[u16]) -> ([Step; 8], u32) {
    let mut out = [Step::default(); 8];
    for (s, p) in out.iter_mut().zip(ports) {
        *s = Step {
            port: *p,
            proto: PROTO_TCP,
            timeout_ns: 10 * SEC,
            ..Default::default()
        };
    }
    (out, ports.len() as u32)
}

/// Period `id` with sequence `cur`, the period before (`id - 1`) with `prev`.
fn config(id: u32, cur: &[u16], prev: &[u16]) -> Config {
    let mut c = Config::zeroed();
    (c.steps, c.step_count) = steps(cur);
    (c.prev_steps, c.prev_step_count) = steps(prev);
    c.seq_id = id;
    c.prev_seq_id = id - 1;
    c.protect[0] = 22;
    c.protect_count = 1;
    c.open_window_ns = 10 * SEC;
    c.ban_time_ns = 3600 * SEC;
    c.flags = FLAG_BAN_WRONG_KNOCK;
    c.index_ports();
    c
}

const A: [u16; 3] = [5000, 3000, 4000];
const B: [u16; 3] = [7000, 9000, 8000];
const C: [u16; 3] = [1200, 1100, 1300];

#[test]
fn current_and_previous_sequences_both_open_the_door() {
    let cfg = config(11, &B, &A);
    let mut f = Fake::default();
    assert_eq!(f.sequence(&cfg, &B, 100 * SEC), Counter::DoorOpened);
    let mut g = Fake::default();
    assert_eq!(g.sequence(&cfg, &A, 100 * SEC), Counter::DoorOpened);
    assert!(g.open(103 * SEC));
}

#[test]
fn a_sequence_opens_the_door_once() {
    let cfg = config(11, &B, &A);
    let mut legit = Fake::default();
    assert_eq!(legit.sequence(&cfg, &B, 100 * SEC), Counter::DoorOpened);
    // A sniffer replays it from elsewhere in the same period.
    let mut replay = Fake {
        spent: legit.spent.clone(),
        ..Default::default()
    };
    assert_eq!(replay.sequence(&cfg, &B, 104 * SEC), Counter::WrongKnock);
    assert!(!replay.open(106 * SEC));
    // Not banned: the client that used it may simply knock again.
    assert!(replay.ban.is_none());
    assert_eq!(legit.sequence(&cfg, &B, 105 * SEC), Counter::WrongKnock);
    assert!(legit.ban.is_none() && legit.open(106 * SEC));
    // The previous period's sequence is still unused.
    let mut late = Fake {
        spent: legit.spent.clone(),
        ..Default::default()
    };
    assert_eq!(late.sequence(&cfg, &A, 104 * SEC), Counter::DoorOpened);
}

#[test]
fn a_sequence_two_periods_old_is_not_a_knock_at_all() {
    let cfg = config(12, &C, &B);
    let mut f = Fake::default();
    assert_eq!(f.sequence(&cfg, &A, 100 * SEC), Counter::Unrelated);
    assert!(!f.open(103 * SEC));
    assert!(f.source.is_none() && f.ban.is_none());
}

#[test]
fn progress_continues_across_a_rotation() {
    // Two steps of B while B is current, the last after B became previous.
    let before = config(11, &B, &A);
    let after = config(12, &C, &B);
    let mut f = Fake::default();
    f.knock(&before, PROTO_TCP, B[0], 100 * SEC);
    f.knock(&before, PROTO_TCP, B[1], 101 * SEC);
    let d = f.knock(&after, PROTO_TCP, B[2], 102 * SEC);
    assert_eq!(d.counter, Counter::DoorOpened);
    assert_eq!(d.spend, 11);
}

#[test]
fn progress_through_a_retired_sequence_counts_as_none() {
    let early = config(11, &B, &A);
    let later = config(13, &[2000, 1000, 3000], &C);
    let mut f = Fake::default();
    f.knock(&early, PROTO_TCP, B[0], 100 * SEC);
    f.knock(&early, PROTO_TCP, B[1], 101 * SEC);
    // B is gone: its last step is now an unrelated port.
    assert_eq!(
        f.knock(&later, PROTO_TCP, B[2], 102 * SEC).counter,
        Counter::Unrelated
    );
    assert!(!f.open(103 * SEC));
}

#[test]
fn shared_ports_follow_the_sequence_in_progress() {
    // Port 3000 is step 2 of the current sequence and step 1 of the previous.
    let cur = [6000, 3000, 6500];
    let prev = [1000, 3000, 2000];
    let cfg = config(21, &cur, &prev);
    let mut f = Fake::default();
    assert_eq!(f.sequence(&cfg, &prev, 100 * SEC), Counter::DoorOpened);
    let mut g = Fake::default();
    assert_eq!(g.sequence(&cfg, &cur, 100 * SEC), Counter::DoorOpened);
}

#[test]
fn fixed_sequences_are_never_spent() {
    let mut cfg = config(1, &B, &[]);
    cfg.seq_id = 0;
    cfg.prev_step_count = 0;
    cfg.index_ports();
    let mut f = Fake::default();
    assert_eq!(f.sequence(&cfg, &B, 100 * SEC), Counter::DoorOpened);
    assert!(f.spent.is_empty());
    let mut g = Fake::default();
    assert_eq!(g.sequence(&cfg, &B, 100 * SEC), Counter::DoorOpened);
}

#[test]
fn udp_steps_of_a_rotating_sequence() {
    let mut cfg = config(5, &B, &A);
    cfg.steps[1].proto = PROTO_UDP;
    cfg.index_ports();
    let mut f = Fake::default();
    f.knock(&cfg, PROTO_TCP, B[0], 100 * SEC);
    assert_eq!(
        f.knock(&cfg, PROTO_TCP, B[1], 101 * SEC).counter,
        Counter::KnockReset,
        "tcp to a udp step's port is not that step, but a new connection elsewhere"
    );
    f.knock(&cfg, PROTO_TCP, B[0], 101 * SEC);
    f.knock(&cfg, PROTO_UDP, B[1], 101 * SEC);
    assert_eq!(
        f.knock(&cfg, PROTO_TCP, B[2], 102 * SEC).counter,
        Counter::DoorOpened
    );
}
