//! A packet sees one whole configuration (issue 10): the real program,
//! run with BPF_PROG_TEST_RUN on one core while another switches the
//! configuration between two settings as fast as it can.
//!
//! The two configurations are chosen so that a mix of them gives a
//! verdict neither gives. A bare SYN to port 22 is dropped under
//! [`config_a`] (22 is protected and the door is closed) and under
//! [`config_b`] (22 is a trap; 23 is protected), but passes as unrelated
//! traffic if the protected ports come from B and the traps from A. Bans
//! are off or last no time, so no run leaves state that changes the next
//! one's verdict; every run adds one to exactly one verdict counter, so
//! the counters tell how many runs passed even where the kernel repeats
//! the program many times in one call.
//!
//! [`slots_switch_never_mixes_two_configurations`] switches with
//! [`iplock::kernel::slots::stage`] and `activate` and asserts that no run passed. Its control,
//! [`in_place_writes_can_mix`], writes the slot in force in place, as
//! iplock did before, and only reports how many mixes it saw: a race may
//! show none, so it asserts nothing about them.

#[path = "kernel/frame.rs"]
#[allow(dead_code)] // shared with kernel.rs; this test sends one frame
mod frame;
#[path = "kernel/harness.rs"]
#[allow(dead_code)] // shared with kernel.rs; this test uses the guard
mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use frame::{SYN, tcp};
use harness::{privileged, verdict};
use iplock::kernel::maps::Maps;
use iplock_common::config::{Config, Step};
use iplock_common::counters::Counter;
use iplock_common::decide::Verdict;
use iplock_common::names::{self, MAX_PROTECT, MAX_STEPS, MAX_TRAPS};
use iplock_common::packet::PROTO_TCP;

const SEC: u64 = 1_000_000_000;
/// How long one side switches.
const SWITCHING: Duration = Duration::from_secs(2);
/// At most this many switches, whatever the time.
const MAX_SWITCHES: u64 = 1_000_000;
/// Runs of the program per BPF_PROG_TEST_RUN call. The kernel repeats it
/// without going back to user space, so most of the time the reading core
/// is inside the program; but a call with more than one run costs about
/// 17 ms of set-up (the kernel switches its XDP dispatcher), as much as
/// 100,000 runs of about 170 ns, so the calls are long.
const REPEAT: u32 = 200_000;

/// Eight knock steps in both sequences, on ports neither config uses
/// otherwise: the program looks at them between the protected ports and
/// the traps, which widens the time in which a configuration written in
/// place can change under one packet.
fn base() -> Config {
    let mut steps = [Step::default(); MAX_STEPS];
    for (i, s) in steps.iter_mut().enumerate() {
        *s = Step {
            port: 1000 + i as u16,
            proto: PROTO_TCP,
            _pad: [0; 5],
            timeout_ns: 10 * SEC,
        };
    }
    Config {
        steps,
        step_count: MAX_STEPS as u32,
        prev_steps: steps,
        prev_step_count: MAX_STEPS as u32,
        // No closed-door or wrong-knock bans; a trap's ban ends at once.
        flags: 0,
        protect: [0; MAX_PROTECT],
        traps: [0; MAX_TRAPS],
        protect_count: 1,
        trap_count: 0,
        open_window_ns: 10 * SEC,
        ban_time_ns: 0,
        ban_prefix_v6: 64,
        ..bytemuck::Zeroable::zeroed()
    }
}

/// Protects 22; no traps.
fn config_a() -> Config {
    let mut c = base();
    c.protect[0] = 22;
    c.index_ports();
    c
}

/// Protects 23; 22 is a trap.
fn config_b() -> Config {
    let mut c = base();
    c.protect[0] = 23;
    c.traps[0] = 22;
    c.trap_count = 1;
    c.index_ports();
    c
}

/// The object with small LRU maps, its maps as iplock holds them, and the
/// program through the verifier (not attached).
fn load() -> (Ebpf, Maps) {
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(names::MAP_SOURCES, 1024)
        .map_max_entries(names::MAP_BANS, 1024)
        .map_max_entries(names::MAP_KNOCK_BANS, 1024)
        .load(iplock::kernel::object::OBJECT)
        .expect("load the eBPF object");
    let maps = Maps::build(|name| {
        ebpf.take_map(name).ok_or_else(|| {
            iplock::error::Error::Input(format!("the iplock object has no map {name}"))
        })
    })
    .expect("the object's maps");
    let prog: &mut Xdp = ebpf
        .program_mut(names::PROGRAM)
        .expect("object has the iplock program")
        .try_into()
        .expect("iplock is an XDP program");
    prog.load().expect("the verifier accepts the program");
    (ebpf, maps)
}

/// Every counter, summed over CPUs, in [`Counter::ALL`] order.
fn counters(maps: &Maps) -> Vec<u64> {
    Counter::ALL
        .iter()
        .map(|c| {
            let per_cpu = maps.counters.get(&(*c as u32), 0).expect("read a counter");
            per_cpu.iter().sum()
        })
        .collect()
}

/// What one race saw.
#[derive(Debug)]
struct Race {
    /// Runs of the program.
    runs: u64,
    switches: u64,
    /// Runs that did not drop: each one saw a mix of A and B.
    passed: u64,
    /// Runs whose last verdict of a call was a pass, as the call reported it.
    passed_last: u64,
}

