//! Kernel tests: the real XDP program, loaded through the verifier, run on
//! crafted frames with BPF_PROG_TEST_RUN. Each test loads its own copy of
//! the object (its own unpinned maps); each case empties the maps, writes
//! its config and seed state, runs its frames checking every verdict, then
//! compares the whole source map, ban map and counter set. The tests group
//! the cases by the lines of the contract in issue 2.

#[path = "kernel/frame.rs"]
mod frame;
#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with hostile.rs, which uses more of it
mod harness;

use std::collections::BTreeMap;
use std::net::IpAddr;

use aya::maps::Map;
use aya::programs::Xdp;
use frame::{
    ACK, ETHERTYPE_ARP, Ext, FIN, Frame, PSH, RST, SYN, TPID_8021AD, TPID_8021Q, icmp, ip_proto,
    non_ip, tcp, udp,
};
use harness::{Harness, at, privileged};
use iplock_common::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_CROWDSEC, FLAG_KNOCK_CLEARS_BAN,
    FLAG_KNOCK_DROP, Step,
};
use iplock_common::counters::{COUNTERS, Counter};
use iplock_common::decide::Verdict::{self, Drop, Pass};
use iplock_common::names;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP};
use iplock_common::state::{
    BAN_CLOSED_DOOR, BAN_MANUAL, BAN_TRAP, BAN_WRONG_KNOCK, BanEntry, SourceState,
};

use Counter::*;

const SEC: u64 = 1_000_000_000;

// Sources. A and B are neighbours in 192.0.2.0/24, C is outside it; A6 and
// B6 share a /64, C6 does not.
const A: &str = "192.0.2.2";
const B: &str = "192.0.2.3";
const C: &str = "198.51.100.7";
const A6: &str = "2001:db8::2";
const B6: &str = "2001:db8::3";
const C6: &str = "2001:db8:0:1::2";
/// The /64 of A6 and B6: the key of their bans.
const AB6_NET: &str = "2001:db8::";
/// A as an IPv4-mapped IPv6 address, which shares A's map key.
const MAPPED_A: &str = "::ffff:192.0.2.2";

const SSH: u16 = 22;
const HTTP: u16 = 80;
const DNS: u16 = 53;
const TRAP: u16 = 666;

fn step(proto: u8, port: u16, timeout_s: u64) -> Step {
    Step {
        port,
        proto,
        _pad: [0; 5],
        timeout_ns: timeout_s * SEC,
    }
}

/// Protect 22; knock tcp:100, udp:300/20s, tcp:200 (10 s otherwise); open
/// 10 s; ban 1 h on a wrong knock and on a closed door; IPv6 bans a /64;
/// knock ports silent (`knock_answer = "drop"`), so a verdict shows which
/// path a frame took; `knock_ports_answer_like_the_stack` covers the
/// default answer.
fn config() -> Config {
    let mut steps = [Step::default(); names::MAX_STEPS];
    steps[0] = step(PROTO_TCP, 100, 10);
    steps[1] = step(PROTO_UDP, 300, 20);
    steps[2] = step(PROTO_TCP, 200, 10);
    let mut protect = [0; names::MAX_PROTECT];
    protect[0] = SSH;
    Config {
        steps,
        step_count: 3,
        flags: FLAG_BAN_WRONG_KNOCK | FLAG_BAN_CLOSED_DOOR | FLAG_KNOCK_DROP,
        protect,
        traps: [0; names::MAX_TRAPS],
        protect_count: 1,
        trap_count: 0,
        open_window_ns: 10 * SEC,
        ban_time_ns: 3600 * SEC,
        ban_prefix_v6: 64,
        ..bytemuck::Zeroable::zeroed()
    }
}

fn config_with(f: impl FnOnce(&mut Config)) -> Config {
    let mut cfg = config();
    f(&mut cfg);
    cfg
}

/// The three knocks of [`config`] from `src`.
fn knocks(src: &str) -> Vec<(Frame, Verdict)> {
    vec![
        (tcp(src, 100, SYN), Drop),
        (udp(src, 300), Drop),
        (tcp(src, 200, SYN), Drop),
    ]
}

/// Map state written before the frames run; times are seconds from now.
enum Seed {
    Source {
        ip: &'static str,
        step: u32,
        knock_s: i64,
        open_s: Option<i64>,
    },
    /// `ip` is the ban key's address (for IPv6 the prefix).
    Ban {
        ip: &'static str,
        for_s: i64,
        reason: u32,
    },
    /// `for_s: None` never expires.
    Allow {
        cidr: &'static str,
        for_s: Option<i64>,
    },
}

/// Expected entry of the source map.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Src {
    step: u32,
    open: bool,
}

/// Expected entry of the ban map.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ban {
    reason: u32,
    active: bool,
}

struct Case {
    name: &'static str,
    config: Config,
    seed: Vec<Seed>,
    frames: Vec<(Frame, Verdict)>,
    /// The whole source map afterwards.
    sources: Vec<(&'static str, Src)>,
    /// The whole ban map afterwards.
    bans: Vec<(&'static str, Ban)>,
    /// Every non-zero counter afterwards.
    counters: Vec<(Counter, u64)>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            config: config(),
            seed: Vec::new(),
            frames: Vec::new(),
            sources: Vec::new(),
            bans: Vec::new(),
            counters: Vec::new(),
        }
    }
}

fn src(ip: &'static str, step: u32, open: bool) -> (&'static str, Src) {
    (ip, Src { step, open })
}

