//! Host tests of the knock decision (`iplock_common::decide::decide`): one
//! table per line of the contract in issue 2, traces of whole knock
//! sequences, the one-lookup fast path, and property tests against an
//! independent reference model of the knock state machine.

use Counter::*;
use Verdict::{Drop as D, Pass as P};
use bytemuck::Zeroable;
use iplock_common::addr::{self, AddrKey};
use iplock_common::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_CROWDSEC, FLAG_KNOCK_CLEARS_BAN,
    FLAG_KNOCK_DROP, Step,
};
use iplock_common::counters::Counter;
use iplock_common::decide::{BanUpdate, Decision, Lookup, Verdict, decide, live_progress};
use iplock_common::names::MAX_STEPS;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP, Packet, TCP_ACK, TCP_SYN};
use iplock_common::state::{
    AllowEntry, BAN_CLOSED_DOOR, BAN_MANUAL, BAN_TRAP, BAN_WRONG_KNOCK, BanEntry, DecisionEntry,
    ORIGIN_CSCLI, SourceState,
};
use proptest::prelude::*;
use std::net::IpAddr;

const S: u64 = 1_000_000_000;
/// An arbitrary boot time far from zero, so "earlier" times are valid.
const T0: u64 = 1_000_000 * S;
const HOUR: u64 = 3600 * S;

const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;

const SSH: u16 = 22;
const K0: u16 = 100; // tcp
const K1: u16 = 300; // udp
const K2: u16 = 200; // tcp
const TRAP: u16 = 666;
const HTTP: u16 = 80;

/// Both ban triggers of the knock path.
const BAN_TRIGGERS: u32 = FLAG_BAN_WRONG_KNOCK | FLAG_BAN_CLOSED_DOOR;

// ---------------------------------------------------------------- the fake

/// Which lookups one decision asked, and how often.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Asked {
    allow: u32,
    ban: u32,
    knock_ban: u32,
    decision: u32,
    source: u32,
    now: u32,
}

/// The three maps as seen from one source address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fake {
    allow: Option<AllowEntry>,
    ban: Option<BanEntry>,
    /// The wrong-knock ban map's entry.
    knock_ban: Option<BanEntry>,
    /// The CrowdSec decision map's entry.
    decision: Option<DecisionEntry>,
    source: Option<SourceState>,
    asked: Asked,
    /// The clock the decision reads.
    now: u64,
}

impl Lookup for Fake {
    fn allow(&mut self) -> Option<AllowEntry> {
        self.asked.allow += 1;
        self.allow
    }
    fn ban(&mut self) -> Option<BanEntry> {
        self.asked.ban += 1;
        self.ban
    }
    fn knock_ban(&mut self) -> Option<BanEntry> {
        self.asked.knock_ban += 1;
        self.knock_ban
    }
    fn decision(&mut self) -> Option<DecisionEntry> {
        self.asked.decision += 1;
        self.decision
    }
    fn source(&mut self) -> Option<SourceState> {
        self.asked.source += 1;
        self.source
    }
    fn spent(&mut self, _seq_id: u32) -> bool {
        false
    }
    fn now(&mut self) -> u64 {
        self.asked.now += 1;
        self.now
    }
}

impl Fake {
    fn with_source(mut self, s: SourceState) -> Self {
        self.source = Some(s);
        self
    }
    fn with_ban(mut self, until_ns: u64, reason: u32) -> Self {
        *self.ban_map(reason) = Some(ban(until_ns, reason));
        self
    }
    /// Where the glue keeps a ban of this reason.
    fn ban_map(&mut self, reason: u32) -> &mut Option<BanEntry> {
        if reason == BAN_WRONG_KNOCK {
            &mut self.knock_ban
        } else {
            &mut self.ban
        }
    }
    fn with_decision(mut self, until_ns: u64) -> Self {
        self.decision = Some(DecisionEntry {
            until_ns,
            origin: ORIGIN_CSCLI,
            _pad: 0,
        });
        self
    }
    fn with_allow(mut self, until_ns: u64) -> Self {
        self.allow = Some(AllowEntry::at_runtime(until_ns));
        self
    }

    /// Decides one packet with fresh lookup bookkeeping, without writing.
    fn decide(&mut self, pkt: Packet, cfg: &Config, now: u64) -> Decision {
        self.asked = Asked::default();
        self.now = now;
        decide(&pkt, cfg, self)
    }

    /// What the eBPF glue does with a decision.
    fn apply(&mut self, d: &Decision) {
        if let Some(s) = d.source {
            self.source = Some(s);
        }
        match d.ban {
            BanUpdate::Keep => {}
            BanUpdate::Set(b) => *self.ban_map(b.reason) = Some(b),
            BanUpdate::Remove => (self.ban, self.knock_ban) = (None, None),
        }
    }

    fn step(&mut self, pkt: Packet, cfg: &Config, now: u64) -> Decision {
        let d = self.decide(pkt, cfg, now);
        self.apply(&d);
        d
    }

    fn door_open(&self, now: u64) -> bool {
        matches!(self.source, Some(s) if s.open_until_ns > now)
    }

    fn banned(&self, now: u64) -> bool {
        [self.ban, self.knock_ban]
            .iter()
            .any(|b| matches!(b, Some(b) if b.until_ns > now))
    }
}

fn fresh() -> Fake {
    Fake::default()
}

fn st(step: u32, last_knock_ns: u64, open_until_ns: u64) -> SourceState {
    SourceState {
        step,
        last_knock_ns,
        open_until_ns,
        ..Default::default()
    }
}

fn decision(until_ns: u64) -> DecisionEntry {
    DecisionEntry {
        until_ns,
        origin: ORIGIN_CSCLI,
        _pad: 0,
    }
}

fn ban(until_ns: u64, reason: u32) -> BanEntry {
    BanEntry {
        until_ns,
        reason,
        ..Default::default()
    }
}

// ------------------------------------------------------------- the config

/// Builds the config of the tests: by default the sequence tcp:100, udp:300,
/// tcp:200, protected port 22, 10 s per step, a 10 s window, a 1 h ban,
/// bans for wrong knocks and the closed door, and knock ports silent
/// (`knock_answer = "drop"`), so a verdict tells the knock path taken;
/// `knock_ports_get_the_stack_answer` covers the default answer.
#[derive(Clone, Debug)]
struct Cfg {
    steps: Vec<(u8, u16, u64)>,
    protect: Vec<u16>,
    traps: Vec<u16>,
    flags: u32,
    window: u64,
    ban_time: u64,
}

fn cfg() -> Cfg {
    Cfg {
        steps: vec![
            (PROTO_TCP, K0, 10 * S),
            (PROTO_UDP, K1, 10 * S),
            (PROTO_TCP, K2, 10 * S),
        ],
        protect: vec![SSH],
        traps: vec![],
        flags: FLAG_BAN_WRONG_KNOCK | FLAG_BAN_CLOSED_DOOR | FLAG_KNOCK_DROP,
        window: 10 * S,
        ban_time: HOUR,
    }
}

impl Cfg {
    fn steps(mut self, steps: &[(u8, u16)]) -> Self {
        self.steps = steps.iter().map(|&(p, port)| (p, port, 10 * S)).collect();
        self
    }
    fn timeout(mut self, step: usize, ns: u64) -> Self {
        self.steps[step].2 = ns;
        self
    }
    fn protect(mut self, ports: &[u16]) -> Self {
        self.protect = ports.to_vec();
        self
    }
    fn trap(mut self, port: u16) -> Self {
        self.traps.push(port);
        self
    }
    fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
    fn with(mut self, flag: u32) -> Self {
        self.flags |= flag;
        self
    }
    fn without(mut self, flag: u32) -> Self {
        self.flags &= !flag;
        self
    }
    fn window(mut self, ns: u64) -> Self {
        self.window = ns;
        self
    }
    fn build(&self) -> Config {
        let mut c = Config::zeroed();
        for (i, &(proto, port, timeout_ns)) in self.steps.iter().enumerate() {
            c.steps[i] = Step {
                port,
                proto,
                timeout_ns,
                ..Default::default()
            };
        }
        c.step_count = self.steps.len() as u32;
        c.protect[..self.protect.len()].copy_from_slice(&self.protect);
        c.protect_count = self.protect.len() as u32;
        c.traps[..self.traps.len()].copy_from_slice(&self.traps);
        c.trap_count = self.traps.len() as u32;
        c.flags = self.flags;
        c.open_window_ns = self.window;
        c.ban_time_ns = self.ban_time;
        c.ban_prefix_v6 = 64;
        c.index_ports();
        c
    }
}

