//! The sequence stays secret (issue 9): a scan from outside cannot tell a
//! knock port from any other unused port, probing cannot turn bans into
//! an oracle, and traffic to other ports between two knocks resets the
//! progress instead of satisfying a step.
//!
//! With the default `knock_answer = "stack"` every packet to a knock port
//! is counted and then handed to the host's stack, which answers it as it
//! answers any unused port: a reset for TCP, ICMP port unreachable for
//! UDP. With `knock_answer = "drop"` behind a firewall that drops unused
//! ports, knock ports are as silent as the rest. A wrong knock bans
//! nobody by default; a SYN to the closed door still does.
//!
//! The scans come from [`iplock_e2e::scan::Scanner`]: SYN, ACK, FIN, null
//! and UDP probes, in ascending, descending and random order, from
//! several addresses of the client, IPv4 and IPv6. Each test sends a
//! bounded number of packets (printed) and takes a few seconds.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use iplock_e2e::frame::L4;
use iplock_e2e::iplock::binary;
use iplock_e2e::knockers::iplock_knock;
use iplock_e2e::rng::{Rng, seed};
use iplock_e2e::scan::{Answer, Order, PROBES, Scanner, odd_ones};
use iplock_e2e::status::bans;
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, Mode, NetnsPair, OTHER_V4, OTHER_V6,
    SERVER_V4, TempDir, both_modes, describe, in_netns, one_stderr_line, require_root,
    require_tools, run_bounded, run_ok,
};

both_modes!(
    knock_ports_answer_like_their_neighbours,
    a_spray_between_knocks_opens_nothing,
    an_attacker_learns_nothing_from_a_fixed_sequence,
);

/// The sequence, with the default timeouts.
const KNOCK: &str = "tcp:1100,udp:1300,tcp:1200";
const KNOCK_PORTS: [u16; 3] = [1100, 1300, 1200];
const SSH: u16 = 22;
const SEED_VAR: &str = "IPLOCK_STEALTH_SEED";

/// Twelve ports either side of every knock port.
fn window() -> Vec<u16> {
    KNOCK_PORTS.iter().flat_map(|&k| k - 12..=k + 12).collect()
}

/// What the host's stack answers on a port nothing listens on.
fn stack_answer(probe: L4) -> Answer {
    match probe {
        L4::Tcp(_) => Answer::Rst,
        L4::Udp => Answer::Unreachable,
    }
}

fn seeded(test: &str) -> Rng {
    let seed = seed(SEED_VAR);
    eprintln!("{test}: seed {seed} (replay: {SEED_VAR}={seed})");
    Rng::new(seed)
}

/// Three IPv4 and three IPv6 sources of the client: its two of the pair
/// and one more of each family.
fn sources(pair: &NetnsPair) -> [(IpAddr, IpAddr); 3] {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 4));
    pair.add_client_addr(v4);
    pair.add_client_addr(v6);
    [(CLIENT_V4, CLIENT_V6), (OTHER_V4, OTHER_V6), (v4, v6)]
}

/// Every probe kind in every order from the three sources of each family
/// over `ports`; returns a line per port whose answer is not `expect`'s,
/// and the number of probes sent.
fn scan_all(
    scanner: &Scanner,
    pair: &NetnsPair,
    ports: &[u16],
    rng: &mut Rng,
    orders_per_probe: usize,
    expect: impl Fn(L4) -> Answer,
) -> Vec<String> {
    let sources = sources(pair);
    let mut bad = Vec::new();
    let mut n = 0;
    for (name, probe) in PROBES {
        let orders = [
            Order::Ascending,
            Order::Descending,
            Order::Random(rng.next_u64()),
        ];
        for order in orders.into_iter().take(orders_per_probe) {
            let (v4, v6) = sources[n % sources.len()];
            n += 1;
            for src in [v4, v6] {
                let answers = scanner.scan(src, probe, ports, order);
                let want = expect(probe);
                for (port, got) in &answers {
                    if *got != want {
                        let role = if KNOCK_PORTS.contains(port) {
                            "knock port"
                        } else {
                            "neighbour"
                        };
                        bad.push(format!(
                            "{name} {order:?} from {src}: {role} {port} answered {got:?}, want {want:?}"
                        ));
                    }
                }
                // The knock ports among their neighbours, compared directly.
                for (port, got) in odd_ones(&answers) {
                    if KNOCK_PORTS.contains(&port) {
                        bad.push(format!(
                            "{name} {order:?} from {src}: knock port {port} stands out with {got:?}"
                        ));
                    }
                }
            }
        }
    }
    bad
}

