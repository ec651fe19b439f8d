//! The original article's iptables `recent` rules as the reference: seeded
//! random traces of knocks, connects to port 22 and pauses go, at the same
//! moments, to a namespace pair filtered by those rules and to two pairs
//! filtered by iplock (native and skb XDP); every connect must get through on
//! all three or on none.
//!
//! The rules are the article's (knocks tcp 100, 300, 200; SSH 22; no `-s`,
//! which the article says to drop for knocking alone) with 2 s instead of
//! 10 s, loaded with iptables-nft, and with each rule's port match before its
//! `recent` matches, as the original generator (ipload's `rule.cpp`) emits
//! them. In the order the article prints, iptables evaluates `--set` before
//! `--dport`, so any TCP packet advances the sequence:
//! `printed_rule_order_opens_without_knocking` shows a plain connect getting
//! in on its own SYN retransmissions.
//!
//! Both agree, and the traces check it, on what a knock gets back (the
//! rules let it reach the stack, iplock counts it and passes it on, so it
//! is refused like a SYN to any unused port) and on other new packets: a
//! SYN or a datagram to an unrelated port resets progress in both (the
//! rules' catch-all `--remove` lines) and leaves an open door open; so does
//! a connect refused by the closed door. Each
//! knock and unrelated packet waits [`ANSWER_WAIT`] for its answer, which
//! must be the same from all three.
//!
//! Where iplock differs on purpose, traces are built to stay out (see
//! [`excluded`]):
//! - never the same knock twice in a row (connects between them aside):
//!   iplock ignores a copy of the previous knock as a retransmit and keeps
//!   the first copy's time, the rules restart the timer;
//! - bans off: the rules have none.
//!
//! The first knock arriving at the second step restarts the sequence in both
//! (the rules remove `knock2` and then set `knock1`, iplock's step 0 always
//! restarts), so traces include it; the scenario "first knock again at step
//! 2" pins it down.
//!
//! Every interval that decides an outcome (a knock to the next knock, a knock
//! to a later connect) stays [`MARGIN_MS`] away from the 2 s timeouts, so
//! scheduling jitter cannot flip it; and each event reaches the three pairs
//! within microseconds of each other, so jitter shifts all three alike.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use iplock_e2e::rng::{Rng, seed};
use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, Mode, NO_BANS, NetnsPair, SERVER_V4, TempDir, in_netns,
    require_root, require_tools, run_ok,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Knock ports in sequence order.
const PORTS: [u16; 3] = [100, 300, 200];
const SEQUENCE: &str = "tcp:100,tcp:300,tcp:200";
const SSH: u16 = 22;
/// Step timeout and open window of both filters (`--seconds 2`).
const TIMEOUT_MS: u64 = 2000;
/// How far every deciding interval stays from [`TIMEOUT_MS`].
const MARGIN_MS: u64 = 500;
/// Knocks on different flows this far apart arrive in order.
const MIN_GAP_MS: u64 = 50;
/// How long a connect may take to count as through.
const CONNECT_WAIT: Duration = Duration::from_millis(700);
/// A refused connect's socket open longer than this may have sent a SYN
/// retransmission (the kernel's first comes after 1 s) that the trace does
/// not list; such a trace is set aside rather than compared.
const SYN_RETRANSMIT: Duration = Duration::from_millis(950);
/// Nothing follows a connect sooner than this.
const AFTER_CONNECT_MS: u64 = 800;
/// How long a knock or an unrelated packet waits for the stack's answer:
/// well inside [`MIN_GAP_MS`], so the next event is not delayed.
const ANSWER_WAIT: Duration = Duration::from_millis(30);
/// Unrelated packets go to ports from here on (none is 22 or a knock port).
const OTHER_PORTS: u16 = 1000;

const RESTORE: &str = "iptables-nft-restore";
const TRACES_VAR: &str = "IPLOCK_DIFF_TRACES";
const SEED_VAR: &str = "IPLOCK_DIFF_SEED";
const DEFAULT_TRACES: usize = 40;
/// One source address per trace, fewer than the 100 entries an xt_recent
/// list holds by default, so no list ever evicts a source.
const MAX_SOURCES: usize = 90;

