//! Spoofed knocks: frames with made-up source addresses, injected with an
//! AF_PACKET socket on the client veth, as an attacker off the path would
//! send them.
//!
//! What a flood of them cannot do: open the door for anyone (each source
//! sends one knock, so none gets past step 1, even when the steps arrive in
//! the right order), or ban an allow-listed address (the allow list is
//! checked before anything else). What it can do: ban any address that is
//! not allow-listed, with one wrong knock in its name; and, once it brings
//! more new sources than the source map holds, evict the progress of a real
//! client between two of its knocks. Only a knock on the first step creates
//! an entry, so the flood must know the first knock port. The evicted
//! client's next step then counts as a wrong knock, which bans it when
//! `wrong_knock` is on. A client that knocks its steps in quick succession
//! stays among the most recent entries and gets in. Nor can a flood fill
//! `iplock run`'s log: past a rate its lines are summarised.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_e2e::frame::{self, L4};
use iplock_e2e::rng::{Rng, seed};
use iplock_e2e::status::{counter, source_step};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, OTHER_V6,
    SERVER_V4, SERVER_V6, TempDir, both_modes, echo, in_netns, knock_tcp, knock_udp, require_root,
    try_connect,
};
use serde_json::Value;

both_modes!(
    flood_opens_no_door,
    allow_listed_source_is_never_banned,
    flood_evicts_an_in_progress_knock,
    quick_sequence_gets_in_during_a_flood,
    wrong_knock_floods_evict_no_closed_door_ban,
);

/// The steps of [`KNOCK`], as frames are built for them.
const STEPS: [(L4, u16); 3] = [(L4::SYN, 100), (L4::Udp, 300), (L4::SYN, 200)];
const SEED_VAR: &str = "IPLOCK_SPOOF_SEED";
/// The source map size of the eviction tests.
const SMALL_MAP: u64 = 256;
/// A closed-door SYN to this port bans, unless the source is allow-listed.
const TRAP_PORT: u16 = 2323;

fn flood_opens_no_door(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let inject = Injector::new(&pair);
    let mut rng = seeded("flood_opens_no_door");
    let mut spoofed = Spoofed::default();

    // Runs of the right sequence, each step from a new source, between
    // single knocks of random steps, also each from a new source.
    let mut sent = [0u64; 3];
    while sent.iter().sum::<u64>() < 3000 {
        let steps = if rng.below(2) == 0 {
            vec![0, 1, 2]
        } else {
            vec![rng.below(3) as usize]
        };
        for step in steps {
            inject.knock(spoofed.fresh(&mut rng), step, &mut rng);
            sent[step] += 1;
        }
    }
    let status = wait_for(&iplock, "every spoofed knock is counted", |c| {
        c["knock_advanced"].as_u64() == Some(sent[0])
            && c["wrong_knock"].as_u64() == Some(sent[1] + sent[2])
    });
    assert_eq!(counter(&status, "door_opened"), 0, "{status}");
    let sources = status["sources"].as_array().expect("sources is an array");
    // Every source knocked once; those that knocked the first step are at
    // step 1, the others left no state.
    assert_eq!(sources.len() as u64, sent[0], "{status}");
    for s in sources {
        assert!(
            s["state"] == "knocking" && s["step"] == 1,
            "{s} in {status}"
        );
    }
    for (client, server) in [(CLIENT_V4, SERVER_V4), (CLIENT_V6, SERVER_V6)] {
        pair.assert_dropped(client, server, 22, "the flood opened no door");
    }
}