fn assert_no_ban(iplock: &Iplock, what: &str) {
    let status = iplock.status_json();
    assert_eq!(bans(&status), Vec::new(), "{what}: {status}");
    assert_eq!(status["counters"]["bans_added"], 0, "{what}: {status}");
}

fn knock_ports_answer_like_their_neighbours(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let scanner = Scanner::new(&pair);
    let mut rng = seeded("knock_ports_answer_like_their_neighbours");
    let started = Instant::now();
    let bad = scan_all(&scanner, &pair, &window(), &mut rng, 3, stack_answer);
    eprintln!("{} probes in {:?}", scanner.sent(), started.elapsed());
    assert!(
        bad.is_empty(),
        "knock ports must answer as the unused ports around them:\n{}",
        bad.join("\n")
    );
    assert_no_ban(&iplock, "scans of the knock ports ban nobody");
    // The scans were counted as knocks and changed nothing for a client.
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        SSH,
        "the client knocked right after the scans",
    ));
}

/// A default-deny nftables table in the server namespace: only SSH,
/// established traffic and neighbour discovery pass; every other port is
/// silent, and with `knock_answer = "drop"` so are the knock ports.
#[test]
fn behind_a_default_deny_firewall_knock_ports_are_silent_too() {
    if !require_root() || !require_tools(&["nft"]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    let rules = dir.write(
        "deny.nft",
        "table inet iplock_test {\n\
         \tchain input {\n\
         \t\ttype filter hook input priority 0; policy drop;\n\
         \t\tiif lo accept\n\
         \t\tct state established,related accept\n\
         \t\ttcp dport 22 accept\n\
         \t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept\n\
         \t}\n\
         }\n",
    );
    run_ok(
        Command::new("ip")
            .args(["netns", "exec", &pair.server, "nft", "-f"])
            .arg(&rules),
    );
    let config = dir.config_file("knock_answer = \"drop\"\n");
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Skb, &["--config", &config, "--knock", KNOCK]);
    let scanner = Scanner::new(&pair);
    let mut rng = seeded("behind_a_default_deny_firewall_knock_ports_are_silent_too");
    let started = Instant::now();
    // One order per probe: every silent port costs the scanner its wait.
    let bad = scan_all(&scanner, &pair, &window(), &mut rng, 1, |_| Answer::Nothing);
    eprintln!("{} probes in {:?}", scanner.sent(), started.elapsed());
    assert!(
        bad.is_empty(),
        "behind the firewall every port must be silent:\n{}",
        bad.join("\n")
    );
    assert_no_ban(&iplock, "scans of the knock ports ban nobody");
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        SSH,
        "the client knocked right behind the firewall",
    ));
}

/// A spray to every port of a range that holds the next step, between two
/// correct knocks, resets the progress: the remaining correct knocks then
/// open nothing. The TCP spray starts above the first knock port, which
/// restarts a sequence wherever it comes and so would prove nothing.
fn a_spray_between_knocks_opens_nothing(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let scanner = Scanner::new(&pair);
    let mut rng = seeded("a_spray_between_knocks_opens_nothing");
    let gap = Duration::from_millis(50);

    // UDP to 1-2000 (udp:1300 is the next step) after the first knock.
    for src in [CLIENT_V4, CLIENT_V6] {
        let server = iplock_e2e::frame::server_of(src);
        pair.knock_tcp(src, server, 1100);
        sleep(gap);
        let ports: Vec<u16> = (1..=2000).collect();
        let answers = scanner.scan(src, L4::Udp, &ports, Order::Ascending);
        assert_eq!(
            answers[&1300],
            Answer::Unreachable,
            "the stack answers udp:1300"
        );
        sleep(gap);
        pair.knock(src, server, "udp:1300,tcp:1200");
        pair.assert_dropped(
            src,
            server,
            SSH,
            "a UDP spray after the first knock resets it",
        );
    }

    // SYNs to 1101-2000 (tcp:1200 is the next step) after the second knock.
    let src = OTHER_V4;
    pair.knock(src, SERVER_V4, "tcp:1100,udp:1300");
    sleep(gap);
    let ports: Vec<u16> = (1101..=2000).collect();
    let answers = scanner.scan(src, L4::SYN, &ports, Order::Random(rng.next_u64()));
    assert_eq!(answers[&1200], Answer::Rst, "the stack answers tcp:1200");
    sleep(gap);
    pair.knock_tcp(src, SERVER_V4, 1200);
    pair.assert_dropped(
        src,
        SERVER_V4,
        SSH,
        "a SYN spray after the second knock resets it",
    );
    eprintln!("{} spray packets", scanner.sent());

    // The same sequence alone opens the door.
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
    pair.add_client_addr(v4);
    pair.knock(v4, SERVER_V4, KNOCK);
    drop(pair.connect(v4, SERVER_V4, SSH, "the sequence alone opens the door"));
    // Only the attempts on the closed door banned anyone.
    let status = iplock.status_json();
    for (addr, reason) in bans(&status) {
        assert_eq!(reason, "closed_door", "{addr} was banned: {status}");
    }
}