// ------------------------------------------------------------- packets

fn tcp(dport: u16, tcp_flags: u8) -> Packet {
    Packet {
        proto: PROTO_TCP,
        dport,
        tcp_flags,
    }
}

fn syn(dport: u16) -> Packet {
    tcp(dport, TCP_SYN)
}

fn udp(dport: u16) -> Packet {
    Packet {
        proto: PROTO_UDP,
        dport,
        tcp_flags: 0,
    }
}

// ------------------------------------------------------------- decisions

fn want(verdict: Verdict, counter: Counter) -> Decision {
    Decision {
        verdict,
        counter,
        source: None,
        ban: BanUpdate::Keep,
        spend: 0,
    }
}

fn pass(counter: Counter) -> Decision {
    want(Verdict::Pass, counter)
}

fn drop(counter: Counter) -> Decision {
    want(Verdict::Drop, counter)
}

/// A drop that writes `s`.
fn drop_write(counter: Counter, s: SourceState) -> Decision {
    Decision {
        source: Some(s),
        ..drop(counter)
    }
}

fn banning(d: Decision, now: u64, reason: u32) -> Decision {
    Decision {
        ban: BanUpdate::Set(ban(now + HOUR, reason)),
        ..d
    }
}

// ------------------------------------------------------------- tables

struct Case {
    name: &'static str,
    cfg: Config,
    fake: Fake,
    now: u64,
    pkt: Packet,
    want: Decision,
}

fn run(cases: Vec<Case>) {
    let mut failed = Vec::new();
    for c in cases {
        let mut fake = c.fake;
        let got = fake.decide(c.pkt, &c.cfg, c.now);
        if got != c.want {
            failed.push(format!(
                "{}:\n   got  {got:?}\n   want {:?}",
                c.name, c.want
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn allow_list_passes() {
    let c = cfg().build();
    let closed_ban = banning(drop(DoorClosed), T0, BAN_CLOSED_DOOR);
    run(vec![
        Case {
            name: "allow forever (until 0) passes a SYN to the protected port",
            cfg: c,
            fake: fresh().with_allow(0),
            now: T0,
            pkt: syn(SSH),
            want: pass(Allowed),
        },
        Case {
            name: "allow passes a knock and writes no knock state",
            cfg: c,
            fake: fresh().with_allow(0),
            now: T0,
            pkt: syn(K0),
            want: pass(Allowed),
        },
        Case {
            name: "allow passes a wrong knock without a ban",
            cfg: c,
            fake: fresh().with_allow(0),
            now: T0,
            pkt: syn(K2),
            want: pass(Allowed),
        },
        Case {
            name: "allow passes a trap port without a ban",
            cfg: cfg().trap(TRAP).build(),
            fake: fresh().with_allow(0),
            now: T0,
            pkt: syn(TRAP),
            want: pass(Allowed),
        },
        Case {
            name: "allow comes before an active ban",
            cfg: c,
            fake: fresh().with_allow(0).with_ban(T0 + HOUR, BAN_WRONG_KNOCK),
            now: T0,
            pkt: syn(SSH),
            want: pass(Allowed),
        },
        Case {
            name: "allow still valid 1 ns before it ends",
            cfg: c,
            fake: fresh().with_allow(T0 + 1),
            now: T0,
            pkt: syn(SSH),
            want: pass(Allowed),
        },
        Case {
            name: "allow entry ending now no longer matches",
            cfg: c,
            fake: fresh().with_allow(T0),
            now: T0,
            pkt: syn(SSH),
            want: closed_ban,
        },
        Case {
            name: "expired allow entry: the knock counts like any source's",
            cfg: c,
            fake: fresh().with_allow(T0 - 1),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        Case {
            name: "allow-listed unrelated traffic counts as unrelated",
            cfg: c,
            fake: fresh().with_allow(0),
            now: T0,
            pkt: syn(HTTP),
            want: pass(Unrelated),
        },
    ]);
}

#[test]
fn active_ban_drops_everything_expired_ban_does_not() {
    let c = cfg().trap(TRAP).build();
    let banned = || fresh().with_ban(T0 + 1, BAN_WRONG_KNOCK);
    let expired = || fresh().with_ban(T0, BAN_WRONG_KNOCK);
    let open = st(3, T0 - S, T0 + 9 * S);
    let mut cases = Vec::new();
    // A wrong-knock ban covers the filter's own ports; the others cover
    // every port.
    for reason in [BAN_WRONG_KNOCK, BAN_CLOSED_DOOR, BAN_TRAP, BAN_MANUAL] {
        for (what, pkt, own_port) in [
            ("protected SYN", syn(SSH), true),
            ("protected ACK", tcp(SSH, TCP_ACK), true),
            ("knock step 0", syn(K0), true),
            ("udp knock", udp(K1), true),
            ("knock noise", tcp(K0, TCP_ACK), true),
            ("trap", syn(TRAP), true),
            ("unrelated tcp", syn(HTTP), false),
            ("unrelated udp", udp(53), false),
        ] {
            cases.push(Case {
                name: what,
                cfg: c,
                fake: fresh().with_ban(T0 + 1, reason),
                now: T0,
                pkt,
                want: if own_port || reason != BAN_WRONG_KNOCK {
                    drop(Banned)
                } else {
                    pass(Unrelated)
                },
            });
        }
    }
    cases.push(Case {
        name: "an expired ban does not hide a wrong-knock ban",
        cfg: c,
        fake: fresh()
            .with_ban(T0, BAN_CLOSED_DOOR)
            .with_ban(T0 + 1, BAN_WRONG_KNOCK),
        now: T0,
        pkt: syn(SSH),
        want: drop(Banned),
    });
    cases.extend([
        Case {
            name: "an active ban wins over an open door",
            cfg: c,
            fake: banned().with_source(open),
            now: T0,
            pkt: syn(SSH),
            want: drop(Banned),
        },
        Case {
            name: "expired ban: unrelated traffic passes",
            cfg: c,
            fake: expired(),
            now: T0,
            pkt: syn(HTTP),
            want: pass(Unrelated),
        },
        Case {
            name: "expired ban: the open door lets a SYN through",
            cfg: c,
            fake: expired().with_source(open),
            now: T0,
            pkt: syn(SSH),
            want: pass(DoorPassed),
        },
        Case {
            name: "expired ban: a closed-door SYN bans again",
            cfg: c,
            fake: expired(),
            now: T0,
            pkt: syn(SSH),
            want: banning(drop(DoorClosed), T0, BAN_CLOSED_DOOR),
        },
        Case {
            name: "expired ban: a knock counts",
            cfg: c,
            fake: expired(),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
    ]);
    run(cases);
}

#[test]
fn protected_port() {
    let c = cfg().build();
    let no_ban = cfg().without(FLAG_BAN_CLOSED_DOOR).build();
    let open = fresh().with_source(st(3, T0 - S, T0 + 9 * S));
    let closed_ban = banning(drop(DoorClosed), T0, BAN_CLOSED_DOOR);
    let mut cases = vec![
        Case {
            name: "SYN through the open door passes, no write",
            cfg: c,
            fake: open,
            now: T0,
            pkt: syn(SSH),
            want: pass(DoorPassed),
        },
        Case {
            name: "SYN+FIN has SYN without ACK: a new connection",
            cfg: c,
            fake: open,
            now: T0,
            pkt: tcp(SSH, TCP_SYN | TCP_FIN),
            want: pass(DoorPassed),
        },
        Case {
            name: "SYN 1 ns before the window ends passes",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - 10 * S + 1, T0 + 1)),
            now: T0,
            pkt: syn(SSH),
            want: pass(DoorPassed),
        },
        Case {
            name: "SYN when the window ends now: closed, ban",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - 10 * S, T0)),
            now: T0,
            pkt: syn(SSH),
            want: closed_ban,
        },
        Case {
            name: "SYN from an unknown source: closed, ban for ban_time",
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: syn(SSH),
            want: closed_ban,
        },
        Case {
            name: "SYN halfway through the sequence: closed, ban, progress reset",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(SSH),
            want: Decision {
                source: Some(st(0, T0 - S, 0)),
                ..closed_ban
            },
        },
        Case {
            name: "SYN halfway, closed-door trigger off: progress reset all the same",
            cfg: no_ban,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(SSH),
            want: drop_write(DoorClosed, st(0, T0 - S, 0)),
        },
        Case {
            name: "closed-door trigger off: drop without ban",
            cfg: no_ban,
            fake: fresh(),
            now: T0,
            pkt: syn(SSH),
            want: drop(DoorClosed),
        },
        Case {
            name: "every protected port is protected",
            cfg: cfg().protect(&[SSH, 2222]).build(),
            fake: fresh(),
            now: T0,
            pkt: syn(2222),
            want: closed_ban,
        },
        Case {
            name: "udp to the protected port number is unrelated",
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: udp(SSH),
            want: pass(Unrelated),
        },
    ];
    for (what, flags) in [
        ("SYN+ACK", TCP_SYN | TCP_ACK),
        ("ACK", TCP_ACK),
        ("RST", TCP_RST),
        ("RST+ACK", TCP_RST | TCP_ACK),
        ("FIN+ACK", TCP_FIN | TCP_ACK),
        ("no flags", 0),
    ] {
        cases.push(Case {
            name: what,
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: tcp(SSH, flags),
            want: pass(ProtectedOther),
        });
    }
    run(cases);
}

#[test]
fn knocks() {
    let c = cfg().build();
    let no_ban = cfg().without(BAN_TRIGGERS).build();
    let wrong_ban = |d| banning(d, T0, BAN_WRONG_KNOCK);
    run(vec![
        // Advancing and opening.
        Case {
            name: "step 0 from nothing advances",
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        Case {
            name: "step 1 (udp) within its timeout advances",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - 5 * S, 0)),
            now: T0,
            pkt: udp(K1),
            want: drop_write(KnockAdvanced, st(2, T0, 0)),
        },
        Case {
            name: "step 1 exactly at its timeout still advances",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - 10 * S, 0)),
            now: T0,
            pkt: udp(K1),
            want: drop_write(KnockAdvanced, st(2, T0, 0)),
        },
        Case {
            name: "last step opens the door for the window",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(DoorOpened, st(3, T0, T0 + 10 * S)),
        },
        Case {
            name: "last step honours a configured window",
            cfg: cfg().window(30 * S).build(),
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(DoorOpened, st(3, T0, T0 + 30 * S)),
        },
        Case {
            name: "a new sequence extends an open door",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, T0 + 2 * S)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(DoorOpened, st(3, T0, T0 + 10 * S)),
        },
        // Per-step timeouts.
        Case {
            name: "step 1 1 ns past its timeout: progress none, wrong knock",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - 10 * S - 1, 0)),
            now: T0,
            pkt: udp(K1),
            want: wrong_ban(drop_write(WrongKnock, st(0, T0 - 10 * S - 1, 0))),
        },
        Case {
            name: "a longer timeout of step 1 lets it come later",
            cfg: cfg().timeout(1, 30 * S).build(),
            fake: fresh().with_source(st(1, T0 - 25 * S, 0)),
            now: T0,
            pkt: udp(K1),
            want: drop_write(KnockAdvanced, st(2, T0, 0)),
        },
        Case {
            name: "the step's own timeout counts, not the previous step's",
            cfg: cfg().timeout(1, 30 * S).timeout(2, 3 * S).build(),
            fake: fresh().with_source(st(2, T0 - 4 * S, 0)),
            now: T0,
            pkt: syn(K2),
            want: wrong_ban(drop_write(WrongKnock, st(0, T0 - 4 * S, 0))),
        },
        Case {
            name: "expired progress, wrong knock, trigger off: reset, no ban",
            cfg: no_ban,
            fake: fresh().with_source(st(2, T0 - 11 * S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(WrongKnock, st(0, T0 - 11 * S, 0)),
        },
        Case {
            name: "expired progress, step 0: restart",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - 11 * S, 0)),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        // Retransmits.
        Case {
            name: "copy of step 0 while waiting for step 1: ignored",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: syn(K0),
            want: drop(KnockRepeated),
        },
        Case {
            name: "copy of step 1 (udp) while waiting for step 2: ignored",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: udp(K1),
            want: drop(KnockRepeated),
        },
        Case {
            name: "copy of the last step after opening: ignored, door kept",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - S, T0 + 9 * S)),
            now: T0,
            pkt: syn(K2),
            want: drop(KnockRepeated),
        },
        Case {
            name: "copy of the last step past its timeout: wrong knock",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - 11 * S, T0 - S)),
            now: T0,
            pkt: syn(K2),
            want: wrong_ban(drop_write(WrongKnock, st(0, T0 - 11 * S, T0 - S))),
        },
        // Wrong knocks.
        Case {
            name: "skipping a step: reset and ban",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: wrong_ban(drop_write(WrongKnock, st(0, T0 - S, 0))),
        },
        Case {
            name: "skipping a step, trigger off: reset, no ban",
            cfg: no_ban,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(WrongKnock, st(0, T0 - S, 0)),
        },
        Case {
            name: "going back a step: wrong knock",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - S, T0 + 9 * S)),
            now: T0,
            pkt: udp(K1),
            want: wrong_ban(drop_write(WrongKnock, st(0, T0 - S, T0 + 9 * S))),
        },
        Case {
            name: "wrong first knock from nothing: ban, nothing to write",
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: udp(K1),
            want: wrong_ban(drop(WrongKnock)),
        },
        Case {
            name: "wrong knock with the door open keeps the door",
            cfg: no_ban,
            fake: fresh().with_source(st(3, T0 - 2 * S, T0 + 8 * S)),
            now: T0,
            pkt: udp(K1),
            want: drop_write(WrongKnock, st(0, T0 - 2 * S, T0 + 8 * S)),
        },
        // Step 0 restarts.
        Case {
            name: "step 0 in the middle restarts",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        Case {
            name: "step 0 after opening restarts and keeps the door",
            cfg: c,
            fake: fresh().with_source(st(3, T0 - S, T0 + 9 * S)),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, T0 + 9 * S)),
        },
        // What counts as a knock.
        Case {
            name: "ACK to a tcp knock port is noise",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: tcp(K0, TCP_ACK),
            want: drop(KnockNoise),
        },
        Case {
            name: "SYN+ACK to the expected tcp step is noise",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: tcp(K2, TCP_SYN | TCP_ACK),
            want: drop(KnockNoise),
        },
        Case {
            name: "RST to a wrong tcp step is noise, not a wrong knock",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: tcp(K2, TCP_RST),
            want: drop(KnockNoise),
        },
        Case {
            name: "SYN+FIN to a tcp step is a bare SYN",
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt: tcp(K0, TCP_SYN | TCP_FIN),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        Case {
            name: "udp to a tcp step's port is not a knock, but a new packet elsewhere",
            cfg: c,
            fake: fresh().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: udp(K2),
            want: Decision {
                source: Some(st(0, T0 - S, 0)),
                ..pass(KnockReset)
            },
        },
        Case {
            name: "tcp SYN to a udp step's port is not a knock, but a new connection elsewhere",
            cfg: c,
            fake: fresh().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: syn(K1),
            want: Decision {
                source: Some(st(0, T0 - S, 0)),
                ..pass(KnockReset)
            },
        },
    ]);
}