fn allow_listed_source_is_never_banned(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(&format!(
        "[ban]\nwrong_knock = true\ntrap_ports = [{TRAP_PORT}]\n"
    ));
    iplock.load(
        mode,
        &[
            "--config",
            &config,
            "--knock",
            KNOCK,
            "--allow",
            "192.0.2.3/32",
            "--allow",
            "2001:db8::3/128",
        ],
    );
    let inject = Injector::new(&pair);
    let mut rng = seeded("allow_listed_source_is_never_banned");

    // Everything that bans, in the allow-listed sources' names: knocks out
    // of order, SYNs through the closed door, the trap port.
    let mut sent = 0;
    for src in [OTHER_V4, OTHER_V6] {
        for _ in 0..200 {
            match rng.below(4) {
                0 => inject.knock(src, 1, &mut rng),
                1 => inject.knock(src, 2, &mut rng),
                2 => inject.syn(src, 22, &mut rng),
                _ => inject.syn(src, TRAP_PORT, &mut rng),
            }
            sent += 1;
        }
    }
    // The stack answers the SYNs that passed, and the real owners of these
    // addresses reset those answers: more allowed packets than sent.
    let status = wait_for(&iplock, "every spoofed frame is allowed", |c| {
        c["allowed"].as_u64() >= Some(sent)
    });
    assert_eq!(counter(&status, "bans_added"), 0, "{status}");
    assert_eq!(ban_list(&iplock), Vec::<Value>::new(), "nothing is banned");
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "192.0.2.3 is allow-listed"));
    drop(pair.connect(OTHER_V6, SERVER_V6, 22, "2001:db8::3 is allow-listed"));

    // Any other address is banned by one spoofed wrong knock, and then
    // cannot knock its way in.
    inject.knock(CLIENT_V4, 2, &mut rng);
    wait_for(&iplock, "the spoofed wrong knock bans", |c| {
        c["bans_added"].as_u64() == Some(1)
    });
    let bans = ban_list(&iplock);
    assert!(
        bans.len() == 1 && bans[0]["addr"] == "192.0.2.2" && bans[0]["reason"] == "wrong_knock",
        "{bans:?}"
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "192.0.2.2 was banned by a spoofed knock",
    );
}

fn flood_evicts_an_in_progress_knock(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = load_small_map(&pair, &dir, mode);
    let inject = Injector::new(&pair);
    let mut rng = seeded("flood_evicts_an_in_progress_knock");
    let mut spoofed = Spoofed::default();

    pair.knock_tcp(CLIENT_V4, SERVER_V4, 100);
    wait_for(&iplock, "the real first knock is counted", |c| {
        c["knock_advanced"].as_u64() == Some(1)
    });
    assert_eq!(source_step(&iplock.status_json(), CLIENT_V4), Some(1));

    // Eight times as many new first-step knockers as the map holds, in
    // rounds: the kernel's LRU evicts in per-CPU batches, not in strict
    // order, so one round now and then leaves an old entry in place. A new
    // entry waits in the local list of the CPU that made it until that CPU
    // next needs free nodes, so the rounds are sent from every CPU in turn
    // (a veth runs the receiver's XDP on the sender's CPU).
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let round = 8 * SMALL_MAP;
    let mut sent = 0;
    for r in 0..4 * cpus {
        pin_to_cpu(r % cpus);
        for _ in 0..round {
            inject.knock(spoofed.fresh(&mut rng), 0, &mut rng);
        }
        sent += round;
        let status = wait_for(&iplock, "every spoofed knock is counted", |c| {
            c["knock_advanced"].as_u64() == Some(1 + sent)
        });
        let sources = status["sources"].as_array().expect("sources is an array");
        assert!(sources.len() as u64 <= SMALL_MAP, "{status}");
        if source_step(&status, CLIENT_V4).is_none() {
            break;
        }
    }
    assert_eq!(
        source_step(&iplock.status_json(), CLIENT_V4),
        None,
        "the flood evicted 192.0.2.2's progress"
    );

    // Its next steps now look like knocks out of order: wrong knocks, and
    // the door stays closed.
    let wrong = counter(&iplock.status_json(), "wrong_knock");
    pair.knock(CLIENT_V4, SERVER_V4, "udp:300,tcp:200");
    wait_for(
        &iplock,
        "the evicted client's next steps count as wrong knocks",
        |c| c["wrong_knock"].as_u64() == Some(wrong + 2),
    );
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "its first step was evicted by the flood",
    );
}