/// How many addresses the attacker has.
const ATTACKER_ADDRS: u8 = 16;
/// Its packet budget.
const BUDGET: u64 = 1_000_000;
/// Random ports per protocol it probes for a ban.
const ORACLE_SAMPLE: usize = 200;

/// A script that knows the server's address and that SSH is on port 22,
/// and tries to find the sequence: by scanning for ports that answer
/// otherwise than the rest, by probing single ports and checking whether
/// that banned it, and by spraying every port between steps; then it tries
/// to connect. Everything it learns is written to `leaks`.
struct Attacker<'a> {
    pair: &'a NetnsPair,
    scanner: Scanner,
    addrs: Vec<IpAddr>,
    /// Index of the address in use; the next ones are fresh.
    current: usize,
    leaks: Vec<String>,
    /// Ports that answered otherwise, or whose probe banned.
    candidates: Vec<(L4, u16)>,
    connects: u64,
    opened: bool,
}

impl<'a> Attacker<'a> {
    fn new(pair: &'a NetnsPair) -> Attacker<'a> {
        let addrs: Vec<IpAddr> = (0..ATTACKER_ADDRS)
            .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)))
            .collect();
        for &a in &addrs {
            pair.add_client_addr(a);
        }
        Attacker {
            pair,
            scanner: Scanner::new(pair),
            addrs,
            current: 0,
            leaks: Vec::new(),
            candidates: Vec::new(),
            connects: 0,
            opened: false,
        }
    }

    fn addr(&self) -> Option<IpAddr> {
        self.addrs.get(self.current).copied()
    }

    /// The address in use is banned (or spent): take the next one.
    fn burn(&mut self) {
        self.current += 1;
    }

    fn sent(&self) -> u64 {
        self.scanner.sent() + self.connects
    }

    /// Every port but SSH, ascending, with `probe`; a run of silence to the
    /// end means the address got banned by the first silent port.
    fn scan_for_odd_ports(&mut self, name: &str, probe: L4) {
        let mut remaining: Vec<u16> = (1..=u16::MAX).filter(|&p| p != SSH).collect();
        while !remaining.is_empty() {
            let Some(src) = self.addr() else { return };
            let answers = self.scanner.scan(src, probe, &remaining, Order::Ascending);
            let answered = remaining
                .iter()
                .rposition(|p| answers[p] != Answer::Nothing)
                .map_or(0, |i| i + 1);
            let head: BTreeMap<u16, Answer> = remaining[..answered]
                .iter()
                .map(|p| (*p, answers[p]))
                .collect();
            for (port, got) in odd_ones(&head) {
                self.leaks.push(format!(
                    "{name} scan: port {port} answers {got:?}, unlike the rest"
                ));
                self.candidates.push((probe, port));
            }
            let tail = remaining[answered..].to_vec();
            if tail.len() < 64 {
                for port in tail {
                    self.leaks.push(format!(
                        "{name} scan: port {port} is silent, unlike the rest"
                    ));
                    self.candidates.push((probe, port));
                }
                return;
            }
            self.leaks.push(format!(
                "{name} scan: {src} banned at port {}, silent from there on",
                tail[0]
            ));
            self.candidates.push((probe, tail[0]));
            self.burn();
            remaining = tail[1..].to_vec();
        }
    }

    /// Whether `src` is banned: four ports that answer otherwise stay
    /// silent.
    fn banned(&self, src: IpAddr) -> bool {
        let refs = [1, 2, 3, 4];
        let answers = self.scanner.scan(src, L4::SYN, &refs, Order::Ascending);
        answers.values().all(|a| *a == Answer::Nothing)
    }

    /// A probe to each candidate and to random ports, each followed by a
    /// check whether it banned the source.
    fn ban_oracle(&mut self, rng: &mut Rng) {
        let mut tries = self.candidates.clone();
        for probe in [L4::SYN, L4::Udp] {
            for _ in 0..ORACLE_SAMPLE {
                let port = 1 + rng.below(u64::from(u16::MAX)) as u16;
                if port != SSH {
                    tries.push((probe, port));
                }
            }
        }
        for (probe, port) in tries {
            let Some(src) = self.addr() else { return };
            self.scanner.scan(src, probe, &[port], Order::Ascending);
            if self.banned(src) {
                self.leaks
                    .push(format!("ban oracle: a {probe:?} to {port} banned {src}"));
                if !self.candidates.contains(&(probe, port)) {
                    self.candidates.push((probe, port));
                }
                self.burn();
            }
        }
    }

    /// Connects to SSH from the address in use, which a closed door bans.
    fn try_door(&mut self, why: &str) {
        let Some(src) = self.addr() else { return };
        self.connects += 1;
        if self
            .pair
            .try_connect(src, SERVER_V4, SSH, Duration::from_millis(500))
            .is_some()
        {
            self.leaks.push(format!("{why}: the door opened for {src}"));
            self.opened = true;
        }
        self.burn();
    }

    /// The candidates knocked in each order (three at most), then SSH.
    fn try_candidates(&mut self) {
        let c: Vec<(L4, u16)> = self.candidates.iter().copied().take(3).collect();
        let orders: Vec<Vec<(L4, u16)>> = match c.len() {
            0 => return,
            1 => vec![c.clone()],
            2 => vec![vec![c[0], c[1]], vec![c[1], c[0]]],
            _ => [
                [0, 1, 2],
                [0, 2, 1],
                [1, 0, 2],
                [1, 2, 0],
                [2, 0, 1],
                [2, 1, 0],
            ]
            .iter()
            .map(|o| o.iter().map(|&i| c[i]).collect())
            .collect(),
        };
        for seq in orders {
            let Some(src) = self.addr() else { return };
            for &(probe, port) in &seq {
                self.scanner.scan(src, probe, &[port], Order::Ascending);
                sleep(Duration::from_millis(20));
            }
            self.try_door(&format!("knocking {seq:?}"));
            if self.opened {
                return;
            }
        }
    }

    /// SYNs to every port, UDP to every port, SYNs to every port again,
    /// then SSH: whichever ports the steps are, each was sprayed in turn.
    fn spray(&mut self) {
        let Some(src) = self.addr() else { return };
        let ports: Vec<u16> = (1..=u16::MAX).filter(|&p| p != SSH).collect();
        for probe in [L4::SYN, L4::Udp, L4::SYN] {
            self.scanner.scan(src, probe, &ports, Order::Ascending);
        }
        self.try_door("spraying every port between steps");
    }

    fn run(&mut self, rng: &mut Rng) {
        let started = Instant::now();
        self.scan_for_odd_ports("SYN", L4::SYN);
        self.scan_for_odd_ports("UDP", L4::Udp);
        self.ban_oracle(rng);
        self.try_candidates();
        if !self.opened {
            self.spray();
        }
        eprintln!(
            "attacker: {} packets from {} of {ATTACKER_ADDRS} addresses in {:?}",
            self.sent(),
            self.current.min(self.addrs.len()),
            started.elapsed()
        );
        assert!(self.sent() <= BUDGET, "the attack overran its budget");
    }
}