fn ban(ip: &'static str, reason: u32) -> (&'static str, Ban) {
    (
        ip,
        Ban {
            reason,
            active: true,
        },
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn run_case(h: &mut Harness, case: &Case) {
    let name = case.name;
    h.reset(&case.config);
    let now = iplock::system::clock::now_ns();
    for seed in &case.seed {
        match *seed {
            Seed::Source {
                ip,
                step,
                knock_s,
                open_s,
            } => h.set_source(
                ip,
                SourceState {
                    step,
                    seq: 0,
                    last_knock_ns: at(now, knock_s),
                    open_until_ns: open_s.map_or(0, |s| at(now, s)),
                },
            ),
            Seed::Ban { ip, for_s, reason } => h.set_ban(
                ip,
                BanEntry {
                    until_ns: at(now, for_s),
                    reason,
                    _pad: 0,
                },
            ),
            Seed::Allow { cidr, for_s } => h.allow(cidr, for_s.map_or(0, |s| at(now, s))),
        }
    }

    for (i, (frame, want)) in case.frames.iter().enumerate() {
        let got = h.run(&frame.bytes());
        assert_eq!(got, *want, "{name}: frame {i} ({frame:?})");
    }

    let after = iplock::system::clock::now_ns();
    let sources: BTreeMap<IpAddr, Src> = h
        .sources()
        .into_iter()
        .map(|(k, s)| {
            (
                k,
                Src {
                    step: s.step,
                    open: s.open_until_ns > after,
                },
            )
        })
        .collect();
    let want: BTreeMap<IpAddr, Src> = case
        .sources
        .iter()
        .map(|(a, s)| {
            (
                ip(a),
                Src {
                    step: s.step,
                    open: s.open,
                },
            )
        })
        .collect();
    assert_eq!(sources, want, "{name}: source map");

    let bans: BTreeMap<IpAddr, Ban> = h
        .bans()
        .into_iter()
        .map(|(k, b)| {
            (
                k,
                Ban {
                    reason: b.reason,
                    active: b.until_ns > after,
                },
            )
        })
        .collect();
    let want: BTreeMap<IpAddr, Ban> = case
        .bans
        .iter()
        .map(|(a, b)| {
            (
                ip(a),
                Ban {
                    reason: b.reason,
                    active: b.active,
                },
            )
        })
        .collect();
    assert_eq!(bans, want, "{name}: ban map");

    let want: BTreeMap<&str, u64> = case.counters.iter().map(|(c, n)| (c.name(), *n)).collect();
    assert_eq!(h.counters(), want, "{name}: counters");
}

fn run_cases(test: &str, cases: &[Case]) {
    if !privileged(test) {
        return;
    }
    let mut h = Harness::new(&config());
    for case in cases {
        run_case(&mut h, case);
    }
}

#[test]
fn object_has_every_pinned_map_and_passes_the_verifier() {
    if !privileged("object_has_every_pinned_map_and_passes_the_verifier") {
        return;
    }
    let ebpf = harness::load(false);
    let prog: &Xdp = ebpf
        .program(names::PROGRAM)
        .expect("object has the iplock program")
        .try_into()
        .expect("iplock is an XDP program");
    let info = prog.info().expect("program info");
    // Printed so that a change to the parser or the decision shows its cost
    // against the verifier's budget of 1,000,000 instructions.
    eprintln!(
        "verifier: {} instructions processed, {} translated bytes",
        info.verified_instruction_count()
            .expect("kernel reports it"),
        info.size_translated().expect("kernel reports it"),
    );
    // With the log at debug, as `iplock run --log-level debug` loads it: the
    // log statements are live code the verifier must accept too.
    let debug = harness::load_with(Some(1024), log::LevelFilter::Debug);
    let prog: &Xdp = debug
        .program(names::PROGRAM)
        .expect("object has the iplock program")
        .try_into()
        .expect("iplock is an XDP program");
    let info = prog.info().expect("program info");
    eprintln!(
        "verifier, log at debug: {} instructions processed, {} translated bytes",
        info.verified_instruction_count()
            .expect("kernel reports it"),
        info.size_translated().expect("kernel reports it"),
    );
    // The loader pins exactly these, so a map missing here breaks it and an
    // extra map would silently lose its state on every reload.
    // Sections of constants the compiler emits (`.rodata*`) become maps too;
    // they hold no state.
    let mut in_object: Vec<&str> = ebpf
        .maps()
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with('.'))
        .collect();
    let mut pinned = names::PINNED_MAPS.to_vec();
    in_object.sort_unstable();
    pinned.sort_unstable();
    assert_eq!(in_object, pinned, "maps in the object");

    // Type and size of the maps of the knock engine.
    for name in [
        names::MAP_SLOT,
        names::MAP_CONFIG,
        names::MAP_SOURCES,
        names::MAP_BANS,
        names::MAP_KNOCK_BANS,
        names::MAP_ALLOW,
        names::MAP_ALLOW_B,
        names::MAP_COUNTERS,
        names::MAP_IFACES,
        names::MAP_EVENTS,
        names::MAP_LOGS,
        names::MAP_DECISIONS,
        names::MAP_CROWDSEC,
    ] {
        let (data, max_entries) = match (name, ebpf.map(name).expect("checked above")) {
            (names::MAP_SLOT, Map::Array(d)) => (d, 1),
            (names::MAP_CONFIG, Map::Array(d)) => (d, names::CONFIG_SLOTS),
            (names::MAP_SOURCES, Map::LruHashMap(d)) => (d, names::DEFAULT_MAX_SOURCES),
            (names::MAP_BANS, Map::LruHashMap(d)) => (d, names::DEFAULT_MAX_BANS),
            (names::MAP_KNOCK_BANS, Map::LruHashMap(d)) => (d, names::DEFAULT_MAX_KNOCK_BANS),
            (names::MAP_ALLOW | names::MAP_ALLOW_B, Map::LpmTrie(d)) => (d, names::MAX_ALLOW),
            (names::MAP_COUNTERS, Map::PerCpuArray(d)) => (d, COUNTERS),
            (names::MAP_IFACES, Map::Array(d)) => (d, names::MAX_IFACES as u32),
            (names::MAP_EVENTS, Map::RingBuf(d)) => (d, iplock_common::events::EVENTS_BYTES),
            (names::MAP_LOGS, Map::RingBuf(d)) => (d, names::LOGS_BYTES),
            (names::MAP_DECISIONS, Map::LpmTrie(d)) => (d, names::DEFAULT_MAX_DECISIONS),
            (names::MAP_CROWDSEC, Map::Array(d)) => (d, 1),
            _ => panic!("map {name} has the wrong type"),
        };
        let info = data.info().expect("map info");
        assert_eq!(info.max_entries(), max_entries, "max_entries of {name}");
    }
}

/// CrowdSec decisions (issue 14): read only with FLAG_CROWDSEC; an exact
/// address and a range in the one trie, IPv4 and IPv6; every port dropped
/// while in force, nothing written, the allow list winning.
#[test]
fn crowdsec_decisions_drop_with_the_flag_only() {
    if !privileged("crowdsec_decisions_drop_with_the_flag_only") {
        return;
    }
    let off = config();
    let on = config_with(|c| c.flags |= FLAG_CROWDSEC);
    let mut h = Harness::new(&off);
    let now = iplock::system::clock::now_ns();
    let seed = |h: &mut Harness| {
        h.decision("192.0.2.2/32", now + 60 * SEC);
        h.decision("198.51.100.0/24", now + 60 * SEC);
        h.decision("2001:db8:0:1::/64", now + 60 * SEC);
        h.decision("192.0.2.3/32", now - SEC); // ended
    };
    seed(&mut h);
    for f in [tcp(A, HTTP, SYN), tcp(C, SSH, ACK), udp(C6, DNS)] {
        assert_eq!(h.run(&f.bytes()), Pass, "without the flag: {f:?}");
    }
    h.reset(&on);
    seed(&mut h);
    for f in [
        tcp(A, HTTP, SYN),
        tcp(A, SSH, ACK),
        tcp(A, 100, SYN),
        udp(A, DNS),
        tcp(C, HTTP, ACK),
        tcp("198.51.100.255", SSH, SYN),
        udp(C6, DNS),
        tcp("2001:db8:0:1:ffff::9", HTTP, SYN),
    ] {
        assert_eq!(h.run(&f.bytes()), Drop, "decided: {f:?}");
    }
    for f in [
        tcp(B, HTTP, SYN),              // its decision ended
        tcp("198.51.101.1", HTTP, SYN), // outside the /24
        tcp(A6, HTTP, SYN),             // outside the /64
        tcp("2001:db8:0:2::1", HTTP, ACK),
    ] {
        assert_eq!(h.run(&f.bytes()), Pass, "not decided: {f:?}");
    }
    assert!(h.bans().is_empty(), "a decision writes no ban");
    assert!(h.sources().is_empty(), "a decision writes no state");
    let counters = h.counters();
    assert_eq!(counters.get("banned"), Some(&8), "{counters:?}");
    // The allow list wins over a decision.
    h.allow("198.51.100.0/28", 0);
    assert_eq!(h.run(&tcp(C, SSH, SYN).bytes()), Pass);
    assert_eq!(h.run(&tcp("198.51.100.200", SSH, ACK).bytes()), Drop);
}

/// Contract item 1: a source in the allow list passes.
#[test]
fn allow_list_passes() {
    run_cases(
        "allow_list_passes",
        &[
            Case {
                name: "IPv4 /24 (a /120 on the v4-mapped key) passes a SYN, a knock and a trap",
                config: config_with(|c| {
                    c.traps[0] = TRAP;
                    c.trap_count = 1;
                }),
                seed: vec![Seed::Allow {
                    cidr: "192.0.2.0/24",
                    for_s: None,
                }],
                frames: vec![
                    (tcp(A, SSH, SYN), Pass),
                    (tcp(B, 100, SYN), Pass),
                    (udp(B, TRAP), Pass),
                    (tcp(C, SSH, SYN), Drop),
                ],
                bans: vec![ban(C, BAN_CLOSED_DOOR)],
                counters: vec![(Allowed, 3), (DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "IPv4 /32 covers only that address",
                seed: vec![Seed::Allow {
                    cidr: "192.0.2.2/32",
                    for_s: None,
                }],
                frames: vec![(tcp(A, SSH, SYN), Pass), (tcp(B, SSH, SYN), Drop)],
                bans: vec![ban(B, BAN_CLOSED_DOOR)],
                counters: vec![(Allowed, 1), (DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "IPv6 /64 passes its hosts only",
                seed: vec![Seed::Allow {
                    cidr: "2001:db8::/64",
                    for_s: None,
                }],
                frames: vec![(tcp(A6, SSH, SYN), Pass), (tcp(C6, SSH, SYN), Drop)],
                bans: vec![ban("2001:db8:0:1::", BAN_CLOSED_DOOR)],
                counters: vec![(Allowed, 1), (DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "0.0.0.0/0 (::ffff:0:0/96) covers every IPv4 source and no IPv6 one",
                seed: vec![Seed::Allow {
                    cidr: "0.0.0.0/0",
                    for_s: None,
                }],
                config: config_with(|c| c.flags = 0),
                frames: vec![
                    (tcp(A, SSH, SYN), Pass),
                    (tcp(A6, SSH, SYN), Drop),
                    (tcp(C, SSH, SYN), Pass),
                ],
                counters: vec![(Allowed, 2), (DoorClosed, 1)],
                ..Case::default()
            },
            Case {
                name: "an entry with a future end passes, an expired one does not",
                seed: vec![
                    Seed::Allow {
                        cidr: "192.0.2.2/32",
                        for_s: Some(60),
                    },
                    Seed::Allow {
                        cidr: "192.0.2.3/32",
                        for_s: Some(-1),
                    },
                ],
                frames: vec![(tcp(A, SSH, SYN), Pass), (tcp(B, SSH, SYN), Drop)],
                bans: vec![ban(B, BAN_CLOSED_DOOR)],
                counters: vec![(Allowed, 1), (DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "the allow list wins over a ban, for any traffic",
                seed: vec![
                    Seed::Allow {
                        cidr: "192.0.2.0/24",
                        for_s: None,
                    },
                    Seed::Ban {
                        ip: A,
                        for_s: 60,
                        reason: BAN_MANUAL,
                    },
                ],
                frames: vec![(tcp(A, SSH, SYN), Pass), (udp(A, DNS), Pass)],
                bans: vec![ban(A, BAN_MANUAL)],
                counters: vec![(Allowed, 2)],
                ..Case::default()
            },
        ],
    );
}

/// Contract item 2: a source under an unexpired ban is dropped; IPv6 bans
/// cover the /64.
#[test]
fn bans_drop_until_they_expire() {
    run_cases(
        "bans_drop_until_they_expire",
        &[
            Case {
                name: "an active ban drops every TCP/UDP packet, knocks included",
                seed: vec![Seed::Ban {
                    ip: A,
                    for_s: 60,
                    reason: BAN_MANUAL,
                }],
                frames: vec![
                    (udp(A, DNS), Drop),
                    (tcp(A, HTTP, SYN), Drop),
                    (tcp(A, SSH, ACK), Drop),
                    (tcp(A, 100, SYN), Drop),
                    (tcp(B, HTTP, SYN), Pass),
                ],
                bans: vec![ban(A, BAN_MANUAL)],
                counters: vec![(Banned, 4), (Unrelated, 1)],
                ..Case::default()
            },
            Case {
                name: "an expired ban passes and is left for user space to reap",
                seed: vec![Seed::Ban {
                    ip: A,
                    for_s: -1,
                    reason: BAN_WRONG_KNOCK,
                }],
                frames: vec![(udp(A, DNS), Pass), (tcp(A, 100, SYN), Drop)],
                sources: vec![src(A, 1, false)],
                bans: vec![(
                    A,
                    Ban {
                        reason: BAN_WRONG_KNOCK,
                        active: false,
                    },
                )],
                counters: vec![(Unrelated, 1), (KnockAdvanced, 1)],
                ..Case::default()
            },
            Case {
                name: "an IPv6 ban covers the /64 and nothing else",
                seed: vec![Seed::Ban {
                    ip: AB6_NET,
                    for_s: 60,
                    reason: BAN_MANUAL,
                }],
                frames: vec![
                    (udp(A6, DNS), Drop),
                    (udp(B6, DNS), Drop),
                    (udp(C6, DNS), Pass),
                ],
                bans: vec![ban(AB6_NET, BAN_MANUAL)],
                counters: vec![(Banned, 2), (Unrelated, 1)],
                ..Case::default()
            },
            Case {
                name: "a ban the program sets on an IPv6 source is keyed by its /64",
                frames: vec![
                    (tcp(A6, SSH, SYN), Drop),
                    (udp(B6, DNS), Drop),
                    (udp(C6, DNS), Pass),
                ],
                bans: vec![ban(AB6_NET, BAN_CLOSED_DOOR)],
                counters: vec![(DoorClosed, 1), (BansAdded, 1), (Banned, 1), (Unrelated, 1)],
                ..Case::default()
            },
            Case {
                name: "the IPv6 ban prefix is configurable: /128 bans one address",
                config: config_with(|c| c.ban_prefix_v6 = 128),
                frames: vec![(tcp(A6, SSH, SYN), Drop), (udp(B6, DNS), Pass)],
                bans: vec![ban(A6, BAN_CLOSED_DOOR)],
                counters: vec![(DoorClosed, 1), (BansAdded, 1), (Unrelated, 1)],
                ..Case::default()
            },
            Case {
                name: "the IPv6 ban prefix is configurable: /48 bans the neighbouring /64",
                config: config_with(|c| c.ban_prefix_v6 = 48),
                frames: vec![(tcp(A6, SSH, SYN), Drop), (udp(C6, DNS), Drop)],
                bans: vec![ban(AB6_NET, BAN_CLOSED_DOOR)],
                counters: vec![(DoorClosed, 1), (BansAdded, 1), (Banned, 1)],
                ..Case::default()
            },
            Case {
                name: "knock_clears_ban: a banned source may knock; the sequence lifts the ban",
                config: config_with(|c| c.flags |= FLAG_KNOCK_CLEARS_BAN),
                seed: vec![Seed::Ban {
                    ip: A,
                    for_s: 60,
                    reason: BAN_CLOSED_DOOR,
                }],
                frames: [
                    vec![(udp(A, DNS), Drop), (tcp(A, SSH, SYN), Drop)],
                    knocks(A),
                    vec![(tcp(A, SSH, SYN), Pass), (udp(A, DNS), Pass)],
                ]
                .concat(),
                sources: vec![src(A, 3, true)],
                counters: vec![
                    (Banned, 2),
                    (KnockAdvanced, 2),
                    (DoorOpened, 1),
                    (DoorPassed, 1),
                    (Unrelated, 1),
                ],
                ..Case::default()
            },
        ],
    );
}

/// Contract item 3: a SYN to a protected port passes with the door open,
/// else is dropped (and banned); other TCP to a protected port passes.
#[test]
fn protected_ports_need_an_open_door() {
    run_cases(
        "protected_ports_need_an_open_door",
        &[
            Case {
                name: "SYN without a door drops and bans",
                frames: vec![(tcp(A, SSH, SYN), Drop), (udp(A, DNS), Drop)],
                bans: vec![ban(A, BAN_CLOSED_DOOR)],
                counters: vec![(DoorClosed, 1), (BansAdded, 1), (Banned, 1)],
                ..Case::default()
            },
            Case {
                name: "SYN without a door and the closed-door trigger off drops without a ban",
                config: config_with(|c| c.flags &= !FLAG_BAN_CLOSED_DOOR),
                frames: vec![(tcp(A, SSH, SYN), Drop), (tcp(A, SSH, SYN), Drop)],
                counters: vec![(DoorClosed, 2)],
                ..Case::default()
            },
            Case {
                name: "SYN through an open door passes and writes nothing",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 3,
                    knock_s: -1,
                    open_s: Some(5),
                }],
                frames: vec![(tcp(A, SSH, SYN), Pass), (tcp(B, SSH, SYN), Drop)],
                sources: vec![src(A, 3, true)],
                bans: vec![ban(B, BAN_CLOSED_DOOR)],
                counters: vec![(DoorPassed, 1), (DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "SYN after the open window drops",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 3,
                    knock_s: -11,
                    open_s: Some(-1),
                }],
                frames: vec![(tcp(A, SSH, SYN), Drop)],
                sources: vec![src(A, 3, false)],
                bans: vec![ban(A, BAN_CLOSED_DOOR)],
                counters: vec![(DoorClosed, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "non-SYN TCP to a protected port passes without a door",
                frames: vec![
                    (tcp(A, SSH, ACK), Pass),
                    (tcp(A, SSH, SYN | ACK), Pass),
                    (tcp(A, SSH, PSH | ACK), Pass),
                    (tcp(A, SSH, FIN | ACK), Pass),
                    (tcp(A, SSH, RST), Pass),
                ],
                counters: vec![(ProtectedOther, 5)],
                ..Case::default()
            },
            Case {
                name: "every protected port is guarded; UDP to one is unrelated",
                config: config_with(|c| {
                    c.protect[1] = 2222;
                    c.protect_count = 2;
                    c.flags = 0;
                }),
                frames: vec![
                    (tcp(A, 2222, SYN), Drop),
                    (tcp(A, SSH, SYN), Drop),
                    (udp(A, SSH), Pass),
                ],
                counters: vec![(DoorClosed, 2), (Unrelated, 1)],
                ..Case::default()
            },
        ],
    );
}

/// Contract item 4: knocks advance on the expected step within its timeout
/// and open on the last; repeats are ignored, anything else resets; knocks
/// are dropped.
#[test]
fn knock_sequences() {
    run_cases(
        "knock_sequences",
        &[
            Case {
                name: "the full sequence opens the door for that source only",
                frames: [
                    knocks(A),
                    vec![
                        (tcp(A, SSH, SYN), Pass),
                        (tcp(A, SSH, ACK), Pass),
                        (tcp(B, SSH, SYN), Drop),
                    ],
                ]
                .concat(),
                sources: vec![src(A, 3, true)],
                bans: vec![ban(B, BAN_CLOSED_DOOR)],
                counters: vec![
                    (KnockAdvanced, 2),
                    (DoorOpened, 1),
                    (DoorPassed, 1),
                    (ProtectedOther, 1),
                    (DoorClosed, 1),
                    (BansAdded, 1),
                ],
                ..Case::default()
            },
            Case {
                name: "IPv6 knocks open the door for that address",
                frames: [
                    knocks(A6),
                    vec![(tcp(A6, SSH, SYN), Pass), (tcp(C6, SSH, SYN), Drop)],
                ]
                .concat(),
                sources: vec![src(A6, 3, true)],
                bans: vec![ban("2001:db8:0:1::", BAN_CLOSED_DOOR)],
                counters: vec![
                    (KnockAdvanced, 2),
                    (DoorOpened, 1),
                    (DoorPassed, 1),
                    (DoorClosed, 1),
                    (BansAdded, 1),
                ],
                ..Case::default()
            },
            Case {
                name: "each step advances the source's progress",
                frames: vec![(tcp(A, 100, SYN), Drop), (udp(A, 300), Drop)],
                sources: vec![src(A, 2, false)],
                counters: vec![(KnockAdvanced, 2)],
                ..Case::default()
            },
            Case {
                name: "a retransmitted knock is ignored, also after the door opened",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (tcp(A, 100, SYN), Drop),
                    (udp(A, 300), Drop),
                    (udp(A, 300), Drop),
                    (tcp(A, 200, SYN), Drop),
                    (tcp(A, 200, SYN), Drop),
                ],
                sources: vec![src(A, 3, true)],
                counters: vec![(KnockAdvanced, 2), (KnockRepeated, 3), (DoorOpened, 1)],
                ..Case::default()
            },
            Case {
                name: "a skipped step is a wrong knock: reset and ban",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (tcp(A, 200, SYN), Drop),
                    (udp(A, 300), Drop),
                ],
                sources: vec![src(A, 0, false)],
                bans: vec![ban(A, BAN_WRONG_KNOCK)],
                counters: vec![
                    (KnockAdvanced, 1),
                    (WrongKnock, 1),
                    (BansAdded, 1),
                    (Banned, 1),
                ],
                ..Case::default()
            },
            Case {
                name: "a wrong first knock bans and writes no source state",
                frames: vec![(udp(A, 300), Drop)],
                bans: vec![ban(A, BAN_WRONG_KNOCK)],
                counters: vec![(WrongKnock, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "with the wrong-knock trigger off a wrong knock only resets",
                config: config_with(|c| c.flags &= !FLAG_BAN_WRONG_KNOCK),
                frames: [
                    vec![(tcp(A, 100, SYN), Drop), (tcp(A, 200, SYN), Drop)],
                    knocks(A),
                ]
                .concat(),
                sources: vec![src(A, 3, true)],
                counters: vec![(KnockAdvanced, 3), (WrongKnock, 1), (DoorOpened, 1)],
                ..Case::default()
            },
            Case {
                name: "a wrong knock does not close an open door",
                config: config_with(|c| c.flags &= !FLAG_BAN_WRONG_KNOCK),
                seed: vec![Seed::Source {
                    ip: A,
                    step: 3,
                    knock_s: -1,
                    open_s: Some(5),
                }],
                frames: vec![(udp(A, 300), Drop), (tcp(A, SSH, SYN), Pass)],
                sources: vec![src(A, 0, true)],
                counters: vec![(WrongKnock, 1), (DoorPassed, 1)],
                ..Case::default()
            },
            Case {
                name: "the first step restarts the sequence at any point",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (udp(A, 300), Drop),
                    (tcp(A, 100, SYN), Drop),
                ],
                sources: vec![src(A, 1, false)],
                counters: vec![(KnockAdvanced, 3)],
                ..Case::default()
            },
            Case {
                name: "expired progress counts as none: the next step is a wrong knock",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 2,
                    knock_s: -11,
                    open_s: None,
                }],
                frames: vec![(tcp(A, 200, SYN), Drop)],
                sources: vec![src(A, 0, false)],
                bans: vec![ban(A, BAN_WRONG_KNOCK)],
                counters: vec![(WrongKnock, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "expired progress counts as none: the first step starts afresh",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 2,
                    knock_s: -11,
                    open_s: None,
                }],
                frames: vec![(tcp(A, 100, SYN), Drop)],
                sources: vec![src(A, 1, false)],
                counters: vec![(KnockAdvanced, 1)],
                ..Case::default()
            },
            Case {
                name: "a step's own timeout applies: udp:300/20s still counts after 15 s",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 1,
                    knock_s: -15,
                    open_s: None,
                }],
                frames: vec![(udp(A, 300), Drop)],
                sources: vec![src(A, 2, false)],
                counters: vec![(KnockAdvanced, 1)],
                ..Case::default()
            },
            Case {
                name: "a step's own timeout applies: udp:300/20s is late after 21 s",
                seed: vec![Seed::Source {
                    ip: A,
                    step: 1,
                    knock_s: -21,
                    open_s: None,
                }],
                frames: vec![(udp(A, 300), Drop)],
                sources: vec![src(A, 0, false)],
                bans: vec![ban(A, BAN_WRONG_KNOCK)],
                counters: vec![(WrongKnock, 1), (BansAdded, 1)],
                ..Case::default()
            },
            Case {
                name: "only a bare SYN knocks on a tcp step; other TCP there is dropped as noise",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (tcp(A, 300, ACK), Pass),
                    (tcp(A, 200, ACK), Drop),
                    (tcp(A, 200, SYN | ACK), Drop),
                    (tcp(A, 100, RST), Drop),
                    (udp(A, 300), Drop),
                ],
                sources: vec![src(A, 2, false)],
                counters: vec![(KnockAdvanced, 2), (Unrelated, 1), (KnockNoise, 3)],
                ..Case::default()
            },
            Case {
                name: "a udp step takes any datagram; UDP to a tcp step's port is no knock but resets",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (udp(A, 200), Pass),
                    (udp(A, 100), Pass),
                    (tcp(A, 100, SYN), Drop),
                    (udp(A, 300), Drop),
                ],
                sources: vec![src(A, 2, false)],
                counters: vec![(KnockAdvanced, 3), (KnockReset, 1), (Unrelated, 1)],
                ..Case::default()
            },
            Case {
                name: "established traffic and ICMP between knocks change nothing",
                frames: vec![
                    (tcp(A, 100, SYN), Drop),
                    (tcp(A, HTTP, ACK), Pass),
                    (tcp(A, DNS, ACK | PSH), Pass),
                    (icmp(A), Pass),
                    (udp(A, 300), Drop),
                    (tcp(A, 200, SYN), Drop),
                ],
                sources: vec![src(A, 3, true)],
                counters: vec![
                    (KnockAdvanced, 2),
                    (DoorOpened, 1),
                    (Unrelated, 2),
                    (NotClassified, 1),
                ],
                ..Case::default()
            },
            Case {
                name: "a one-step udp sequence opens on one datagram",
                config: config_with(|c| {
                    c.steps = [Step::default(); names::MAX_STEPS];
                    c.steps[0] = step(PROTO_UDP, 5000, 10);
                    c.step_count = 1;
                }),
                frames: vec![
                    (udp(A, 5000), Drop),
                    (udp(A, 5000), Drop),
                    (tcp(A, SSH, SYN), Pass),
                ],
                sources: vec![src(A, 1, true)],
                counters: vec![(DoorOpened, 1), (KnockRepeated, 1), (DoorPassed, 1)],
                ..Case::default()
            },
            Case {
                name: "an eight-step sequence opens on its last step",
                config: config_with(|c| {
                    for i in 0..names::MAX_STEPS {
                        let proto = if i % 2 == 0 { PROTO_TCP } else { PROTO_UDP };
                        c.steps[i] = step(proto, 1000 + 7 * i as u16, 10);
                    }
                    c.step_count = names::MAX_STEPS as u32;
                }),
                frames: (0..names::MAX_STEPS)
                    .map(|i| {
                        let port = 1000 + 7 * i as u16;
                        let f = if i % 2 == 0 {
                            tcp(A, port, SYN)
                        } else {
                            udp(A, port)
                        };
                        (f, Drop)
                    })
                    .chain([(tcp(A, SSH, SYN), Pass)])
                    .collect(),
                sources: vec![src(A, 8, true)],
                counters: vec![(KnockAdvanced, 7), (DoorOpened, 1), (DoorPassed, 1)],
                ..Case::default()
            },
        ],
    );
}

/// Contract item 5: a packet to a trap port bans and is dropped.
#[test]
fn trap_ports_ban() {
    let traps = |c: &mut Config| {
        c.traps[0] = TRAP;
        c.traps[1] = 31337;
        c.trap_count = 2;
    };
    run_cases(
        "trap_ports_ban",
        &[
            Case {
                name: "any TCP to a trap port bans, then everything is dropped",
                config: config_with(traps),
                frames: vec![(tcp(A, TRAP, ACK), Drop), (udp(A, DNS), Drop)],
                bans: vec![ban(A, BAN_TRAP)],
                counters: vec![(Trapped, 1), (BansAdded, 1), (Banned, 1)],
                ..Case::default()
            },
            Case {
                name: "UDP to a trap port bans, IPv6 by its /64",
                config: config_with(traps),
                frames: vec![(udp(A6, 31337), Drop), (tcp(B6, HTTP, SYN), Drop)],
                bans: vec![ban(AB6_NET, BAN_TRAP)],
                counters: vec![(Trapped, 1), (BansAdded, 1), (Banned, 1)],
                ..Case::default()
            },
            Case {
                name: "a trap port also bans with both knock triggers off",
                config: config_with(|c| {
                    traps(c);
                    c.flags = 0;
                }),
                frames: vec![(tcp(A, TRAP, SYN), Drop)],
                bans: vec![ban(A, BAN_TRAP)],
                counters: vec![(Trapped, 1), (BansAdded, 1)],
                ..Case::default()
            },
        ],
    );
}

/// Contract item 6: everything else passes untouched: non-IP, non-TCP/UDP,
/// non-first fragments and frames too short to classify, which includes
/// frames whose IP length fields the kernel rejects.
/// Issue 9: by default a knock-port packet is counted and goes on to the
/// host's stack, so it gets the answer of every unused port; a banned
/// source gets silence there too; a new connection elsewhere in the middle
/// of a sequence resets it; a wrong-knock ban covers the filter's ports.
#[test]
fn knock_ports_answer_like_the_stack() {
    let stack = |flags: u32| config_with(|c| c.flags = flags);
    let cases = vec![
        Case {
            name: "every knock-port packet passes, counted as before",
            config: stack(FLAG_BAN_WRONG_KNOCK | FLAG_BAN_CLOSED_DOOR),
            frames: vec![
                (tcp(A, 100, SYN), Pass),
                (tcp(A, 100, SYN), Pass),
                (tcp(A, 100, ACK), Pass),
                (tcp(A, 200, FIN), Pass),
                (tcp(A, 200, 0), Pass),
                (udp(A, 300), Pass),
                (tcp(A, 200, SYN), Pass),
                (tcp(A, SSH, SYN), Pass),
                (udp(B, 300), Pass),
                (udp(A6, 300), Pass),
            ],
            sources: vec![src(A, 3, true)],
            bans: vec![ban(B, BAN_WRONG_KNOCK), ban(AB6_NET, BAN_WRONG_KNOCK)],
            counters: vec![
                (KnockAdvanced, 2),
                (KnockRepeated, 1),
                (KnockNoise, 3),
                (DoorOpened, 1),
                (DoorPassed, 1),
                (WrongKnock, 2),
                (BansAdded, 2),
            ],
            ..Case::default()
        },
        Case {
            name: "a banned source's knocks drop like the rest of its traffic",
            config: stack(FLAG_KNOCK_CLEARS_BAN),
            seed: vec![Seed::Ban {
                ip: A,
                for_s: 60,
                reason: BAN_CLOSED_DOOR,
            }],
            frames: vec![
                (tcp(A, HTTP, SYN), Drop),
                (tcp(A, 100, ACK), Drop),
                (tcp(A, 100, SYN), Drop),
            ],
            sources: vec![src(A, 1, false)],
            bans: vec![ban(A, BAN_CLOSED_DOOR)],
            counters: vec![(Banned, 1), (KnockNoise, 1), (KnockAdvanced, 1)],
        },
        Case {
            name: "a wrong-knock ban covers the protected, knock and trap ports only",
            config: stack(FLAG_BAN_CLOSED_DOOR),
            seed: vec![Seed::Ban {
                ip: A,
                for_s: 60,
                reason: BAN_WRONG_KNOCK,
            }],
            frames: vec![
                (tcp(A, HTTP, SYN), Pass),
                (udp(A, DNS), Pass),
                (tcp(A, SSH, SYN), Drop),
                (tcp(A, 100, SYN), Drop),
            ],
            bans: vec![ban(A, BAN_WRONG_KNOCK)],
            counters: vec![(Unrelated, 2), (Banned, 2)],
            ..Case::default()
        },
        Case {
            name: "a new connection elsewhere resets progress, silently",
            config: stack(FLAG_BAN_CLOSED_DOOR),
            frames: vec![
                (tcp(A, 100, SYN), Pass),
                (udp(A, DNS), Pass),
                (udp(A, 300), Pass),
                (tcp(A, 200, SYN), Pass),
                (tcp(A, SSH, SYN), Drop),
                (tcp(B, 100, SYN), Pass),
                (tcp(B, HTTP, SYN), Pass),
                (tcp(B, 100, SYN), Pass),
                (udp(B, 300), Pass),
                (tcp(B, 200, SYN), Pass),
                (tcp(B, SSH, SYN), Pass),
            ],
            sources: vec![src(A, 0, false), src(B, 3, true)],
            bans: vec![ban(A, BAN_CLOSED_DOOR)],
            counters: vec![
                (KnockAdvanced, 4),
                (KnockReset, 2),
                (WrongKnock, 2),
                (DoorClosed, 1),
                (BansAdded, 1),
                (DoorOpened, 1),
                (DoorPassed, 1),
            ],
            ..Case::default()
        },
        Case {
            name: "established traffic elsewhere keeps progress, and an open door stays open",
            config: stack(FLAG_BAN_CLOSED_DOOR),
            frames: vec![
                (tcp(A, 100, SYN), Pass),
                (tcp(A, HTTP, ACK), Pass),
                (udp(A, 300), Pass),
                (tcp(A, 200, SYN), Pass),
                (udp(A, DNS), Pass),
                (tcp(A, SSH, SYN), Pass),
            ],
            sources: vec![src(A, 3, true)],
            counters: vec![
                (KnockAdvanced, 2),
                (Unrelated, 2),
                (DoorOpened, 1),
                (DoorPassed, 1),
            ],
            ..Case::default()
        },
    ];
    run_cases("knock_ports_answer_like_the_stack", &cases);
}

#[test]
fn unclassified_frames_pass_without_state() {
    // Frames that would be a closed-door SYN (drop and ban) if classified.
    let syn = || tcp(A, SSH, SYN);
    let syn6 = || tcp(A6, SSH, SYN);
    let not_classified = |name, frame: Frame| Case {
        name,
        frames: vec![(frame, Pass)],
        counters: vec![(NotClassified, 1)],
        ..Case::default()
    };
    let mut cases = vec![
        not_classified("ARP", non_ip(ETHERTYPE_ARP)),
        not_classified("ARP in a VLAN", non_ip(ETHERTYPE_ARP).vlan(TPID_8021Q)),
        not_classified("ICMP", icmp(A)),
        not_classified("ICMPv6", icmp(A6)),
        not_classified("IPv4 non-first fragment", syn().fragment(2, true)),
        not_classified(
            "IPv4 UDP fragment at offset 1",
            udp(A, 300).fragment(1, true),
        ),
        not_classified("IPv4 last fragment", syn().fragment(185, false)),
        not_classified(
            "IPv6 non-first fragment (offset 1 is no exception)",
            syn6().fragment(1, true),
        ),
        not_classified(
            "IPv6 last fragment behind a hop-by-hop header",
            syn6().ext(Ext::HopByHop { len: 0 }).fragment(2, false),
        ),
        not_classified("Ethernet header only", syn().cut_network(0)),
        not_classified("IPv4 header cut short", syn().cut_network(19)),
        not_classified("IPv4 options cut short", syn().ihl(8).cut_network(28)),
        not_classified("IPv4 IHL below 5", syn().ihl(4)),
        not_classified("IPv4 EtherType with version 6", syn().version(6)),
        not_classified("IPv6 EtherType with version 4", syn6().version(4)),
        not_classified("TCP cut one byte before the flags", syn().cut_transport(13)),
        not_classified(
            "TCP datagram ending one byte before the flags, padded with them",
            syn().carry(13),
        ),
        not_classified("UDP header cut short", udp(A, 300).cut_transport(7)),
        not_classified(
            "UDP datagram ending inside its header",
            udp(A, 300).carry(7).cut_transport(7),
        ),
        not_classified("IPv4 total length below the IHL", syn().ip_len(19)),
        not_classified("IPv4 total length past the frame", syn().ip_len(1500)),
        not_classified("IPv4 IHL past the total length", syn().ihl(15).ip_len(40)),
        not_classified("IPv6 payload length past the frame", syn6().ip_len(1000)),
        not_classified(
            "IPv6 payload length ending before the TCP flags",
            syn6().carry(10),
        ),
        not_classified(
            "IPv6 atomic fragment (no more to come) ending before the flags",
            syn6().fragment(0, false).carry(8),
        ),
        not_classified(
            "IPv6 no next header behind a hop-by-hop header",
            ip_proto(A6, 59).ext(Ext::HopByHop { len: 0 }),
        ),
        not_classified("IPv6 ESP", ip_proto(A6, 50)),
        not_classified(
            "ICMPv6 behind six extension headers",
            (0..6).fold(icmp(A6), |f, _| f.ext(Ext::DestOpts { len: 0 })),
        ),
        not_classified(
            "frame ending inside the VLAN tag",
            syn().vlan(TPID_8021Q).cut_frame(16),
        ),
        not_classified("IPv6 header cut short", syn6().cut_network(39)),
        not_classified(
            "IPv6 extension header cut short",
            syn6().ext(Ext::DestOpts { len: 1 }).cut_network(40 + 12),
        ),
        not_classified(
            "IPv6 TCP cut one byte before the flags",
            syn6().cut_transport(13),
        ),
    ];
    cases.push(Case {
        name: "a banned source's ICMP and non-first fragments pass",
        seed: vec![Seed::Ban {
            ip: A,
            for_s: 60,
            reason: BAN_MANUAL,
        }],
        frames: vec![(icmp(A), Pass), (syn().fragment(2, false), Pass)],
        bans: vec![ban(A, BAN_MANUAL)],
        counters: vec![(NotClassified, 2)],
        ..Case::default()
    });
    cases.push(Case {
        name: "unclassified frames leave knock progress alone",
        frames: vec![
            (tcp(A, 100, SYN), Drop),
            (udp(A, 200).fragment(1, false), Pass),
            (tcp(A, 200, SYN).cut_transport(10), Pass),
            (udp(A, 300), Drop),
        ],
        sources: vec![src(A, 2, false)],
        counters: vec![(KnockAdvanced, 2), (NotClassified, 2)],
        ..Case::default()
    });
    run_cases("unclassified_frames_pass_without_state", &cases);
}

/// Frames built to hide their transport header from the parser while the
/// kernel would still reassemble or parse it are dropped, whatever the
/// source, and change nothing: first fragments that end before the TCP
/// flags or inside the UDP header (RFC 1858, RFC 7112), IPv4 TCP fragments
/// at offset 1, which can only be rewriting the first one's flags, and IPv6
/// header chains longer than the parser follows.
#[test]
fn malformed_frames_drop_without_state() {
    let malformed = |name, frame: Frame| Case {
        name,
        frames: vec![(frame, Drop)],
        counters: vec![(Malformed, 1)],
        ..Case::default()
    };
    let opts = |n: usize, f: Frame| (0..n).fold(f, |f, _| f.ext(Ext::DestOpts { len: 0 }));
    let mut cases = vec![
        malformed(
            "IPv4 first fragment holding only the ports of a SYN to 22",
            tcp(A, SSH, SYN).fragment(0, true).carry(8).cut_transport(8),
        ),
        malformed(
            "IPv4 first fragment of 8 TCP bytes, padded with an ACK's flags",
            tcp(A, SSH, ACK).fragment(0, true).carry(8),
        ),
        malformed(
            "IPv4 first fragment ending one byte before the flags",
            tcp(A, SSH, ACK).fragment(0, true).carry(13),
        ),
        malformed(
            "IPv4 first fragment without transport bytes",
            tcp(A, SSH, SYN).fragment(0, true).carry(0),
        ),
        malformed(
            "IPv4 first fragment with half a UDP header",
            udp(A, 300).fragment(0, true).carry(4),
        ),
        malformed(
            "IPv4 TCP fragment at offset 1",
            tcp(A, SSH, SYN).fragment(1, false),
        ),
        malformed(
            "IPv4 TCP fragment at offset 1 with more to come",
            tcp(A, SSH, SYN).fragment(1, true),
        ),
        malformed(
            "IPv6 first fragment of 8 TCP bytes, padded with an ACK's flags",
            tcp(A6, SSH, ACK).fragment(0, true).carry(8),
        ),
        malformed(
            "IPv6 first fragment with half a UDP header",
            udp(A6, 300).fragment(0, true).carry(4),
        ),
        malformed(
            "IPv6 first fragment behind a hop-by-hop header, without transport bytes",
            tcp(A6, SSH, SYN)
                .ext(Ext::HopByHop { len: 0 })
                .fragment(0, true)
                .carry(0),
        ),
        malformed(
            "IPv6 first fragment whose header chain runs past it",
            tcp(A6, SSH, SYN)
                .fragment(0, true)
                .ext(Ext::DestOpts { len: 1 })
                .ip_len(8 + 8),
        ),
        malformed(
            "a SYN to 22 behind seven destination-options headers",
            opts(7, tcp(A6, SSH, SYN)),
        ),
        malformed("ICMPv6 behind seven extension headers", opts(7, icmp(A6))),
        malformed(
            "six extension headers and a seventh, an atomic fragment header",
            opts(6, tcp(A6, SSH, SYN)).fragment(0, false),
        ),
        malformed(
            "seven extension headers, one an authentication header",
            opts(6, udp(A6, 300)).ext(Ext::Auth { len: 1 }),
        ),
        // Linux strips any number of priority tags and delivers the inside.
        malformed(
            "a SYN to 22 in three VLAN tags",
            tcp(A, SSH, SYN)
                .vlan(TPID_8021AD)
                .vlan(TPID_8021Q)
                .vlan(TPID_8021Q),
        ),
        malformed(
            "an IPv6 SYN to 22 in three 802.1Q tags",
            tcp(A6, SSH, SYN)
                .vlan(TPID_8021Q)
                .vlan(TPID_8021Q)
                .vlan(TPID_8021Q),
        ),
        malformed(
            "ARP in three VLAN tags",
            non_ip(ETHERTYPE_ARP)
                .vlan(TPID_8021Q)
                .vlan(TPID_8021Q)
                .vlan(TPID_8021Q),
        ),
        malformed(
            "a knock from an IPv4-mapped IPv6 source",
            tcp(MAPPED_A, 100, SYN),
        ),
        malformed(
            "a SYN to 22 from an IPv4-mapped IPv6 source",
            tcp(MAPPED_A, SSH, SYN),
        ),
    ];
    // A mapped source must not touch the IPv4 address's state: neither
    // knock for it nor ban it.
    cases.push(Case {
        name: "IPv4-mapped IPv6 knocks change nothing for the IPv4 address",
        frames: vec![
            (tcp(MAPPED_A, 100, SYN), Drop),
            (udp(MAPPED_A, 300), Drop),
            (tcp(MAPPED_A, 200, SYN), Drop),
            (tcp(A, SSH, SYN), Drop),
        ],
        bans: vec![ban(A, BAN_CLOSED_DOOR)],
        counters: vec![(Malformed, 3), (DoorClosed, 1), (BansAdded, 1)],
        ..Case::default()
    });
    cases.push(Case {
        name: "malformed frames drop from an allowed source and an open door, and change nothing",
        seed: vec![
            Seed::Allow {
                cidr: "192.0.2.2/32",
                for_s: None,
            },
            Seed::Source {
                ip: B,
                step: 3,
                knock_s: -1,
                open_s: Some(10),
            },
            Seed::Source {
                ip: C,
                step: 1,
                knock_s: -1,
                open_s: None,
            },
        ],
        frames: vec![
            (tcp(A, SSH, SYN).fragment(0, true).carry(8), Drop),
            (tcp(B, SSH, SYN).fragment(0, true).carry(8), Drop),
            (tcp(C, SSH, SYN).fragment(1, false), Drop),
            (udp(C, 300).fragment(0, true).carry(0), Drop),
            (tcp(A, SSH, SYN), Pass),
            (tcp(B, SSH, SYN), Pass),
            (udp(C, 300), Drop),
        ],
        sources: vec![src(B, 3, true), src(C, 2, false)],
        counters: vec![
            (Malformed, 4),
            (Allowed, 1),
            (DoorPassed, 1),
            (KnockAdvanced, 1),
        ],
        ..Case::default()
    });
    run_cases("malformed_frames_drop_without_state", &cases);
}

/// The parser reaches TCP/UDP through VLAN tags, IPv4 options and IPv6
/// extension headers: each frame here is a first knock, so a classified
/// frame leaves its source at step 1.
#[test]
fn parser_reaches_the_transport_header() {
    let first_knock = |name, frame: Frame, src_ip: &'static str| Case {
        name,
        frames: vec![(frame, Drop)],
        sources: vec![src(src_ip, 1, false)],
        counters: vec![(KnockAdvanced, 1)],
        ..Case::default()
    };
    let k = || tcp(A, 100, SYN);
    let k6 = || tcp(A6, 100, SYN);
    let cases = [
        first_knock("no VLAN tag", k(), A),
        first_knock("one 802.1Q tag", k().vlan(TPID_8021Q), A),
        first_knock("one 802.1ad tag", k().vlan(TPID_8021AD), A),
        first_knock(
            "802.1ad then 802.1Q",
            k().vlan(TPID_8021AD).vlan(TPID_8021Q),
            A,
        ),
        first_knock("two 802.1Q tags", k().vlan(TPID_8021Q).vlan(TPID_8021Q), A),
        first_knock(
            "IPv6 in two VLAN tags",
            k6().vlan(TPID_8021AD).vlan(TPID_8021Q),
            A6,
        ),
        first_knock("IPv4 IHL 6", k().ihl(6), A),
        first_knock("IPv4 IHL 15 (40 bytes of options)", k().ihl(15), A),
        first_knock(
            "IPv4 options and two VLAN tags",
            k().ihl(9).vlan(TPID_8021AD).vlan(TPID_8021Q),
            A,
        ),
        first_knock("IPv4 first fragment", k().fragment(0, true), A),
        first_knock(
            "IPv4 first fragment of 16 TCP bytes, flags included",
            k().fragment(0, true).carry(16),
            A,
        ),
        first_knock(
            "TCP header through the flags byte only",
            k().carry(14).cut_transport(14),
            A,
        ),
        first_knock(
            "TCP data offset 0, which the kernel rejects later",
            k().data_offset(0),
            A,
        ),
        first_knock(
            "TCP data offset 15, past the segment",
            k().data_offset(15),
            A,
        ),
        first_knock("IPv6 hop-by-hop", k6().ext(Ext::HopByHop { len: 0 }), A6),
        first_knock("IPv6 routing", k6().ext(Ext::Routing { len: 2 }), A6),
        first_knock(
            "IPv6 destination options",
            k6().ext(Ext::DestOpts { len: 3 }),
            A6,
        ),
        first_knock("IPv6 first fragment", k6().fragment(0, true), A6),
        first_knock(
            "IPv6 first fragment of 16 TCP bytes, flags included",
            k6().fragment(0, true).carry(16),
            A6,
        ),
        first_knock(
            "IPv6 authentication header",
            k6().ext(Ext::Auth { len: 4 }),
            A6,
        ),
        first_knock(
            "IPv6 payload length 0 behind hop-by-hop (a jumbogram): the frame bounds it",
            k6().ext(Ext::HopByHop { len: 0 }).ip_len(0),
            A6,
        ),
        first_knock(
            "six IPv6 extension headers",
            k6().ext(Ext::HopByHop { len: 1 })
                .ext(Ext::DestOpts { len: 0 })
                .ext(Ext::Routing { len: 2 })
                .fragment(0, true)
                .ext(Ext::DestOpts { len: 0 })
                .ext(Ext::DestOpts { len: 1 }),
            A6,
        ),
        first_knock(
            "six IPv6 extension headers, two of them authentication headers",
            k6().ext(Ext::Auth { len: 1 })
                .ext(Ext::HopByHop { len: 0 })
                .fragment(0, true)
                .ext(Ext::Auth { len: 6 })
                .ext(Ext::Routing { len: 0 })
                .ext(Ext::DestOpts { len: 0 }),
            A6,
        ),
        first_knock(
            "IPv6 extension headers in a VLAN",
            k6().vlan(TPID_8021Q)
                .ext(Ext::HopByHop { len: 0 })
                .ext(Ext::DestOpts { len: 0 }),
            A6,
        ),
    ];
    let mut cases = Vec::from(cases);
    cases.push(Case {
        name: "UDP header without payload, padded; UDP knock through IPv4 options",
        frames: vec![
            (tcp(A, 100, SYN), Drop),
            (udp(A, 300).ihl(7).carry(8), Drop),
        ],
        sources: vec![src(A, 2, false)],
        counters: vec![(KnockAdvanced, 2)],
        ..Case::default()
    });
    cases.push(Case {
        name: "UDP knock behind IPv6 extension headers",
        frames: vec![
            (tcp(A6, 100, SYN), Drop),
            (
                udp(A6, 300).ext(Ext::HopByHop { len: 0 }).fragment(0, true),
                Drop,
            ),
        ],
        sources: vec![src(A6, 2, false)],
        counters: vec![(KnockAdvanced, 2)],
        ..Case::default()
    });
    cases.push(Case {
        name: "zero ports are ports like any other",
        frames: vec![
            (tcp(A, 0, SYN).sport(0), Pass),
            (udp(A, 0).sport(0), Pass),
            (tcp(A, 100, SYN).sport(0), Drop),
        ],
        sources: vec![src(A, 1, false)],
        counters: vec![(Unrelated, 2), (KnockAdvanced, 1)],
        ..Case::default()
    });
    cases.push(Case {
        name: "TCP flags are read through extension headers and VLAN tags",
        frames: vec![
            (
                tcp(A6, SSH, ACK)
                    .vlan(TPID_8021Q)
                    .ext(Ext::DestOpts { len: 0 }),
                Pass,
            ),
            (
                tcp(A6, SSH, SYN)
                    .vlan(TPID_8021Q)
                    .ext(Ext::DestOpts { len: 0 }),
                Drop,
            ),
        ],
        bans: vec![ban(AB6_NET, BAN_CLOSED_DOOR)],
        counters: vec![(ProtectedOther, 1), (DoorClosed, 1), (BansAdded, 1)],
        ..Case::default()
    });
    run_cases("parser_reaches_the_transport_header", &cases);
}

/// The program's clock is user space's (CLOCK_MONOTONIC_COARSE) and the durations of the config
/// land in the maps as given: user space computes remaining time from them.
#[test]
fn timestamps_are_boot_time() {
    if !privileged("timestamps_are_boot_time") {
        return;
    }
    let h = Harness::new(&config());
    let cfg = h.config();
    let before = iplock::system::clock::now_ns();
    for (frame, want) in knocks(A) {
        assert_eq!(h.run(&frame.bytes()), want);
    }
    let after = iplock::system::clock::now_ns();
    let s = h.sources()[&ip(A)];
    assert!(
        (before..=after).contains(&s.last_knock_ns),
        "last knock {} not within [{before}, {after}]",
        s.last_knock_ns
    );
    assert_eq!(s.open_until_ns, s.last_knock_ns + cfg.open_window_ns);

    // A repeat is ignored entirely: the time of the last knock stays.
    assert_eq!(h.run(&tcp(A, 200, SYN).bytes()), Drop);
    assert_eq!(h.sources()[&ip(A)], s);

    let before = iplock::system::clock::now_ns();
    assert_eq!(h.run(&tcp(B, SSH, SYN).bytes()), Drop);
    let after = iplock::system::clock::now_ns();
    let b = h.bans()[&ip(B)];
    assert!(
        (before + cfg.ban_time_ns..=after + cfg.ban_time_ns).contains(&b.until_ns),
        "ban until {} not one ban time after [{before}, {after}]",
        b.until_ns
    );
}

/// What the program's log passes to the `log` crate.
#[derive(Clone, Default)]
struct Records(std::sync::Arc<std::sync::Mutex<Vec<(log::Level, String, String)>>>);

impl log::Log for Records {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, r: &log::Record) {
        let mut records = self.0.lock().expect("records");
        records.push((r.level(), r.target().to_string(), r.args().to_string()));
    }

    fn flush(&self) {}
}

