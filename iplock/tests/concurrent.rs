//! Concurrency: two threads, each pinned to its own CPU, run the real XDP
//! program with BPF_PROG_TEST_RUN on frames of one source at the same time,
//! as RSS does when it spreads a client's packets over queues. The program
//! reads the source's entry, decides and writes a whole new entry back, so
//! two CPUs may interleave their reads and writes, or (an LRU map reuses a
//! freed element at once) read an entry while it is rewritten. Whatever
//! they do, no door may open that no order of the packets would open, and
//! no ban may be lost; progress may be, as if a packet had been.
//!
//! The program counts per CPU, and BPF_PROG_TEST_RUN runs it on the
//! caller's CPU, so the counters tell the two threads' packets apart.

#[path = "kernel/frame.rs"]
#[allow(dead_code)] // shared with kernel.rs and hostile.rs; each uses part of it
mod frame;
#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with kernel.rs and hostile.rs; each uses part of it
mod harness;

use std::sync::Barrier;
use std::time::Instant;

use frame::{SYN, tcp, udp};
use harness::{Harness, privileged, verdict};
use iplock_common::config::{Config, FLAG_BAN_CLOSED_DOOR, Step};
use iplock_common::counters::Counter::{self, *};
use iplock_common::decide::Verdict::{self, Drop, Pass};
use iplock_common::names;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP};
use iplock_common::state::BAN_CLOSED_DOOR;

const SEC: u64 = 1_000_000_000;
/// The one source both threads send as.
const SRC: &str = "192.0.2.2";
const SSH: u16 = 22;
/// A port the filter does not guard: a SYN to it resets knock progress.
const HTTPS: u16 = 443;
/// Packets each thread sends: a fraction of a second of BPF_PROG_TEST_RUN
/// calls, long enough for the two CPUs to meet on the entry many times.
const ROUNDS: usize = 100_000;