fn an_attacker_learns_nothing_from_a_fixed_sequence(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let mut rng = seeded("an_attacker_learns_nothing_from_a_fixed_sequence");
    let mut attacker = Attacker::new(&pair);
    attacker.run(&mut rng);
    assert!(
        attacker.leaks.is_empty() && !attacker.opened,
        "the attacker learned:\n{}",
        attacker.leaks.join("\n")
    );
    let status = iplock.status_json();
    for (addr, reason) in bans(&status) {
        assert_eq!(reason, "closed_door", "{addr} was banned: {status}");
    }
    // A client that knows the sequence gets in.
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, SSH, "the client knocked right"));
}

/// The same attack on a sequence that changes every 30 s, run by
/// `iplock run`; the client with the secret gets in.
#[test]
fn an_attacker_learns_nothing_from_a_rotating_sequence() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let out = run_bounded(
        Command::new(binary()).args(["secret", "new"]),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "iplock secret new: {}",
        describe(&out)
    );
    let secret = dir.write("secret", &String::from_utf8_lossy(&out.stdout));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[SSH]);
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nmode = \"native\"\nrotate = {{ secret_file = \"{}\", period = \"30s\" }}\n",
        pair.server_if,
        secret.display()
    ));
    let iplock = Iplock::new(&pair);
    let daemon = Daemon::start(&iplock, &["--config", &config], "info");
    let mut rng = seeded("an_attacker_learns_nothing_from_a_rotating_sequence");
    let mut attacker = Attacker::new(&pair);
    attacker.run(&mut rng);
    assert!(
        attacker.leaks.is_empty() && !attacker.opened,
        "the attacker learned:\n{}\nstatus: {}\nlog:\n{}",
        attacker.leaks.join("\n"),
        iplock.status_json(),
        daemon.log()
    );
    let status = iplock.status_json();
    for (addr, reason) in bans(&status) {
        assert_eq!(reason, "closed_door", "{addr} was banned: {status}");
    }
    let out = iplock_knock(
        &pair,
        &[
            &SERVER_V4.to_string(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--period",
            "30s",
            "--then-connect",
            "22",
        ],
    );
    assert!(
        out.status.success(),
        "the client with the secret gets in: {}\nlog:\n{}",
        describe(&out),
        daemon.log()
    );
}