#[test]
fn trap_ports_ban_and_drop() {
    let c = cfg().trap(TRAP).trap(31337).build();
    let trapped = banning(drop(Trapped), T0, BAN_TRAP);
    let mut cases = Vec::new();
    for (what, pkt) in [
        ("tcp SYN", syn(TRAP)),
        ("tcp ACK", tcp(TRAP, TCP_ACK)),
        ("udp", udp(TRAP)),
        ("second trap", udp(31337)),
    ] {
        cases.push(Case {
            name: what,
            cfg: c,
            fake: fresh(),
            now: T0,
            pkt,
            want: trapped,
        });
    }
    cases.push(Case {
        name: "a trap bans whatever the ban triggers, and resets progress",
        cfg: cfg().trap(TRAP).without(BAN_TRIGGERS).build(),
        fake: fresh().with_source(st(2, T0 - S, 0)),
        now: T0,
        pkt: syn(TRAP),
        want: Decision {
            source: Some(st(0, T0 - S, 0)),
            ..trapped
        },
    });
    cases.push(Case {
        name: "the ban end saturates",
        cfg: c,
        fake: fresh(),
        now: u64::MAX - S,
        pkt: syn(TRAP),
        want: Decision {
            ban: BanUpdate::Set(ban(u64::MAX, BAN_TRAP)),
            ..drop(Trapped)
        },
    });
    run(cases);
}