#[test]
fn iplock_agrees_with_the_article_rules() {
    if !require_root() || !require_tools(&[RESTORE]) {
        return;
    }
    let seed = seed(SEED_VAR);
    let count = std::env::var(TRACES_VAR)
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{TRACES_VAR}={s} is not a count"))
        })
        .unwrap_or(DEFAULT_TRACES);
    eprintln!("differential: seed {seed}, {count} random traces (replay: {SEED_VAR}={seed})");

    let mut traces = scenarios();
    let mut rng = Rng::new(seed);
    traces.extend((0..count).map(|i| random_trace(&mut rng, format!("random #{i}"))));
    assert!(
        traces.len() <= MAX_SOURCES,
        "{} traces: at most {MAX_SOURCES} fit the recent lists",
        traces.len()
    );
    let sources: Vec<IpAddr> = (0..traces.len())
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8)))
        .collect();

    let dir = TempDir::new();
    let article = NetnsPair::new();
    let native = NetnsPair::new();
    let skb = NetnsPair::new();
    let _servers: Vec<EchoServer> = [&article, &native, &skb]
        .iter()
        .map(|pair| EchoServer::start(pair, &[SSH]))
        .collect();
    load_rules(
        &article,
        &dir,
        &generator_order_rules(&article.server_if, TIMEOUT_MS / 1000),
    );
    let config = dir.config_file(NO_BANS);
    let iplock_args = [
        "--config",
        &config,
        "--knock",
        SEQUENCE,
        "--step-timeout",
        "2s",
        "--open-window",
        "2s",
    ];
    let native_iplock = Iplock::new(&native);
    native_iplock.load(Mode::Native, &iplock_args);
    let skb_iplock = Iplock::new(&skb);
    skb_iplock.load(Mode::Skb, &iplock_args);
    let targets = [
        Target {
            name: "article rules",
            pair: &article,
        },
        Target {
            name: "iplock native",
            pair: &native,
        },
        Target {
            name: "iplock skb",
            pair: &skb,
        },
    ];
    for target in &targets {
        add_addresses(target.pair, &sources, &dir);
        // Unrelated datagrams are answered with port unreachable, every time.
        target.pair.lift_icmp_rate_limits();
    }

    // Every trace at once, each from its own source: state is per source in
    // both filters, so they cannot disturb each other, and the run takes as
    // long as the longest trace.
    let start = Instant::now() + Duration::from_millis(300);
    let targets = &targets;
    let runs: Vec<Run> = thread::scope(|scope| {
        let handles: Vec<_> = traces
            .iter()
            .zip(&sources)
            .map(|(trace, &src)| scope.spawn(move || run_trace(trace, src, targets, start)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut failures = String::new();
    let mut disturbed = Vec::new();
    let (mut through, mut refused) = (0, 0);
    for ((trace, run), src) in traces.iter().zip(&runs).zip(&sources) {
        if let Some(why) = &run.disturbed {
            disturbed.push(format!("{} ({src}): {why}", trace.name));
            continue;
        }
        let model = expected(&trace.events);
        let mut bad = run
            .connects
            .iter()
            .chain(&run.answers)
            .any(|got| got.iter().any(|&g| g != got[0]));
        if let Some(want) = &trace.expect {
            bad |= run.connects.iter().zip(want).any(|(got, &w)| got[0] != w);
        }
        if bad {
            failures.push_str(&describe(trace, *src, run, &model, targets));
        }
        for got in &run.connects {
            if got[0] {
                through += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed} ({SEED_VAR}={seed} replays it): the filters disagree, \
         with each other or with a scenario's stated outcome\n{failures}"
    );
    assert!(
        disturbed.len() * 4 <= traces.len(),
        "seed {seed}: too many traces disturbed by scheduling delays to conclude:\n{}",
        disturbed.join("\n")
    );
    assert!(
        through > 0 && refused > 0,
        "seed {seed}: {through} connects got through and {refused} did not; \
         a comparison needs both"
    );
    eprintln!(
        "differential: {} traces agree ({through} connects through, {refused} not); \
         {} disturbed and not compared{}",
        traces.len() - disturbed.len(),
        disturbed.len(),
        disturbed
            .iter()
            .map(|d| format!("\n  {d}"))
            .collect::<String>()
    );
}

/// The rules exactly as the article prints them (without `-s`, `eth0` being
/// the server veth) let a connect in without any knock: its own SYN and the
/// kernel's retransmissions of it set knock1, knock2 and knock3 in turn,
/// because each `-m recent --set` comes before the `--dport` that should
/// have guarded it.
#[test]
fn printed_rule_order_opens_without_knocking() {
    if !require_root() || !require_tools(&[RESTORE]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    // The article's 10 s, so that the kernel's SYN retransmissions fall
    // within it however they are spaced.
    load_rules(&pair, &dir, &printed_order_rules(&pair.server_if, 10));
    let started = Instant::now();
    let stream = pair.try_connect(CLIENT_V4, SERVER_V4, SSH, Duration::from_secs(12));
    assert!(
        stream.is_some(),
        "the connect never got through the rules in the printed order"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the first SYN got through at once: the printed rules dropped nothing"
    );
}

/// The article's rules as printed, with the test's interface and `s`
/// seconds.
fn printed_order_rules(iface: &str, s: u64) -> String {
    format!(
        "*filter
:INPUT ACCEPT [0:0]
-A INPUT -i {iface} -p tcp -m state --state ESTABLISHED,RELATED -m tcp ! --syn -j ACCEPT
-A INPUT -m recent --rcheck --seconds {s} --name knock3 -m recent --remove --name hacker
-A INPUT -m recent --rcheck --seconds {s} --name knock3 -i {iface} -p tcp --dport 22 -m tcp --syn -j ACCEPT
-A INPUT -m recent --rcheck --seconds {s} --name knock2 -m recent --set --name knock3 -p tcp --dport 200 -m tcp --syn
-A INPUT -m recent --remove --name knock2
-A INPUT -m recent --rcheck --seconds {s} --name knock1 -m recent --set --name knock2 -p tcp --dport 300 -m tcp --syn
-A INPUT -m recent --remove --name knock1
-A INPUT -m recent --set --name knock1 -p tcp --dport 100 -m tcp --syn
-A INPUT -p tcp --dport 22 -j DROP
COMMIT
"
    )
}

/// The same rules with each port match first, so `--set` fires only for a
/// SYN to its knock port.
fn generator_order_rules(iface: &str, s: u64) -> String {
    format!(
        "*filter
:INPUT ACCEPT [0:0]
-A INPUT -i {iface} -p tcp -m state --state ESTABLISHED,RELATED -m tcp ! --syn -j ACCEPT
-A INPUT -m recent --rcheck --seconds {s} --name knock3 -m recent --remove --name hacker
-A INPUT -i {iface} -p tcp -m tcp --dport 22 --syn -m recent --rcheck --seconds {s} --name knock3 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 200 --syn -m recent --rcheck --seconds {s} --name knock2 -m recent --set --name knock3
-A INPUT -m recent --remove --name knock2
-A INPUT -p tcp -m tcp --dport 300 --syn -m recent --rcheck --seconds {s} --name knock1 -m recent --set --name knock2
-A INPUT -m recent --remove --name knock1
-A INPUT -p tcp -m tcp --dport 100 --syn -m recent --set --name knock1
-A INPUT -p tcp -m tcp --dport 22 -j DROP
COMMIT
"
    )
}

fn load_rules(pair: &NetnsPair, dir: &TempDir, rules: &str) {
    let file = dir.write(&format!("{}.rules", pair.server), rules);
    run_ok(
        Command::new("ip")
            .args(["netns", "exec", &pair.server, RESTORE])
            .arg(&file),
    );
}

/// Adds the trace sources to the client veth, after its primary address.
fn add_addresses(pair: &NetnsPair, sources: &[IpAddr], dir: &TempDir) {
    let batch: String = sources
        .iter()
        .map(|a| format!("addr add {a}/24 dev {}\n", pair.client_if))
        .collect();
    let file = dir.write(&format!("{}.batch", pair.client), &batch);
    run_ok(
        Command::new("ip")
            .args(["-n", &pair.client, "-batch"])
            .arg(&file),
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A SYN to `PORTS[step]`.
    Knock(usize),
    /// A connect to port 22.
    Connect,
    /// A SYN (or with `udp`, a datagram) to an unrelated port.
    Other { port: u16, udp: bool },
}

#[derive(Clone, Copy, Debug)]
struct Event {
    /// From the start of the trace.
    at_ms: u64,
    kind: Kind,
}

struct Trace {
    name: String,
    events: Vec<Event>,
    /// For the fixed scenarios: which connects get through.
    expect: Option<Vec<bool>>,
}

/// What the rules and iplock share on the traces [`excluded`] lets through:
/// the sequence advances on its next step within the timeout of the previous
/// knock, the first knock always restarts it, any other knock resets it, and
/// the last step opens the door for the window, whatever comes after.
#[derive(Default)]
struct Model {
    /// Steps done; a completed sequence counts as none for the next knock.
    progress: usize,
    last_ms: u64,
    open_until_ms: Option<u64>,
}

impl Model {
    fn next_step(&self, at_ms: u64) -> usize {
        if (1..PORTS.len()).contains(&self.progress) && at_ms - self.last_ms <= TIMEOUT_MS {
            self.progress
        } else {
            0
        }
    }

    fn knock(&mut self, step: usize, at_ms: u64) {
        if step == self.next_step(at_ms) || step == 0 {
            self.progress = step + 1;
            self.last_ms = at_ms;
            if self.progress == PORTS.len() {
                self.open_until_ms = Some(at_ms + TIMEOUT_MS);
            }
        } else {
            self.progress = 0;
        }
    }

    /// Any other new packet: progress is lost, an open door stays open.
    fn other(&mut self) {
        self.progress = 0;
    }

    /// A connect to port 22: through while the door is open; refused, it
    /// is one more other packet.
    fn connect(&mut self, at_ms: u64) -> bool {
        let open = self.open(at_ms);
        if !open {
            self.other();
        }
        open
    }

    fn open(&self, at_ms: u64) -> bool {
        self.open_until_ms.is_some_and(|until| at_ms < until)
    }
}

/// Which connects of `events` get through according to [`Model`].
fn expected(events: &[Event]) -> Vec<bool> {
    let mut model = Model::default();
    let mut out = Vec::new();
    for e in events {
        match e.kind {
            Kind::Knock(step) => model.knock(step, e.at_ms),
            Kind::Connect => out.push(model.connect(e.at_ms)),
            Kind::Other { .. } => model.other(),
        }
    }
    out
}

/// Why a trace would compare a deliberate difference or a timing boundary
/// rather than the shared behaviour; `None` when it is admissible.
fn excluded(events: &[Event]) -> Option<String> {
    let near = |interval: u64| interval.abs_diff(TIMEOUT_MS) < MARGIN_MS;
    let mut model = Model::default();
    let mut knocks: Vec<(usize, u64)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(prev) = i.checked_sub(1).map(|p| events[p]) {
            let gap = match prev.kind {
                Kind::Knock(_) | Kind::Other { .. } => MIN_GAP_MS,
                Kind::Connect => AFTER_CONNECT_MS,
            };
            if e.at_ms < prev.at_ms + gap {
                return Some(format!("event {i} follows the previous one too closely"));
            }
        }
        match e.kind {
            Kind::Knock(step) => {
                if let Some(&(last, at)) = knocks.last() {
                    if last == step {
                        return Some(format!("event {i} repeats the previous knock"));
                    }
                    if near(e.at_ms - at) {
                        return Some(format!("event {i} comes near a step timeout"));
                    }
                }
                model.knock(step, e.at_ms);
                knocks.push((step, e.at_ms));
            }
            Kind::Other { .. } => model.other(),
            Kind::Connect => {
                if knocks.iter().any(|&(_, at)| near(e.at_ms - at)) {
                    return Some(format!("event {i} comes near the end of a window"));
                }
                model.connect(e.at_ms);
            }
        }
    }
    None
}

/// A fixed trace: its name, its events (ms from the start, kind) and which
/// of its connects get through.
type Scenario = (&'static str, &'static [(u64, Kind)], &'static [bool]);

/// Fixed traces for the cases the README states, with their outcomes.
fn scenarios() -> Vec<Trace> {
    use Kind::{Connect as C, Knock as K};
    const SYN: Kind = Kind::Other {
        port: OTHER_PORTS + 1,
        udp: false,
    };
    const UDP: Kind = Kind::Other {
        port: OTHER_PORTS + 2,
        udp: true,
    };
    let fixed: [Scenario; 13] = [
        (
            "the sequence opens",
            &[(0, K(0)), (300, K(1)), (600, K(2)), (900, C)],
            &[true],
        ),
        ("no knock", &[(0, C)], &[false]),
        (
            "first knock again at step 2 restarts",
            &[
                (0, K(0)),
                (300, K(1)),
                (600, K(0)),
                (900, K(1)),
                (1200, K(2)),
                (1400, C),
            ],
            &[true],
        ),
        (
            "restart at step 2, then a wrong step",
            &[(0, K(0)), (300, K(1)), (600, K(0)), (900, K(2)), (1200, C)],
            &[false],
        ),
        (
            "a step after its timeout",
            &[(0, K(0)), (2800, K(1)), (3100, K(2)), (3400, C)],
            &[false],
        ),
        (
            "the door closes after the window",
            &[(0, K(0)), (300, K(1)), (600, K(2)), (3400, C)],
            &[false],
        ),
        (
            "a wrong knock leaves the open door open",
            &[(0, K(0)), (300, K(1)), (600, K(2)), (800, K(1)), (1000, C)],
            &[true],
        ),
        (
            "wrong first, then the sequence",
            &[(0, K(1)), (300, K(0)), (600, K(1)), (900, K(2)), (1200, C)],
            &[true],
        ),
        (
            "a connect inside a new sequence, which then reopens",
            &[
                (0, K(0)),
                (300, K(1)),
                (600, K(2)),
                (900, K(0)),
                (1200, C),
                (2000, K(1)),
                (2300, K(2)),
                (3450, C),
            ],
            &[true, true],
        ),
        (
            "a SYN to another port between steps resets",
            &[(0, K(0)), (300, K(1)), (600, SYN), (900, K(2)), (1200, C)],
            &[false],
        ),
        (
            "a datagram to another port between steps resets",
            &[(0, K(0)), (300, UDP), (600, K(1)), (900, K(2)), (1200, C)],
            &[false],
        ),
        (
            "a refused connect between steps resets",
            &[(0, K(0)), (300, K(1)), (600, C), (1400, K(2)), (1500, C)],
            &[false, false],
        ),
        (
            "other packets leave the open door open",
            &[
                (0, K(0)),
                (300, K(1)),
                (600, K(2)),
                (700, SYN),
                (800, UDP),
                (1000, C),
            ],
            &[true],
        ),
    ];
    fixed
        .into_iter()
        .map(|(name, events, expect)| {
            let events: Vec<Event> = events
                .iter()
                .map(|&(at_ms, kind)| Event { at_ms, kind })
                .collect();
            if let Some(why) = excluded(&events) {
                panic!("scenario {name:?} is not admissible: {why}");
            }
            assert_eq!(expected(&events), expect, "scenario {name:?}");
            Trace {
                name: name.into(),
                events,
                expect: Some(expect.to_vec()),
            }
        })
        .collect()
}

/// A random admissible trace: knocks biased towards the next step so that
/// doors open often, short and long pauses, connects anywhere.
fn random_trace(rng: &mut Rng, name: String) -> Trace {
    for _ in 0..100_000 {
        let events = draw(rng);
        if excluded(&events).is_none() {
            return Trace {
                name,
                events,
                expect: None,
            };
        }
    }
    panic!("no admissible trace in 100000 draws: the generator and the rules disagree");
}

fn draw(rng: &mut Rng) -> Vec<Event> {
    let len = 3 + rng.below(8);
    let mut model = Model::default();
    let mut events: Vec<Event> = Vec::new();
    let mut last_knock = None;
    let mut at_ms = 0;
    for i in 0..len {
        // Mid-sequence, pauses and connects are rarer, so that sequences
        // often complete and connects get through as often as not.
        let mid_sequence = model.next_step(at_ms) != 0;
        if let Some(prev) = events.last() {
            let long_odds = if mid_sequence { 1 } else { 3 };
            at_ms += if rng.below(20) < long_odds {
                TIMEOUT_MS + MARGIN_MS + 100 + rng.below(700)
            } else if prev.kind == Kind::Connect {
                AFTER_CONNECT_MS + rng.below(300)
            } else {
                MIN_GAP_MS + rng.below(400)
            };
        }
        let connect_odds = match (model.open(at_ms), model.next_step(at_ms) != 0) {
            (true, _) => 12,
            (false, true) => 1,
            (false, false) => 4,
        };
        let kind = if i == len - 1 || rng.below(20) < connect_odds {
            model.connect(at_ms);
            Kind::Connect
        } else if rng.below(10) == 0 {
            model.other();
            Kind::Other {
                port: OTHER_PORTS + rng.below(1000) as u16,
                udp: rng.below(2) == 0,
            }
        } else {
            let mut step = if rng.below(10) < 8 {
                model.next_step(at_ms)
            } else {
                rng.below(PORTS.len() as u64) as usize
            };
            if last_knock == Some(step) {
                step = (step + 1 + rng.below(2) as usize) % PORTS.len();
            }
            model.knock(step, at_ms);
            last_knock = Some(step);
            Kind::Knock(step)
        };
        events.push(Event { at_ms, kind });
    }
    events
}

struct Target<'a> {
    name: &'static str,
    pair: &'a NetnsPair,
}

struct Run {
    /// Per connect, per target: whether it got through.
    connects: Vec<Vec<bool>>,
    /// Per knock and unrelated packet, per target: whether it was refused
    /// (a reset or port unreachable) within [`ANSWER_WAIT`].
    answers: Vec<Vec<bool>>,
    /// Worst lateness of an event against its schedule.
    late: Duration,
    /// Set when a refused connect's socket outlived the first SYN
    /// retransmission, which the trace does not account for.
    disturbed: Option<String>,
}

fn run_trace(trace: &Trace, src: IpAddr, targets: &[Target], start: Instant) -> Run {
    let mut run = Run {
        connects: Vec::new(),
        answers: Vec::new(),
        late: Duration::ZERO,
        disturbed: None,
    };
    for (i, e) in trace.events.iter().enumerate() {
        // Sockets are made before the due time, in each target's client
        // namespace, so the packets leave back to back.
        let socks: Vec<Socket> = targets
            .iter()
            .map(|t| {
                in_netns(&t.pair.client, || match e.kind {
                    Kind::Other { udp: true, .. } => udp_socket(src),
                    _ => bound_socket(src),
                })
            })
            .collect();
        let due = start + Duration::from_millis(e.at_ms);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        run.late = run.late.max(Instant::now().saturating_duration_since(due));
        match e.kind {
            Kind::Knock(step) => {
                for sock in &socks {
                    start_connect(sock, PORTS[step]);
                }
                run.answers.push(refused(&socks));
                // Closing in SYN_SENT sends nothing more: one bare SYN each.
                drop(socks);
            }
            Kind::Other { port, udp } => {
                for sock in &socks {
                    if udp {
                        sock.connect(&SocketAddr::new(SERVER_V4, port).into())
                            .expect("connect a UDP socket");
                        sock.send(b"other").expect("send a datagram");
                    } else {
                        start_connect(sock, port);
                    }
                }
                run.answers.push(refused(&socks));
                drop(socks);
            }
            Kind::Connect => {
                let (through, held) = connect_all(socks);
                if held > SYN_RETRANSMIT && through.iter().any(|t| !t) {
                    run.disturbed = Some(format!(
                        "event {i}: a refused connect was held {held:?} before closing"
                    ));
                }
                run.connects.push(through);
            }
        }
    }
    run
}

fn bound_socket(src: IpAddr) -> Socket {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sock.bind(&SocketAddr::new(src, 0).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock.set_nonblocking(true).unwrap();
    sock
}

fn udp_socket(src: IpAddr) -> Socket {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    sock.bind(&SocketAddr::new(src, 0).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock
}

/// Which of `socks` (a SYN or a datagram just sent on each) were refused,
/// by a reset or a port unreachable, within [`ANSWER_WAIT`].
fn refused(socks: &[Socket]) -> Vec<bool> {
    let started = Instant::now();
    let mut out = vec![false; socks.len()];
    let mut pending: Vec<usize> = (0..socks.len()).collect();
    while !pending.is_empty() {
        let left = ANSWER_WAIT.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&i| libc::pollfd {
                fd: socks[i].as_raw_fd(),
                // A refusal, of a connect or of a datagram, is POLLERR,
                // which poll reports unasked.
                events: 0,
                revents: 0,
            })
            .collect();
        let wait_ms = left.as_millis().max(1) as libc::c_int;
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EINTR), "poll: {err}");
            continue;
        }
        let mut still = Vec::new();
        for (fd, &i) in fds.iter().zip(&pending) {
            if fd.revents == 0 {
                still.push(i);
                continue;
            }
            match socks[i].take_error() {
                Ok(Some(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => out[i] = true,
                other => panic!("a knock or unrelated packet got {other:?}, not a refusal"),
            }
        }
        pending = still;
    }
    out
}

fn start_connect(sock: &Socket, port: u16) {
    match sock.connect(&SocketAddr::new(SERVER_V4, port).into()) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        other => panic!("connect to port {port}: expected EINPROGRESS, got {other:?}"),
    }
}

/// Connects every socket to port 22 at once and waits up to
/// [`CONNECT_WAIT`]; returns which got through and how long the sockets
/// were held.
fn connect_all(socks: Vec<Socket>) -> (Vec<bool>, Duration) {
    let started = Instant::now();
    for sock in &socks {
        start_connect(sock, SSH);
    }
    let mut through = vec![false; socks.len()];
    let mut pending: Vec<usize> = (0..socks.len()).collect();
    while !pending.is_empty() {
        let left = CONNECT_WAIT.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&i| libc::pollfd {
                fd: socks[i].as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let wait_ms = left.as_millis().max(1) as libc::c_int;
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EINTR), "poll: {err}");
            continue;
        }
        let mut still = Vec::new();
        for (fd, &i) in fds.iter().zip(&pending) {
            if fd.revents == 0 {
                still.push(i);
                continue;
            }
            // Port 22 always listens: a refusal or any other error means
            // something other than the filter answered.
            match socks[i].take_error() {
                Ok(None) => through[i] = true,
                other => panic!("connect to port 22 failed otherwise than by a timeout: {other:?}"),
            }
        }
        pending = still;
    }
    drop(socks);
    (through, started.elapsed())
}

fn describe(trace: &Trace, src: IpAddr, run: &Run, model: &[bool], targets: &[Target]) -> String {
    let mut out = format!(
        "\n{} (source {src}, worst lateness {:?}):\n",
        trace.name, run.late
    );
    let mut connect = 0;
    let mut answer = 0;
    let mut answers = |what: String| {
        let got: Vec<String> = targets
            .iter()
            .zip(&run.answers[answer])
            .map(|(t, &g)| format!("{}: {}", t.name, if g { "refused" } else { "silent" }))
            .collect();
        answer += 1;
        format!("{what} -> {}", got.join(", "))
    };
    for e in &trace.events {
        match e.kind {
            Kind::Knock(step) => {
                let what = answers(format!("knock tcp:{}", PORTS[step]));
                let _ = writeln!(out, "  {:>6} ms  {what}", e.at_ms);
            }
            Kind::Other { port, udp } => {
                let proto = if udp { "udp" } else { "tcp" };
                let what = answers(format!("other {proto}:{port}"));
                let _ = writeln!(out, "  {:>6} ms  {what}", e.at_ms);
            }
            Kind::Connect => {
                let got: Vec<String> = targets
                    .iter()
                    .zip(&run.connects[connect])
                    .map(|(t, &g)| format!("{}: {}", t.name, verdict(g)))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:>6} ms  connect 22 -> {} (expected {})",
                    e.at_ms,
                    got.join(", "),
                    verdict(model[connect])
                );
                connect += 1;
            }
        }
    }
    out
}

fn verdict(through: bool) -> &'static str {
    if through { "through" } else { "timed out" }
}