fn quick_sequence_gets_in_during_a_flood(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = load_small_map(&pair, &dir, mode);
    let inject = Injector::new(&pair);
    let mut rng = seeded("quick_sequence_gets_in_during_a_flood");
    let mut spoofed = Spoofed::default();

    // About 250 new sources a second, four times the map in all: the map is
    // full and every entry is evicted within about a second.
    let flood = 4 * SMALL_MAP;
    let sent = AtomicU64::new(0);
    let (during, flooded) = thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..flood {
                inject.knock(spoofed.fresh(&mut rng), 0, &mut rng);
                sent.fetch_add(1, Ordering::Relaxed);
                sleep(Duration::from_millis(4));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent.load(Ordering::Relaxed) < 2 * SMALL_MAP {
            assert!(Instant::now() < deadline, "the flood does not progress");
            sleep(Duration::from_millis(10));
        }
        let before = sent.load(Ordering::Relaxed);
        let mut session = in_netns(&pair.client, || {
            knock_tcp(OTHER_V4, SERVER_V4, 100);
            sleep(Duration::from_millis(10));
            knock_udp(OTHER_V4, SERVER_V4, 300);
            sleep(Duration::from_millis(10));
            knock_tcp(OTHER_V4, SERVER_V4, 200);
            try_connect(OTHER_V4, SERVER_V4, 22, Duration::from_secs(2))
        })
        .expect("192.0.2.3 knocked its sequence quickly, between flood packets");
        let during = sent.load(Ordering::Relaxed) - before;
        echo(&mut session, "during the flood");
        (during, sent.load(Ordering::Relaxed))
    });
    eprintln!(
        "quick sequence: {during} spoofed knocks arrived during it, {flooded} before its end"
    );
    let status = wait_for(&iplock, "every knock is counted", |c| {
        c["knock_advanced"].as_u64() == Some(flood + 2)
    });
    assert_eq!(counter(&status, "door_opened"), 1, "{status}");
    let sources = status["sources"].as_array().expect("sources is an array");
    assert!(sources.len() as u64 <= SMALL_MAP, "{status}");
}

#[test]
fn a_flood_of_wrong_knocks_is_summarised_in_the_log() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let mut daemon = Daemon::start(
        &iplock,
        &iplock.settings(Mode::Native, &["--knock", KNOCK]),
        "info",
    );
    let inject = Injector::new(&pair);
    let mut rng = seeded("a_flood_of_wrong_knocks_is_summarised_in_the_log");
    let mut spoofed = Spoofed::default();
    // Fewer than the event ring buffer holds, so every one reaches the log
    // as a line or in the count of a summary.
    let flood = 3000;
    for _ in 0..flood {
        // The second step from a new source: a wrong knock.
        inject.knock(spoofed.fresh(&mut rng), 1, &mut rng);
    }
    wait_for(&iplock, "every spoofed knock is counted", |c| {
        c["wrong_knock"].as_u64() == Some(flood)
    });
    // Another kind of event keeps lines of its own during the flood.
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    daemon.wait_for_log(
        &format!("door opened for {CLIENT_V4}"),
        Duration::from_secs(10),
    );
    daemon.wait_for_log("more wrong knocks", Duration::from_secs(20));
    let log = daemon.log();
    let lines = log.matches("wrong knock from").count() as u64;
    let summary = log
        .lines()
        .find(|l| l.contains("more wrong knocks"))
        .unwrap();
    let summarised: u64 = summary
        .split("and ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"));
    assert!(lines <= 20, "{lines} lines for the flood:\n{log}");
    assert_eq!(lines + summarised, flood, "{summary}");
    eprintln!("{flood} wrong knocks: {lines} lines and {summary:?}");
}

/// Issue 10: wrong knocks are the cheapest bans to make (one spoofed packet
/// each); a flood of them from distinct /64s filled the one ban map and
/// evicted an attacker's ban for trying the protected port. Now they fill
/// a map of their own.
fn wrong_knock_floods_evict_no_closed_door_ban(mode: Mode) {
    const BANS: u64 = 4096;
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(&format!(
        "[ban]\nwrong_knock = true\n[maps]\nbans = {BANS}\n"
    ));
    iplock.load(mode, &["--config", &config, "--knock", KNOCK]);
    let inject = Injector::new(&pair);
    let mut rng = seeded("wrong_knock_floods_evict_no_closed_door_ban");
    let mut spoofed = Spoofed::default();

    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");
    let closed_door = |iplock: &Iplock| {
        ban_list(iplock)
            .iter()
            .any(|b| b["addr"] == "192.0.2.2" && b["reason"] == "closed_door")
    };
    assert!(closed_door(&iplock), "the closed-door SYN bans 192.0.2.2");
    // Four times as many wrong-knock bans as the ban map holds.
    let flood = 4 * BANS;
    for _ in 0..flood {
        inject.knock(spoofed.fresh(&mut rng), 1, &mut rng);
    }
    let status = wait_for(&iplock, "every spoofed knock is counted", |c| {
        c["wrong_knock"].as_u64() == Some(flood)
    });
    assert!(
        counter(&status, "bans_added") > BANS,
        "the flood made more bans than the ban map holds: {}",
        status["counters"]
    );
    assert!(
        closed_door(&iplock),
        "{flood} wrong-knock bans evicted the closed-door ban"
    );
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is still banned");
}