/// The log records one malformed frame produces with the program's log at
/// `level`.
fn records_of(level: log::LevelFilter, frame: &Frame) -> Vec<(log::Level, String, String)> {
    let mut ebpf = harness::load_with(Some(1024), level);
    let records = Records::default();
    let mut logger = aya_log::EbpfLogger::init_with_logger(&mut ebpf, records.clone())
        .expect("the object has the log ring");
    let prog: &Xdp = ebpf
        .program(names::PROGRAM)
        .expect("program")
        .try_into()
        .expect("XDP program");
    let action = aya::programs::TestRun::test_run(
        prog,
        aya::programs::TestRunOptions {
            data_in: Some(&frame.bytes()),
            ..Default::default()
        },
    )
    .expect("BPF_PROG_TEST_RUN")
    .return_value;
    assert_eq!(
        harness::verdict(action),
        Some(Drop),
        "a malformed frame is dropped"
    );
    logger.flush();
    records.0.lock().expect("records").clone()
}

/// Issue 11: at debug level the program says why it dropped a frame as
/// malformed; below it, nothing reaches the log ring.
#[test]
fn malformed_frames_are_logged_at_debug_only() {
    if !privileged("malformed_frames_are_logged_at_debug_only") {
        return;
    }
    let third_tag = tcp(A, SSH, SYN)
        .vlan(TPID_8021AD)
        .vlan(TPID_8021Q)
        .vlan(TPID_8021Q);
    let got = records_of(log::LevelFilter::Debug, &third_tag);
    assert_eq!(
        got,
        vec![(
            log::Level::Debug,
            "iplock::xdp".to_string(),
            "dropped a malformed frame: a third VLAN tag".to_string()
        )]
    );
    let offset_one = tcp(A, SSH, SYN).fragment(1, false);
    let got = records_of(log::LevelFilter::Trace, &offset_one);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].2.ends_with("an IPv4 TCP fragment at offset 1"),
        "{got:?}"
    );
    for level in [log::LevelFilter::Off, log::LevelFilter::Info] {
        assert_eq!(records_of(level, &third_tag), vec![], "at {level}");
    }
}