#[test]
fn knock_clears_ban_table() {
    let c = cfg().trap(TRAP).with(FLAG_KNOCK_CLEARS_BAN).build();
    let banned = || fresh().with_ban(T0 + HOUR, BAN_CLOSED_DOOR);
    run(vec![
        Case {
            name: "banned source may knock step 0",
            cfg: c,
            fake: banned(),
            now: T0,
            pkt: syn(K0),
            want: drop_write(KnockAdvanced, st(1, T0, 0)),
        },
        Case {
            name: "completing the sequence lifts the ban",
            cfg: c,
            fake: banned().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: Decision {
                ban: BanUpdate::Remove,
                ..drop_write(DoorOpened, st(3, T0, T0 + 10 * S))
            },
        },
        Case {
            name: "completing with an expired ban has nothing to lift",
            cfg: c,
            fake: fresh()
                .with_ban(T0, BAN_CLOSED_DOOR)
                .with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop_write(DoorOpened, st(3, T0, T0 + 10 * S)),
        },
        Case {
            name: "a banned source's wrong knock renews the ban",
            cfg: c,
            fake: banned().with_source(st(1, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: banning(
                drop_write(WrongKnock, st(0, T0 - S, 0)),
                T0,
                BAN_WRONG_KNOCK,
            ),
        },
        Case {
            name: "knock noise from a banned source is still noise",
            cfg: c,
            fake: banned(),
            now: T0,
            pkt: tcp(K0, TCP_ACK),
            want: drop(KnockNoise),
        },
        Case {
            name: "the flag does not open the protected port to a banned source",
            cfg: c,
            fake: banned(),
            now: T0,
            pkt: syn(SSH),
            want: drop(Banned),
        },
        Case {
            name: "the flag does not pass unrelated traffic of a banned source",
            cfg: c,
            fake: banned(),
            now: T0,
            pkt: udp(53),
            want: drop(Banned),
        },
        Case {
            name: "the flag does not re-ban on a trap of a banned source",
            cfg: c,
            fake: banned(),
            now: T0,
            pkt: syn(TRAP),
            want: drop(Banned),
        },
        Case {
            name: "without the flag a banned source's knock is dropped as banned",
            cfg: cfg().build(),
            fake: banned().with_source(st(2, T0 - S, 0)),
            now: T0,
            pkt: syn(K2),
            want: drop(Banned),
        },
    ]);
}

#[test]
fn unrelated_traffic_passes_and_resets_only_an_unfinished_sequence() {
    let c = cfg().trap(TRAP).build();
    // (state, whether a new connection elsewhere resets it)
    let states = [
        (None, false),
        (Some(st(1, T0 - S, 0)), true),
        (Some(st(2, T0 - S, 0)), true),
        // A completed sequence keeps its door open.
        (Some(st(3, T0 - S, T0 + 9 * S)), false),
        // Expired progress has nothing left to reset.
        (Some(st(2, T0 - 60 * S, 0)), false),
    ];
    let mut cases = Vec::new();
    for (source, resets) in states {
        for (pkt, new_connection) in [
            (syn(HTTP), true),
            (tcp(HTTP, TCP_ACK), false),
            (udp(53), true),
            (udp(K0), true),
            (syn(K1), true),
            (udp(SSH), true),
            (tcp(443, TCP_RST), false),
            (tcp(443, TCP_SYN | TCP_ACK), false),
        ] {
            let want = match source {
                Some(s) if resets && new_connection => Decision {
                    source: Some(SourceState { step: 0, ..s }),
                    ..pass(KnockReset)
                },
                _ => pass(Unrelated),
            };
            cases.push(Case {
                name: "unrelated",
                cfg: c,
                fake: Fake { source, ..fresh() },
                now: T0,
                pkt,
                want,
            });
        }
    }
    cases.push(Case {
        name: "an allow-listed source gets no state, not even a reset",
        cfg: c,
        fake: fresh().with_source(st(1, T0 - S, 0)).with_allow(0),
        now: T0,
        pkt: syn(HTTP),
        want: pass(Unrelated),
    });
    run(cases);
}

// ------------------------------------------------------------- traces

/// One packet of a trace: at `t` (ns after T0), `pkt` gets `verdict` and `counter`.
type Line = (u64, Packet, Verdict, Counter);

/// Runs a trace from `fake` and returns the final maps.
fn trace(name: &str, cfg: &Config, mut fake: Fake, lines: &[Line]) -> Fake {
    for (n, &(t, pkt, verdict, counter)) in lines.iter().enumerate() {
        let d = fake.step(pkt, cfg, T0 + t);
        assert_eq!(
            (d.verdict, d.counter),
            (verdict, counter),
            "{name}: line {n} ({pkt:?} at +{t} ns)"
        );
    }
    fake
}

#[test]
fn full_sequence_opens_door_for_the_window() {
    let c = cfg().build();
    let f = trace(
        "open",
        &c,
        fresh(),
        &[(0, syn(SSH), D, DoorClosed), (0, syn(K0), D, Banned)],
    );
    assert!(f.banned(T0), "closed-door SYN bans");

    let c = cfg().without(FLAG_BAN_CLOSED_DOOR).build();
    let f = trace(
        "open",
        &c,
        fresh(),
        &[
            (0, syn(SSH), D, DoorClosed),
            (S, syn(K0), D, KnockAdvanced),
            (S + 1, syn(K0), D, KnockRepeated),
            (2 * S, tcp(K0, TCP_ACK), D, KnockNoise),
            (3 * S, udp(K1), D, KnockAdvanced),
            (4 * S, tcp(HTTP, TCP_ACK), P, Unrelated),
            (5 * S, udp(K1), D, KnockRepeated),
            (6 * S, syn(K2), D, DoorOpened),
            (7 * S, syn(K2), D, KnockRepeated),
            (7 * S, syn(SSH), P, DoorPassed),
            (7 * S, tcp(SSH, TCP_ACK), P, ProtectedOther),
            (16 * S - 1, syn(SSH), P, DoorPassed),
            (16 * S, syn(SSH), D, DoorClosed),
            // The established session outlives the window.
            (60 * S, tcp(SSH, TCP_ACK), P, ProtectedOther),
            (60 * S, tcp(SSH, TCP_ACK | TCP_FIN), P, ProtectedOther),
        ],
    );
    assert_eq!(f.source, Some(st(3, T0 + 6 * S, T0 + 16 * S)));
    assert_eq!(f.ban, None);
}

#[test]
fn wrong_order_and_late_steps_fail() {
    let c = cfg().without(BAN_TRIGGERS).build();
    for (name, lines) in [
        (
            "wrong order",
            vec![
                (0, syn(K0), D, KnockAdvanced),
                (S, syn(K2), D, WrongKnock),
                (2 * S, udp(K1), D, WrongKnock),
                (3 * S, syn(SSH), D, DoorClosed),
            ],
        ),
        (
            "late second step",
            vec![
                (0, syn(K0), D, KnockAdvanced),
                (10 * S + 1, udp(K1), D, WrongKnock),
                (10 * S + 2, syn(K2), D, WrongKnock),
                (10 * S + 3, syn(SSH), D, DoorClosed),
            ],
        ),
        (
            "late last step",
            vec![
                (0, syn(K0), D, KnockAdvanced),
                (10 * S, udp(K1), D, KnockAdvanced),
                (20 * S + 1, syn(K2), D, WrongKnock),
                (20 * S + 2, syn(SSH), D, DoorClosed),
            ],
        ),
        (
            "a retransmit does not refresh the step's clock",
            vec![
                (0, syn(K0), D, KnockAdvanced),
                (8 * S, syn(K0), D, KnockRepeated),
                (11 * S, udp(K1), D, WrongKnock),
                (12 * S, syn(SSH), D, DoorClosed),
            ],
        ),
        (
            "step 0 in between restarts",
            vec![
                (0, syn(K0), D, KnockAdvanced),
                (S, udp(K1), D, KnockAdvanced),
                (2 * S, udp(K1 + 1), P, KnockReset),
                (3 * S, syn(K0), D, KnockAdvanced),
                (4 * S, syn(K2), D, WrongKnock),
                (5 * S, syn(SSH), D, DoorClosed),
            ],
        ),
        (
            "restart after a wrong knock works",
            vec![
                (0, udp(K1), D, WrongKnock),
                (S, syn(K0), D, KnockAdvanced),
                (2 * S, udp(K1), D, KnockAdvanced),
                (3 * S, syn(K2), D, DoorOpened),
                (4 * S, syn(SSH), P, DoorPassed),
            ],
        ),
    ] {
        trace(name, &c, fresh(), &lines);
    }
}

#[test]
fn wrong_knock_bans_and_the_ban_expires() {
    let c = cfg().build();
    let f = trace(
        "ban",
        &c,
        fresh(),
        &[
            (0, syn(K0), D, KnockAdvanced),
            (S, syn(K2), D, WrongKnock),
            (2 * S, syn(K0), D, Banned),
            // A wrong-knock ban covers the filter's own ports only.
            (2 * S, syn(HTTP), P, Unrelated),
            (HOUR + S - 1, syn(SSH), D, Banned),
            (HOUR + S - 1, udp(K1), D, Banned),
            (HOUR + S, syn(K0), D, KnockAdvanced),
            (HOUR + 2 * S, udp(K1), D, KnockAdvanced),
            (HOUR + 3 * S, syn(K2), D, DoorOpened),
            (HOUR + 4 * S, syn(SSH), P, DoorPassed),
        ],
    );
    assert_eq!(f.knock_ban, Some(ban(T0 + HOUR + S, BAN_WRONG_KNOCK)));
    assert_eq!(f.ban, None, "a wrong knock bans in its own map");
}

#[test]
fn wrong_knock_does_not_close_an_open_door() {
    let c = cfg().without(BAN_TRIGGERS).build();
    let f = trace(
        "open door",
        &c,
        fresh(),
        &[
            (0, syn(K0), D, KnockAdvanced),
            (S, udp(K1), D, KnockAdvanced),
            (2 * S, syn(K2), D, DoorOpened),
            (3 * S, udp(K1), D, WrongKnock),
            (4 * S, syn(SSH), P, DoorPassed),
            (5 * S, syn(K0), D, KnockAdvanced),
            (6 * S, syn(SSH), P, DoorPassed),
            (12 * S, syn(SSH), D, DoorClosed),
        ],
    );
    // The closed-door SYN ended the attempt begun at 5 s.
    assert_eq!(f.source, Some(st(0, T0 + 5 * S, T0 + 12 * S)));
}

#[test]
fn knock_clears_ban_trace() {
    let c = cfg().with(FLAG_KNOCK_CLEARS_BAN).build();
    let banned = fresh().with_ban(T0 + HOUR, BAN_TRAP);
    let f = trace(
        "clears",
        &c,
        banned,
        &[
            (0, syn(SSH), D, Banned),
            (0, syn(K0), D, KnockAdvanced),
            (S, udp(K1), D, KnockAdvanced),
            (2 * S, syn(HTTP), D, Banned),
            (3 * S, syn(K2), D, DoorOpened),
            (4 * S, syn(SSH), P, DoorPassed),
            (4 * S, syn(HTTP), P, Unrelated),
        ],
    );
    assert_eq!(f.ban, None);

    let c = cfg().build();
    let f = trace(
        "no clearing",
        &c,
        banned,
        &[
            (0, syn(K0), D, Banned),
            (S, udp(K1), D, Banned),
            (3 * S, syn(K2), D, Banned),
            (4 * S, syn(SSH), D, Banned),
        ],
    );
    assert_eq!(f.source, None);
    assert_eq!(f.ban, banned.ban);
}

#[test]
fn single_step_sequence() {
    let c = cfg().steps(&[(PROTO_UDP, 4242)]).build();
    let f = trace(
        "single",
        &c,
        fresh(),
        &[
            (0, udp(4243), P, Unrelated),
            (0, udp(4242), D, DoorOpened),
            (S, udp(4242), D, KnockRepeated),
            (2 * S, syn(SSH), P, DoorPassed),
            (21 * S, syn(SSH), D, DoorClosed),
        ],
    );
    assert!(f.banned(T0 + 21 * S));

    let c = cfg()
        .steps(&[(PROTO_TCP, 4242)])
        .without(BAN_TRIGGERS)
        .build();
    trace(
        "single tcp",
        &c,
        fresh(),
        &[
            (0, tcp(4242, TCP_ACK), D, KnockNoise),
            (0, syn(SSH), D, DoorClosed),
            (S, syn(4242), D, DoorOpened),
            (2 * S, syn(SSH), P, DoorPassed),
            (11 * S, syn(SSH), D, DoorClosed),
            (12 * S, syn(4242), D, DoorOpened),
            (13 * S, syn(SSH), P, DoorPassed),
        ],
    );
}

/// A single-step sequence whose step timeout is longer than the window:
/// once the door has closed, a new knock is taken for a retransmit of the
/// previous one until the step timeout passes, so the door cannot be
/// reopened. The lead's rule "a knock of step 0 always (re)starts the
/// sequence" says it should reopen.
#[test]
fn single_step_reknock_after_window_reopens() {
    let c = cfg()
        .steps(&[(PROTO_TCP, 4242)])
        .timeout(0, 60 * S)
        .without(BAN_TRIGGERS)
        .build();
    trace(
        "single reknock",
        &c,
        fresh(),
        &[
            (0, syn(4242), D, DoorOpened),
            (11 * S, syn(SSH), D, DoorClosed),
            (20 * S, syn(4242), D, DoorOpened),
            (21 * S, syn(SSH), P, DoorPassed),
        ],
    );
}

#[test]
fn eight_step_sequence() {
    let steps: Vec<(u8, u16)> = (0..MAX_STEPS as u16)
        .map(|i| {
            let proto = if i % 2 == 0 { PROTO_TCP } else { PROTO_UDP };
            (proto, 1000 + 7 * i)
        })
        .collect();
    let c = cfg().steps(&steps).without(BAN_TRIGGERS).build();
    let knock = |i: usize| {
        let (proto, port) = steps[i];
        if proto == PROTO_TCP {
            syn(port)
        } else {
            udp(port)
        }
    };
    let mut lines: Vec<Line> = (0..MAX_STEPS)
        .map(|i| {
            let counter = if i + 1 == MAX_STEPS {
                DoorOpened
            } else {
                KnockAdvanced
            };
            (i as u64 * 9 * S, knock(i), D, counter)
        })
        .collect();
    lines.push((64 * S, syn(SSH), P, DoorPassed));
    let f = trace("eight", &c, fresh(), &lines);
    assert_eq!(f.source, Some(st(8, T0 + 63 * S, T0 + 73 * S)));

    // The same with step 5 skipped fails at step 6.
    let mut lines: Vec<Line> = (0..MAX_STEPS)
        .filter(|&i| i != 5)
        .map(|i| {
            let counter = if i >= 6 { WrongKnock } else { KnockAdvanced };
            (i as u64 * S, knock(i), D, counter)
        })
        .collect();
    lines.push((9 * S, syn(SSH), D, DoorClosed));
    trace("eight, one skipped", &c, fresh(), &lines);
}

// ------------------------------------------------------------- lookups

#[test]
fn fast_path_asks_only_the_ban_map_and_the_clock_only_for_a_ban() {
    let c = cfg().trap(TRAP).build();
    for fake in [
        fresh(),
        fresh().with_source(st(2, T0 - S, T0 + S)),
        fresh().with_allow(0),
        fresh().with_ban(T0, BAN_TRAP),
        fresh().with_ban(T0 + S, BAN_WRONG_KNOCK),
    ] {
        // Established traffic to unrelated ports, the bulk of a server's.
        for pkt in [
            tcp(HTTP, TCP_ACK),
            tcp(53, TCP_ACK | TCP_FIN),
            tcp(K1, TCP_ACK),
        ] {
            let mut f = fake;
            assert_eq!(f.decide(pkt, &c, T0), pass(Unrelated), "{pkt:?}");
            assert_eq!(
                f.asked,
                Asked {
                    ban: 1,
                    now: u32::from(fake.ban.is_some()),
                    ..Asked::default()
                },
                "{pkt:?} from {fake:?}"
            );
        }
    }
}

#[test]
fn new_connections_elsewhere_also_ask_the_source_and_the_clock_only_for_progress() {
    let c = cfg().trap(TRAP).build();
    for (fake, now) in [
        (fresh(), 0),
        (fresh().with_source(st(0, T0 - S, 0)), 0),
        (fresh().with_source(st(3, T0 - S, T0 + S)), 1),
        (fresh().with_ban(T0 + S, BAN_WRONG_KNOCK), 0),
    ] {
        for pkt in [syn(HTTP), udp(53), udp(K0), syn(K1), udp(SSH)] {
            let mut f = fake;
            assert_eq!(f.decide(pkt, &c, T0), pass(Unrelated), "{pkt:?}");
            assert_eq!(
                f.asked,
                Asked {
                    ban: 1,
                    source: 1,
                    now,
                    ..Asked::default()
                },
                "{pkt:?} from {fake:?}"
            );
        }
    }
}

#[test]
fn a_crowdsec_decision_costs_one_lookup_and_only_with_the_flag() {
    let off = cfg().trap(TRAP).build();
    let on = cfg().trap(TRAP).with(FLAG_CROWDSEC).build();
    for pkt in [tcp(HTTP, TCP_ACK), syn(HTTP), udp(53)] {
        // Without [crowdsec] a decision left in the map is never read.
        let mut f = fresh().with_decision(T0 + HOUR);
        assert_eq!(f.decide(pkt, &off, T0).verdict, P, "{pkt:?}");
        assert_eq!(f.asked.decision, 0);
        // With it, an unbanned source without a decision pays one lookup
        // and no clock read more than before.
        let mut f = fresh();
        f.decide(pkt, &on, T0);
        assert_eq!((f.asked.ban, f.asked.decision, f.asked.now), (1, 1, 0));
        // A source the ban map already bans is not looked up again.
        let mut f = fresh().with_ban(T0 + S, BAN_TRAP).with_decision(T0 + S);
        assert_eq!(f.decide(pkt, &on, T0), drop(Banned));
        assert_eq!(f.asked.decision, 0);
    }
}

#[test]
fn a_crowdsec_decision_drops_every_port_until_it_ends() {
    let c = cfg()
        .trap(TRAP)
        .with(FLAG_CROWDSEC | FLAG_KNOCK_CLEARS_BAN)
        .build();
    for pkt in [
        tcp(HTTP, TCP_ACK),
        syn(HTTP),
        udp(53),
        syn(SSH),
        tcp(SSH, TCP_ACK),
        syn(K0),
        udp(K1),
        syn(TRAP),
    ] {
        let mut f = fresh().with_decision(T0 + S);
        // No knock lifts it (knock_clears_ban is for iplock's own bans),
        // and a dropped packet makes no ban of its own, so no event.
        assert_eq!(f.decide(pkt, &c, T0), drop(Banned), "{pkt:?}");
        // Expired: as if absent.
        let d = f.decide(pkt, &c, T0 + S);
        assert_ne!(d.counter, Banned, "{pkt:?}");
        // The allow list wins.
        let mut f = fresh().with_decision(T0 + S).with_allow(0);
        assert_eq!(f.decide(pkt, &c, T0), pass(Allowed), "{pkt:?}");
    }
    // An open door does not let a decided source through either.
    let mut f = fresh()
        .with_source(st(3, T0 - S, T0 + 5 * S))
        .with_decision(T0 + S);
    assert_eq!(f.decide(syn(SSH), &c, T0), drop(Banned));
}

#[test]
fn protected_non_syn_does_not_read_the_source() {
    let c = cfg().build();
    let mut f = fresh().with_source(st(3, T0, T0 + S));
    f.decide(tcp(SSH, TCP_ACK), &c, T0);
    assert_eq!(f.asked.source, 0);
}

// ------------------------------------------------------------- addresses

fn key(s: &str) -> AddrKey {
    addr::from_ip(s.parse().unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn mask_bits_not_multiple_of_eight() {
    let k = key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    for (bits, want) in [
        (0, "::"),
        (1, "8000::"),
        (7, "fe00::"),
        (9, "ff80::"),
        (15, "fffe::"),
        (63, "ffff:ffff:ffff:fffe::"),
        (65, "ffff:ffff:ffff:ffff:8000::"),
        (127, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
        (128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        (200, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ] {
        assert_eq!(addr::to_ip(&addr::mask(&k, bits)), ip(want), "/{bits}");
    }
    let k = key("2001:db8:abcd:1234:5678::1");
    assert_eq!(addr::to_ip(&addr::mask(&k, 50)), ip("2001:db8:abcd::"));
    assert_eq!(addr::to_ip(&addr::mask(&k, 52)), ip("2001:db8:abcd:1000::"));
    assert_eq!(addr::to_ip(&addr::mask(&k, 56)), ip("2001:db8:abcd:1200::"));
}

#[test]
fn ban_key_corners() {
    // IPv4 is always banned alone, whatever the IPv6 prefix.
    for prefix in [0, 1, 48, 64, 96, 128] {
        let v4 = key("198.51.100.77");
        assert_eq!(addr::ban_key(&v4, prefix), v4, "/{prefix}");
    }
    let a = key("2001:db8:1:2:3:4:5:6");
    assert_eq!(addr::to_ip(&addr::ban_key(&a, 64)), ip("2001:db8:1:2::"));
    assert_eq!(addr::to_ip(&addr::ban_key(&a, 48)), ip("2001:db8:1::"));
    assert_eq!(addr::ban_key(&a, 128), a);
    // Neighbours in the same /64 share the key; the next /64 does not.
    assert_eq!(
        addr::ban_key(&a, 64),
        addr::ban_key(&key("2001:db8:1:2:ffff::"), 64)
    );
    assert_ne!(
        addr::ban_key(&a, 64),
        addr::ban_key(&key("2001:db8:1:3::6"), 64)
    );
}

// ------------------------------------------------------------- properties

const TIMEOUTS: [u64; 3] = [5 * S, 10 * S, 20 * S];

/// The knock sequence of the property tests: long enough for all step
/// kinds, ports chosen so they never collide with the other roles.
const PROP_STEPS: [(u8, u16); MAX_STEPS] = [
    (PROTO_TCP, K0),
    (PROTO_UDP, K1),
    (PROTO_TCP, K2),
    (PROTO_UDP, 400),
    (PROTO_TCP, 500),
    (PROTO_UDP, 600),
    (PROTO_TCP, 700),
    (PROTO_TCP, 800),
];

fn any_config(max_steps: usize) -> impl Strategy<Value = Config> {
    (
        prop::collection::vec(prop::sample::select(&TIMEOUTS[..]), 1..=max_steps),
        0u32..32,
        prop::sample::select(&[S, 10 * S, 30 * S][..]),
        prop::sample::select(&[30 * S, HOUR][..]),
    )
        .prop_map(|(timeouts, flags, window, ban_time)| {
            let mut b = cfg().trap(TRAP).flags(flags).window(window);
            b.ban_time = ban_time;
            b.steps = timeouts
                .iter()
                .zip(PROP_STEPS)
                .map(|(&t, (proto, port))| (proto, port, t))
                .collect();
            b.build()
        })
}

const FLAGS: [u8; 7] = [
    TCP_SYN,
    TCP_SYN | TCP_ACK,
    TCP_ACK,
    TCP_RST,
    TCP_RST | TCP_ACK,
    TCP_SYN | TCP_FIN,
    0,
];

/// Any packet to any port the filter cares about, and a few it does not.
fn any_packet() -> impl Strategy<Value = Packet> {
    let ports: Vec<u16> = PROP_STEPS
        .iter()
        .map(|s| s.1)
        .chain([SSH, TRAP, HTTP, 53])
        .collect();
    (
        any::<bool>(),
        prop::sample::select(ports),
        prop::sample::select(&FLAGS[..]),
    )
        .prop_map(|(is_tcp, dport, flags)| {
            if is_tcp {
                tcp(dport, flags)
            } else {
                udp(dport)
            }
        })
}

/// Mostly well-formed knocks of the first three steps, so traces complete
/// the sequence often, mixed with anything else.
fn trace_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        3 => (0usize..3).prop_map(|i| match PROP_STEPS[i] {
            (PROTO_TCP, port) => syn(port),
            (_, port) => udp(port),
        }),
        1 => Just(syn(SSH)),
        2 => any_packet(),
    ]
}

fn any_gap() -> impl Strategy<Value = u64> {
    prop::sample::select(
        &[
            0,
            1,
            S / 2,
            S,
            3 * S,
            5 * S,
            5 * S + 1,
            10 * S,
            10 * S + 1,
            20 * S,
            20 * S + 1,
            40 * S,
        ][..],
    )
}

fn any_time() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(T0), Just(u64::MAX), T0 - 60 * S..T0 + 60 * S]
}

fn any_fake() -> impl Strategy<Value = Fake> {
    (
        prop::option::of(any_time().prop_map(AllowEntry::at_runtime)),
        prop::option::of(
            (
                any_time(),
                prop::sample::select(&[BAN_CLOSED_DOOR, BAN_TRAP, BAN_MANUAL][..]),
            )
                .prop_map(|(t, r)| ban(t, r)),
        ),
        prop::option::of(any_time().prop_map(|t| ban(t, BAN_WRONG_KNOCK))),
        prop::option::of(any_time().prop_map(decision)),
        prop::option::of(
            (0u32..=MAX_STEPS as u32 + 1, any_time(), any_time())
                .prop_map(|(step, last, open)| st(step, last, open)),
        ),
    )
        .prop_map(|(allow, ban, knock_ban, decision, source)| Fake {
            allow,
            ban,
            knock_ban,
            decision,
            source,
            asked: Asked::default(),
            now: 0,
        })
}

/// The port's meaning, classified independently of `Config::role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Protected,
    Knock(usize),
    Trap,
    Other,
}

fn role(cfg: &Config, pkt: &Packet) -> Role {
    let steps = &cfg.steps[..cfg.step_count as usize];
    if pkt.proto == PROTO_TCP && pkt.dport == SSH {
        Role::Protected
    } else if let Some(i) = steps
        .iter()
        .position(|s| (s.proto, s.port) == (pkt.proto, pkt.dport))
    {
        Role::Knock(i)
    } else if pkt.dport == TRAP {
        Role::Trap
    } else {
        Role::Other
    }
}

fn bare_syn(pkt: &Packet) -> bool {
    pkt.proto == PROTO_TCP && pkt.tcp_flags & TCP_SYN != 0 && pkt.tcp_flags & TCP_ACK == 0
}

/// The contract of issue 2 for one source, written as directly as
/// possible: the current attempt is the list of times of the knocks it
/// accepted, so "progress" is its length and "previous knock" its last
/// element.
#[derive(Debug, Default)]
struct Model {
    attempt: Vec<u64>,
    door_until: u64,
    ban: Option<BanEntry>,
    /// A wrong-knock ban, which covers the filter's ports only.
    knock_ban: Option<BanEntry>,
    /// A CrowdSec decision, seen only with FLAG_CROWDSEC; no knock lifts it.
    decision: Option<DecisionEntry>,
}

impl Model {
    fn banned(&self, t: u64, r: Role) -> bool {
        self.ban.is_some_and(|b| b.until_ns > t)
            || (r != Role::Other && self.knock_ban.is_some_and(|b| b.until_ns > t))
    }

    fn ban(&mut self, cfg: &Config, t: u64, reason: u32) {
        let b = Some(ban(t + cfg.ban_time_ns, reason));
        if reason == BAN_WRONG_KNOCK {
            self.knock_ban = b;
        } else {
            self.ban = b;
        }
    }

    /// Forgets an attempt whose next step (or, once complete, whose
    /// retransmits) is no longer within its timeout.
    fn expire(&mut self, cfg: &Config, t: u64) {
        let n = cfg.step_count as usize;
        if self.attempt.len() == n && self.door_until > t {
            return;
        }
        if let Some(&last) = self.attempt.last() {
            let waiting_for = self.attempt.len().min(n - 1);
            if t - last > cfg.steps[waiting_for].timeout_ns {
                self.attempt.clear();
            }
        }
    }

    /// Something other than the next knock: an attempt in the middle is
    /// over, a completed one stays.
    fn interrupt(&mut self, cfg: &Config, t: u64) -> bool {
        self.expire(cfg, t);
        let n = self.attempt.len();
        let interrupted = n > 0 && n < cfg.step_count as usize;
        if interrupted {
            self.attempt.clear();
        }
        interrupted
    }

    fn packet(&mut self, cfg: &Config, pkt: &Packet, t: u64) -> (Verdict, Counter) {
        let flag = |f| cfg.flags & f != 0;
        let r = role(cfg, pkt);
        let knock_past_ban = flag(FLAG_KNOCK_CLEARS_BAN) && matches!(r, Role::Knock(_));
        let decided = flag(FLAG_CROWDSEC) && self.decision.is_some_and(|d| d.until_ns > t);
        let banned = self.banned(t, r);
        if decided || (banned && !knock_past_ban) {
            return (D, Banned);
        }
        let answer = if banned || flag(FLAG_KNOCK_DROP) {
            D
        } else {
            P
        };
        let new_connection = pkt.proto == PROTO_UDP || bare_syn(pkt);
        match r {
            Role::Other if new_connection && self.interrupt(cfg, t) => (P, KnockReset),
            Role::Other => (P, Unrelated),
            Role::Trap => {
                self.interrupt(cfg, t);
                self.ban(cfg, t, BAN_TRAP);
                (D, Trapped)
            }
            Role::Protected if !bare_syn(pkt) => (P, ProtectedOther),
            Role::Protected if self.door_until > t => (P, DoorPassed),
            Role::Protected => {
                self.interrupt(cfg, t);
                if flag(FLAG_BAN_CLOSED_DOOR) {
                    self.ban(cfg, t, BAN_CLOSED_DOOR);
                }
                (D, DoorClosed)
            }
            Role::Knock(_) if pkt.proto == PROTO_TCP && !bare_syn(pkt) => (answer, KnockNoise),
            Role::Knock(i) => {
                self.expire(cfg, t);
                let done = self.attempt.len();
                // With one step the repeat is also step 0: once the door
                // has closed it starts the sequence again.
                let reopens = cfg.step_count == 1 && self.door_until <= t;
                if done > 0 && i == done - 1 && !reopens {
                    return (answer, KnockRepeated);
                }
                if i == 0 {
                    self.attempt.clear();
                } else if i != done {
                    self.attempt.clear();
                    if flag(FLAG_BAN_WRONG_KNOCK) {
                        self.ban(cfg, t, BAN_WRONG_KNOCK);
                    }
                    return (answer, WrongKnock);
                }
                self.attempt.push(t);
                if self.attempt.len() < cfg.step_count as usize {
                    return (answer, KnockAdvanced);
                }
                self.door_until = t + cfg.open_window_ns;
                if banned {
                    (self.ban, self.knock_ban) = (None, None);
                }
                (answer, DoorOpened)
            }
        }
    }
}

/// Whether some subsequence of the knocks seen (step, time) is the
/// whole sequence in order, each step within its timeout of the one
/// before, ending at most `window` before `t` (and not after `t`).
fn sequence_seen(cfg: &Config, knocks: &[(usize, u64)], t: u64) -> bool {
    let n = cfg.step_count as usize;
    // reached[k]: knock k ends a valid in-order prefix of the sequence.
    let mut reached = vec![false; knocks.len()];
    for k in 0..knocks.len() {
        let (step, at) = knocks[k];
        reached[k] = step == 0
            || (0..k).any(|j| {
                reached[j]
                    && knocks[j].0 == step - 1
                    && at - knocks[j].1 <= cfg.steps[step].timeout_ns
            });
    }
    knocks
        .iter()
        .zip(&reached)
        .any(|(&(step, at), &r)| r && step == n - 1 && at <= t && t < at + cfg.open_window_ns)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The door opens only after the whole sequence in order and in time,
    /// and every decision matches the reference model exactly.
    #[test]
    fn door_opens_only_after_the_sequence(
        c in any_config(3),
        packets in prop::collection::vec((any_gap(), trace_packet()), 1..60),
        decided in prop::option::of(prop_oneof![Just(T0), T0..T0 + 120 * S].prop_map(decision)),
    ) {
        let mut fake = Fake { decision: decided, ..fresh() };
        let mut model = Model { decision: decided, ..Model::default() };
        let mut knocks = Vec::new();
        let mut t = T0;
        for (n, (gap, pkt)) in packets.into_iter().enumerate() {
            t += gap;
            prop_assert!(
                !fake.door_open(t) || sequence_seen(&c, &knocks, t),
                "packet {}: door open before a sequence", n
            );
            if let Role::Knock(i) = role(&c, &pkt)
                && (pkt.proto == PROTO_UDP || bare_syn(&pkt))
            {
                knocks.push((i, t));
            }
            let d = fake.step(pkt, &c, t);
            let m = model.packet(&c, &pkt, t);
            prop_assert_eq!((d.verdict, d.counter), m, "packet {}: {:?}", n, pkt);
            prop_assert_eq!(fake.ban, model.ban, "packet {}: ban", n);
            prop_assert_eq!(fake.knock_ban, model.knock_ban, "packet {}: knock ban", n);
            prop_assert_eq!(
                fake.source.map_or(0, |s| s.open_until_ns),
                model.door_until,
                "packet {}: door", n
            );
            model.expire(&c, t);
            let progress = fake.source.map_or(0, |s| live_progress(&s, &c, t));
            prop_assert_eq!(progress as usize, model.attempt.len(), "packet {}: progress", n);
            prop_assert!(
                !fake.door_open(t) || sequence_seen(&c, &knocks, t),
                "packet {}: door open without a sequence", n
            );
        }
    }

    /// Unrelated packets change no state but a reset of progress, and that
    /// only for a new connection.
    #[test]
    fn unrelated_never_writes_but_a_reset(
        c in any_config(MAX_STEPS),
        fake in any_fake(),
        now in any_time(),
        pkt in any_packet(),
    ) {
        prop_assume!(role(&c, &pkt) == Role::Other);
        let mut f = fake;
        let d = f.decide(pkt, &c, now);
        if let Some(s) = d.source {
            prop_assert!(pkt.proto == PROTO_UDP || bare_syn(&pkt));
            prop_assert_eq!(s, SourceState { step: 0, ..fake.source.unwrap() });
            prop_assert_eq!(d.counter, KnockReset);
        }
        prop_assert_eq!(d.ban, BanUpdate::Keep);
        prop_assert!(matches!(d.counter, Unrelated | Allowed | Banned | KnockReset));
    }

    /// An allow-listed source is always passed and never gets state.
    #[test]
    fn allowed_always_passes(
        c in any_config(MAX_STEPS),
        fake in any_fake(),
        until in prop_oneof![Just(0), T0 + 1..=u64::MAX],
        pkt in any_packet(),
    ) {
        let mut f = Fake { allow: Some(AllowEntry::at_runtime(until)), ..fake };
        let d = f.decide(pkt, &c, T0);
        prop_assert_eq!(d.verdict, P);
        prop_assert_eq!(d.source, None);
        prop_assert_eq!(d.ban, BanUpdate::Keep);
    }

    /// A banned source is always dropped unless knock_clears_ban is on.
    #[test]
    fn banned_always_drops(
        c in any_config(MAX_STEPS),
        fake in any_fake(),
        until in T0 + 1..=u64::MAX,
        allow_until in prop::option::of(1..=T0),
        pkt in any_packet(),
    ) {
        let mut c = c;
        c.flags &= !FLAG_KNOCK_CLEARS_BAN;
        let mut f = Fake {
            ban: Some(ban(until, BAN_MANUAL)),
            allow: allow_until.map(AllowEntry::at_runtime),
            ..fake
        };
        let d = f.decide(pkt, &c, T0);
        prop_assert_eq!(d, drop(Banned));
        prop_assert_eq!(f.asked.source, 0);
    }

    /// A source with a CrowdSec decision in force is dropped on every port,
    /// knock_clears_ban or not, unless the allow list covers it; with the
    /// flag off the decision map is never read.
    #[test]
    fn decided_always_drops_unless_allowed(
        c in any_config(MAX_STEPS),
        fake in any_fake(),
        until in T0 + 1..=u64::MAX,
        allow in prop::option::of(prop_oneof![Just(0), 1..=u64::MAX]),
        pkt in any_packet(),
    ) {
        let mut c = c;
        c.flags |= FLAG_CROWDSEC;
        let mut f = Fake { allow: allow.map(AllowEntry::at_runtime), ..fake.with_decision(until) };
        let d = f.decide(pkt, &c, T0);
        if allow.is_some_and(|a| a == 0 || a > T0) {
            prop_assert_eq!(d.verdict, P);
        } else {
            prop_assert_eq!(d, drop(Banned));
            prop_assert_eq!(f.asked.source, 0);
        }
        c.flags &= !FLAG_CROWDSEC;
        let mut f = fake.with_decision(until);
        f.decide(pkt, &c, T0);
        prop_assert_eq!(f.asked.decision, 0);
    }

    /// No decision writes a source state equal to the one it read, and no
    /// decision asks a map twice.
    #[test]
    fn writes_only_changes(
        c in any_config(MAX_STEPS),
        fake in any_fake(),
        now in any_time(),
        pkt in any_packet(),
    ) {
        let mut f = fake;
        let d = f.decide(pkt, &c, now);
        if let Some(s) = d.source {
            prop_assert_ne!(s, fake.source.unwrap_or_default());
        }
        prop_assert!(f.asked.allow <= 1 && f.asked.ban <= 1 && f.asked.decision <= 1 && f.asked.source <= 1 && f.asked.now <= 1, "{:?}", f.asked);
        // The decision map is asked only with CrowdSec on.
        if c.flags & FLAG_CROWDSEC == 0 {
            prop_assert_eq!(f.asked.decision, 0);
        }
    }

    /// Masking keeps the first `bits` bits and clears the rest.
    #[test]
    fn mask_keeps_exactly_the_prefix(k in any::<[u8; 16]>(), bits in 0u32..=160) {
        let m = addr::mask(&k, bits);
        let (a, b) = (u128::from_be_bytes(k), u128::from_be_bytes(m));
        let keep = match bits {
            0 => 0,
            1..=127 => !0u128 << (128 - bits),
            _ => !0,
        };
        prop_assert_eq!(b, a & keep);
        prop_assert_eq!(addr::mask(&m, bits), m);
    }

    /// Keys round-trip through IP addresses of both families.
    #[test]
    fn key_round_trips(k in any::<[u8; 16]>(), v4 in any::<[u8; 4]>()) {
        prop_assert_eq!(addr::from_ip(addr::to_ip(&k)), k);
        let k4 = addr::from_v4_bytes(v4);
        prop_assert!(addr::is_v4(&k4));
        prop_assert_eq!(addr::to_ip(&k4), IpAddr::from(v4));
    }
}

// ------------------------------------------------------------- stealth

#[test]
fn knock_ports_get_the_stack_answer() {
    let c = cfg().without(FLAG_KNOCK_DROP | BAN_TRIGGERS).build();
    trace(
        "stack answer",
        &c,
        fresh(),
        &[
            (0, udp(K1), P, WrongKnock),
            (S, syn(K0), P, KnockAdvanced),
            (S + 1, syn(K0), P, KnockRepeated),
            (2 * S, tcp(K0, TCP_ACK), P, KnockNoise),
            (2 * S, tcp(K2, TCP_FIN), P, KnockNoise),
            (2 * S, tcp(K2, 0), P, KnockNoise),
            (3 * S, udp(K1), P, KnockAdvanced),
            (4 * S, syn(K2), P, DoorOpened),
            (5 * S, syn(SSH), P, DoorPassed),
        ],
    );
    // A banned source gets silence on knock ports as on every other port,
    // also where its knocks count.
    let c = cfg()
        .without(FLAG_KNOCK_DROP)
        .with(FLAG_KNOCK_CLEARS_BAN)
        .build();
    let f = trace(
        "banned knocker",
        &c,
        fresh().with_ban(T0 + HOUR, BAN_CLOSED_DOOR),
        &[
            (0, syn(HTTP), D, Banned),
            (0, tcp(K0, TCP_ACK), D, KnockNoise),
            (S, syn(K0), D, KnockAdvanced),
            (2 * S, udp(K1), D, KnockAdvanced),
            (3 * S, syn(K2), D, DoorOpened),
            (4 * S, syn(K2), P, KnockRepeated),
        ],
    );
    assert!(
        !f.banned(T0 + 4 * S),
        "the completed sequence lifted the ban"
    );
}

#[test]
fn a_spray_between_two_knocks_resets_progress() {
    let c = cfg().without(FLAG_KNOCK_DROP | BAN_TRIGGERS).build();
    for spray in [udp as fn(u16) -> Packet, syn] {
        let mut f = fresh();
        f.step(syn(K0), &c, T0);
        // Every port, the next step's among them: the ports after it end
        // the attempt that the right one advanced.
        for port in 1..=2000 {
            f.step(spray(port), &c, T0 + S);
        }
        assert_eq!(f.source.map(|s| s.step), Some(0), "{:?}", spray(1));
        let d = f.step(syn(K2), &c, T0 + 2 * S);
        assert_eq!(d.counter, WrongKnock);
        assert_eq!(f.step(syn(SSH), &c, T0 + 3 * S).counter, DoorClosed);
    }
}

#[test]
fn established_traffic_elsewhere_keeps_progress() {
    let c = cfg().without(FLAG_KNOCK_DROP | BAN_TRIGGERS).build();
    trace(
        "established",
        &c,
        fresh(),
        &[
            (0, syn(K0), P, KnockAdvanced),
            (S, tcp(HTTP, TCP_ACK), P, Unrelated),
            (S, tcp(443, TCP_SYN | TCP_ACK), P, Unrelated),
            (S, tcp(SSH, TCP_ACK | TCP_PSH), P, ProtectedOther),
            (2 * S, udp(K1), P, KnockAdvanced),
            (3 * S, syn(K2), P, DoorOpened),
            // An open door stays open whatever else the source opens.
            (4 * S, syn(HTTP), P, Unrelated),
            (4 * S, udp(53), P, Unrelated),
            (5 * S, syn(SSH), P, DoorPassed),
        ],
    );
}