/// Moves the calling thread to one CPU.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET and
    // sched_setaffinity only touch the set this function owns.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn load_small_map(pair: &NetnsPair, dir: &TempDir, mode: Mode) -> Iplock {
    let iplock = Iplock::new(pair);
    let config = dir.config_file(&format!("[maps]\nsources = {SMALL_MAP}\n"));
    iplock.load(mode, &["--config", &config, "--knock", KNOCK]);
    iplock
}

/// Polls `iplock status` until `done(counters)`, for up to 10 s: frames are
/// counted when the kernel gets to them, not when the sender returns.
fn wait_for(iplock: &Iplock, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    iplock_e2e::wait_for(what, Duration::from_secs(10), || {
        let status = iplock.status_json();
        if done(&status["counters"]) {
            Ok(status)
        } else {
            Err(status["counters"].to_string())
        }
    })
}

/// `iplock ban list --json`.
fn ban_list(iplock: &Iplock) -> Vec<Value> {
    let list = iplock.json("ban", &["list", "--json"]);
    list.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("ban list --json printed no JSON array: {list}"))
}

/// Distinct made-up sources: the 254 hosts of 198.51.100.0/24, then IPv6
/// addresses each in a /64 of its own under 2001:db8:5::/48, so that a ban of
/// one (bans cover the /64) never covers another.
#[derive(Default)]
struct Spoofed {
    v4_used: u8,
    v6_nets: HashSet<u16>,
}

impl Spoofed {
    fn fresh(&mut self, rng: &mut Rng) -> IpAddr {
        if self.v4_used < 254 && rng.below(2) == 0 {
            self.v4_used += 1;
            return IpAddr::V4(Ipv4Addr::new(198, 51, 100, self.v4_used));
        }
        loop {
            let net = rng.below(1 << 16) as u16;
            if self.v6_nets.insert(net) {
                let host = rng.next_u64();
                let h = |shift: u32| (host >> shift) as u16;
                return IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    5,
                    net,
                    h(48),
                    h(32),
                    h(16),
                    h(0),
                ));
            }
        }
    }
}

/// The harness's injector (an AF_PACKET socket on the client veth), sending
/// knocks of [`KNOCK`] and SYNs from random source ports.
struct Injector(frame::Injector);

impl Injector {
    fn new(pair: &NetnsPair) -> Injector {
        Injector(frame::Injector::new(pair))
    }

    /// A knock on `KNOCK`'s step `step` from `src`.
    fn knock(&self, src: IpAddr, step: usize, rng: &mut Rng) {
        let (l4, port) = STEPS[step];
        self.send(src, l4, port, rng);
    }

    fn syn(&self, src: IpAddr, port: u16, rng: &mut Rng) {
        self.send(src, L4::SYN, port, rng);
    }

    fn send(&self, src: IpAddr, l4: L4, dport: u16, rng: &mut Rng) {
        let sport = 1024 + rng.below(64_512) as u16;
        self.0.send(src, l4, sport, dport, rng.next_u64() as u32);
        // The veth hands a frame to the peer within the call, but a full
        // receive queue drops it silently: pausing now and then lets the
        // kernel drain the queue, and the tests count every frame.
        if rng.below(32) == 0 {
            sleep(Duration::from_millis(1));
        }
    }
}

/// Seeded from `IPLOCK_SPOOF_SEED`, else the clock; the seed is printed so
/// a failure can be replayed.
fn seeded(test: &str) -> Rng {
    let seed = seed(SEED_VAR);
    eprintln!("{test}: seed {seed} (replay: {SEED_VAR}={seed})");
    Rng::new(seed)
}