/// With stack answers a knock would reach a socket listening on its port,
/// so `load` refuses such a port (exit 2, one sentence naming it, nothing
/// attached), and `reload` refuses it without changing the filter.
#[test]
fn load_refuses_a_knock_port_with_a_listening_socket() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    for (proto, port) in [("tcp", 1100), ("udp", 1300)] {
        let socket = in_netns(&pair.server, || -> Box<dyn Send> {
            match proto {
                "tcp" => Box::new(TcpListener::bind(("0.0.0.0", port)).unwrap()),
                _ => Box::new(UdpSocket::bind(("::", port)).unwrap()),
            }
        });
        let out = iplock.run("load", &iplock.settings(Mode::Skb, &["--knock", KNOCK]));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let line = one_stderr_line(&out);
        assert!(
            line.contains(&port.to_string()) && line.contains(proto),
            "{line:?} names neither {proto} nor {port}"
        );
        assert!(!pair.server_has_xdp(), "a refused load attached nothing");
        assert!(!iplock.pin_dir().exists(), "a refused load pinned nothing");
        drop(socket);
    }
    // A socket of the other protocol on the port is no obstacle.
    let other = in_netns(&pair.server, || UdpSocket::bind(("0.0.0.0", 1100)).unwrap());
    iplock.load(Mode::Skb, &["--knock", KNOCK]);
    drop(other);
    let listener = in_netns(&pair.server, || TcpListener::bind(("::", 1200)).unwrap());
    let out = iplock.run("reload", &iplock.settings(Mode::Skb, &["--knock", KNOCK]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let line = one_stderr_line(&out);
    assert!(line.contains("1200") && line.contains("tcp"), "{line:?}");
    assert!(
        pair.server_has_xdp(),
        "a refused reload leaves the filter as it was"
    );
    // Dropped knocks reach nothing: then a listening socket is no obstacle.
    iplock.run_ok(
        "reload",
        &iplock.settings(Mode::Skb, &["--knock", KNOCK, "--knock-answer", "drop"]),
    );
    drop(listener);
}

/// `iplock run` warns, once, when a socket starts listening on a knock port.
#[test]
fn run_warns_of_a_socket_that_appears_on_a_knock_port() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let args = iplock.settings(Mode::Skb, &["--knock", KNOCK, "--sweep-every", "200ms"]);
    let mut daemon = Daemon::start(&iplock, &args, "info");
    let _socket = in_netns(&pair.server, || UdpSocket::bind(("0.0.0.0", 1300)).unwrap());
    let warning = "a socket listens on udp port 1300";
    daemon.wait_for_log(warning, Duration::from_secs(5));
    sleep(Duration::from_secs(1));
    assert_eq!(daemon.log().matches(warning).count(), 1, "{}", daemon.log());
}