/// Protect 22, open 10 s, ban 1 h (when a flag asks for a ban), knocks
/// answered like the stack (they pass), so a dropped knock shows a ban.
fn config(knocks: &[(u8, u16)], flags: u32) -> Config {
    let mut steps = [Step::default(); names::MAX_STEPS];
    for (s, &(proto, port)) in steps.iter_mut().zip(knocks) {
        *s = Step {
            port,
            proto,
            _pad: [0; 5],
            timeout_ns: 10 * SEC,
        };
    }
    let mut protect = [0; names::MAX_PROTECT];
    protect[0] = SSH;
    Config {
        steps,
        step_count: knocks.len() as u32,
        flags,
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

fn knock((proto, port): (u8, u16)) -> Vec<u8> {
    match proto {
        PROTO_TCP => tcp(SRC, port, SYN).bytes(),
        _ => udp(SRC, port).bytes(),
    }
}

/// The first two CPUs this process may run on. Without two the test
/// cannot show anything; that skips it, or fails it where
/// `IPLOCK_REQUIRE_PRIVILEGED=1` forbids skipping.
fn two_cpus(test: &str) -> Option<[usize; 2]> {
    // SAFETY: cpu_set_t is plain bits; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most the size given, which is the set's.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .take(2)
        .collect();
    if let [a, b] = cpus[..] {
        return Some([a, b]);
    }
    let reason = format!("{test} needs two CPUs to run the program on at once");
    if std::env::var("IPLOCK_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{reason}, and IPLOCK_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("SKIP: {reason}");
    None
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from the process's own set, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the kernel reads at most the size given, which is the set's.
    match unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// What one thread sends: frames in turn, each with the verdict it must
/// get every time (`None`: any verdict the program may give).
type Stream = Vec<(Vec<u8>, Option<Verdict>)>;

/// Runs `a` on CPU `cpus[0]` and `b` on `cpus[1]` at once, [`ROUNDS`]
/// frames each, checking each verdict as it comes. Asserts that the two
/// runs overlapped in time.
fn race(h: &Harness, cpus: [usize; 2], a: &Stream, b: &Stream) {
    let start = Barrier::new(2);
    let run = |cpu: usize, stream: &Stream| {
        // Checked past the barrier: a thread that failed before it would
        // leave the other waiting there for good.
        let pinned = pin(cpu);
        start.wait();
        pinned.unwrap_or_else(|e| panic!("pin to CPU {cpu}: {e}"));
        let began = Instant::now();
        for i in 0..ROUNDS {
            let (frame, want) = &stream[i % stream.len()];
            let action = h.run_action(frame);
            let got = verdict(action).unwrap_or_else(|| panic!("unexpected XDP action {action}"));
            if let Some(want) = want {
                assert_eq!(got, *want, "CPU {cpu}: frame {i} of its stream");
            }
        }
        (began, Instant::now())
    };
    let ((a0, a1), (b0, b1)) = std::thread::scope(|s| {
        let a = s.spawn(|| run(cpus[0], a));
        let b = s.spawn(|| run(cpus[1], b));
        (
            a.join().expect("thread on the first CPU"),
            b.join().expect("thread on the second CPU"),
        )
    });
    assert!(
        a0 < b1 && b0 < a1,
        "the two threads did not run at the same time"
    );
    eprintln!("{ROUNDS} frames per CPU in {:?} and {:?}", a1 - a0, b1 - b0);
}

/// Counter `c` as CPU `cpu` alone counted it.
fn on(h: &Harness, c: Counter, cpu: usize) -> u64 {
    h.per_cpu(c)[cpu]
}

/// A four-step sequence, s1 s2 s3 s4. One CPU sends s1 s2 over and over;
/// the other sends s4, a SYN to the protected port and a SYN elsewhere
/// (both reset progress). No frame is ever s3, and the only way to step 3
/// is s3 from step 2, so in no order of these packets, with any of them
/// lost, does a source get past step 2, let alone open at s4. Every entry
/// the program writes therefore has a step of at most 2 and no door; an
/// entry read while it is rewritten mixes fields of such entries, which
/// opens nothing either. So the door must stay shut throughout.
#[test]
fn no_order_of_partial_knocks_opens() {
    if !privileged("no_order_of_partial_knocks_opens") {
        return;
    }
    let Some(cpus) = two_cpus("no_order_of_partial_knocks_opens") else {
        return;
    };
    let seq = [
        (PROTO_TCP, 100),
        (PROTO_UDP, 300),
        (PROTO_UDP, 400),
        (PROTO_TCP, 200),
    ];
    let h = Harness::new(&config(&seq, 0));
    let a: Stream = vec![(knock(seq[0]), None), (knock(seq[1]), None)];
    let b: Stream = vec![
        (knock(seq[3]), None),
        // Checked as it happens: the protected port stays shut.
        (tcp(SRC, SSH, SYN).bytes(), Some(Drop)),
        (tcp(SRC, HTTPS, SYN).bytes(), Some(Pass)),
    ];
    race(&h, cpus, &a, &b);

    let counters = h.counters();
    assert!(
        !counters.contains_key(DoorOpened.name()) && !counters.contains_key(DoorPassed.name()),
        "a door opened: {counters:?}"
    );
    for (ip, s) in h.sources() {
        assert!(
            s.step <= 2 && s.open_until_ns == 0,
            "{ip} got past what was knocked: {s:?}"
        );
    }
    // The first CPU alone, s1 s2 s1 s2..., only ever advances; a wrong
    // knock there is its s2 landing after the second CPU reset the entry
    // between its s1 and s2: the two really shared the entry.
    assert!(
        on(&h, WrongKnock, cpus[0]) > 0,
        "the second CPU never reset the first's progress: {counters:?}"
    );
    assert!(on(&h, KnockAdvanced, cpus[0]) > 0);
    assert!(on(&h, DoorClosed, cpus[1]) > 0);
}

/// Both CPUs send the whole sequence, s1 s2 s3, over and over. Each
/// undoes the other's progress at times, but the entry must not wedge:
/// doors keep opening.
#[test]
fn completed_sequences_open_under_contention() {
    if !privileged("completed_sequences_open_under_contention") {
        return;
    }
    let Some(cpus) = two_cpus("completed_sequences_open_under_contention") else {
        return;
    };
    let seq = [(PROTO_TCP, 100), (PROTO_UDP, 300), (PROTO_TCP, 200)];
    let h = Harness::new(&config(&seq, 0));
    let both: Stream = seq.iter().map(|&k| (knock(k), Some(Pass))).collect();
    race(&h, cpus, &both, &both);

    let counters = h.counters();
    assert!(
        counters.get(DoorOpened.name()).is_some_and(|&n| n > 0),
        "no door opened: {counters:?}"
    );
    // One CPU alone, s1 s2 s3 s1..., only advances and opens; a repeat or
    // a wrong knock is a knock that met the other CPU's progress.
    assert!(
        counters.contains_key(KnockRepeated.name()) || counters.contains_key(WrongKnock.name()),
        "the two CPUs never met on the entry: {counters:?}"
    );
    for cpu in cpus {
        assert!(on(&h, KnockAdvanced, cpu) > 0, "CPU {cpu} made no progress");
    }
}

/// With the closed-door ban on and no knock lifting it, a SYN to the
/// protected port bans the source; from then on one CPU keeps sending such
/// SYNs and the other the whole knock sequence. Every packet is dropped as
/// banned (a knock would otherwise pass), none opens a door or writes a
/// new ban, and the ban is still there, in force, afterwards.
#[test]
fn ban_holds_against_concurrent_knocks() {
    if !privileged("ban_holds_against_concurrent_knocks") {
        return;
    }
    let Some(cpus) = two_cpus("ban_holds_against_concurrent_knocks") else {
        return;
    };
    let seq = [(PROTO_TCP, 100), (PROTO_UDP, 300), (PROTO_TCP, 200)];
    let h = Harness::new(&config(&seq, FLAG_BAN_CLOSED_DOOR));
    let syn = tcp(SRC, SSH, SYN).bytes();
    assert_eq!(h.run(&syn), Drop, "the SYN that bans");
    let ban = h.bans()[&SRC.parse().expect("source")];
    assert_eq!(ban.reason, BAN_CLOSED_DOOR);

    let a: Stream = vec![(syn, Some(Drop))];
    let b: Stream = seq.iter().map(|&k| (knock(k), Some(Drop))).collect();
    race(&h, cpus, &a, &b);

    let counters = h.counters();
    assert!(
        !counters.contains_key(DoorOpened.name()),
        "a door opened: {counters:?}"
    );
    assert_eq!(counters[BansAdded.name()], 1, "{counters:?}");
    for cpu in cpus {
        assert_eq!(
            on(&h, Banned, cpu),
            ROUNDS as u64,
            "CPU {cpu}: {counters:?}"
        );
    }
    let bans = h.bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    let after = bans[&SRC.parse().expect("source")];
    assert_eq!(after, ban, "the ban changed");
    assert!(after.until_ns > iplock::system::clock::now_ns());
    assert!(
        h.sources().values().all(|s| s.open_until_ns == 0),
        "{:?}",
        h.sources()
    );
}