/// Writes A and B in turn with `write` on a second thread for
/// [`SWITCHING`] (or [`MAX_SWITCHES`]) while this one runs the program
/// on a bare SYN to 22 from 192.0.2.2.
fn race(ebpf: &Ebpf, maps: &mut Maps, write: fn(&mut Maps, &Config)) -> Race {
    let prog: &Xdp = ebpf
        .program(names::PROGRAM)
        .expect("program")
        .try_into()
        .expect("XDP program");
    let frame = tcp("192.0.2.2", 22, SYN).bytes();
    let configs = [config_a(), config_b()];
    write(maps, &configs[0]);
    let before = counters(maps);
    let done = AtomicBool::new(false);
    let (mut runs, mut passed_last) = (0u64, 0u64);
    let switches = thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < SWITCHING && n < MAX_SWITCHES {
                n += 1;
                write(maps, &configs[(n % 2) as usize]);
            }
            done.store(true, Ordering::Relaxed);
            n
        });
        while !done.load(Ordering::Relaxed) {
            let action = prog
                .test_run(TestRunOptions {
                    data_in: Some(&frame),
                    repeat: REPEAT,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN")
                .return_value;
            runs += u64::from(REPEAT);
            match verdict(action) {
                Some(Verdict::Drop) => {}
                Some(Verdict::Pass) => passed_last += 1,
                None => panic!("unexpected XDP action {action}"),
            }
        }
        writer.join().expect("the switching thread")
    });
    let after = counters(maps);
    let delta = |c: Counter| after[c as usize] - before[c as usize];
    let verdicts: u64 = Counter::ALL
        .iter()
        .filter(|&&c| c != Counter::BansAdded)
        .map(|&c| delta(c))
        .sum();
    assert_eq!(
        verdicts, runs,
        "every run counts one verdict: {runs} runs, counters {before:?} -> {after:?}"
    );
    Race {
        runs,
        switches,
        passed: runs - delta(Counter::DoorClosed) - delta(Counter::Trapped),
        passed_last,
    }
}

/// The way a reload or rotation changes the configuration now: the slot
/// out of force written whole, then one switch. Without the settling of the
/// allow lists (these configurations have none), whose wait for packets in
/// flight would allow only a few hundred switches in the race.
fn by_slots(maps: &mut Maps, cfg: &Config) {
    let staged = iplock::kernel::slots::stage(maps, cfg, &[]).expect("slots::stage");
    staged.activate(maps).expect("slots::activate");
}

/// The way it did before: the configuration in force rewritten in place.
fn in_place(maps: &mut Maps, cfg: &Config) {
    let slot = maps.active_slot().expect("the slot in force");
    maps.config.set(slot, cfg, 0).expect("write the config");
}

/// Both configurations alone drop the SYN, so a pass in a race can only
/// come from a mix.
#[test]
fn each_configuration_alone_drops_the_syn() {
    if !privileged("each_configuration_alone_drops_the_syn") {
        return;
    }
    let (ebpf, mut maps) = load();
    let prog: &Xdp = ebpf
        .program(names::PROGRAM)
        .expect("program")
        .try_into()
        .expect("XDP program");
    let frame = tcp("192.0.2.2", 22, SYN).bytes();
    let run = || {
        let action = prog
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN")
            .return_value;
        verdict(action)
    };
    for (name, cfg, counter) in [
        ("A", config_a(), Counter::DoorClosed),
        ("B", config_b(), Counter::Trapped),
    ] {
        by_slots(&mut maps, &cfg);
        let before = counters(&maps);
        assert_eq!(run(), Some(Verdict::Drop), "config {name}");
        let after = counters(&maps);
        assert_eq!(
            after[counter as usize],
            before[counter as usize] + 1,
            "config {name} counts the SYN as {}",
            counter.name()
        );
    }
    // The mix the race tests look for: B's protected ports, A's traps.
    let mut mix = config_b();
    mix.traps = config_a().traps;
    mix.trap_count = config_a().trap_count;
    mix.index_ports();
    by_slots(&mut maps, &mix);
    assert_eq!(run(), Some(Verdict::Pass), "the mix lets the SYN pass");
}

#[test]
fn slots_switch_never_mixes_two_configurations() {
    if !privileged("slots_switch_never_mixes_two_configurations") {
        return;
    }
    let (ebpf, mut maps) = load();
    let r = race(&ebpf, &mut maps, by_slots);
    eprintln!(
        "slots (stage, activate): {} runs, {} switches, {} passed",
        r.runs, r.switches, r.passed
    );
    assert!(
        r.runs > 0 && r.switches > 0,
        "the race did not happen: {r:?}"
    );
    assert_eq!(
        (r.passed, r.passed_last),
        (0, 0),
        "a packet saw a mix of two configurations: {r:?}"
    );
}

/// The control: shows what the race tests can see, and asserts only that
/// the race ran.
#[test]
fn in_place_writes_can_mix() {
    if !privileged("in_place_writes_can_mix") {
        return;
    }
    let (ebpf, mut maps) = load();
    let r = race(&ebpf, &mut maps, in_place);
    eprintln!(
        "in place (control): {} runs, {} switches, {} mixes seen",
        r.runs, r.switches, r.passed
    );
    assert!(
        r.runs > 0 && r.switches > 0,
        "the race did not happen: {r:?}"
    );
}
