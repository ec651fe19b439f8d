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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_e2e::rng::{Rng, seed};
use iplock_e2e::status::{counter, source_step};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, OTHER_V6,
    SERVER_V4, SERVER_V6, TempDir, both_modes, echo, in_netns, knock_tcp, knock_udp, link_json,
    require_root, try_connect,
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
const STEPS: [(L4, u16); 3] = [(L4::Syn, 100), (L4::Udp, 300), (L4::Syn, 200)];
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
    let config = dir.config_file(&format!("[ban]\ntrap_ports = [{TRAP_PORT}]\n"));
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
    // order, so one round now and then leaves an old entry in place.
    let round = 8 * SMALL_MAP;
    let mut sent = 0;
    for _ in 0..4 {
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

    // Its next step now looks like a knock out of order: a wrong knock,
    // which bans it (wrong_knock is on by default).
    pair.knock(CLIENT_V4, SERVER_V4, "udp:300,tcp:200");
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "its first step was evicted by the flood",
    );
    let bans = ban_list(&iplock);
    assert!(
        bans.iter()
            .any(|b| b["addr"] == "192.0.2.2" && b["reason"] == "wrong_knock"),
        "the evicted client's next step counts as a wrong knock: {bans:?}"
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L4 {
    /// A bare TCP SYN.
    Syn,
    /// A UDP datagram.
    Udp,
}

/// An AF_PACKET socket on the client veth that sends whole Ethernet frames
/// to the server veth, with any source address.
struct Injector {
    fd: OwnedFd,
    client_mac: [u8; 6],
    server_mac: [u8; 6],
}

impl Injector {
    fn new(pair: &NetnsPair) -> Injector {
        let (ifindex, client_mac) = link(&pair.client, &pair.client_if);
        let (_, server_mac) = link(&pair.server, &pair.server_if);
        let fd = in_netns(&pair.client, || {
            // Protocol 0: this socket sends and never receives.
            // SAFETY: plain socket(2); the fd is owned at once.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(
                raw >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: `raw` is a new fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: an all-zero sockaddr_ll is a valid value.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex;
            // SAFETY: `addr` lives across the call, which reads its size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            fd
        });
        Injector {
            fd,
            client_mac,
            server_mac,
        }
    }

    /// A knock on `KNOCK`'s step `step` from `src`.
    fn knock(&self, src: IpAddr, step: usize, rng: &mut Rng) {
        let (l4, port) = STEPS[step];
        self.send(src, l4, port, rng);
    }

    fn syn(&self, src: IpAddr, port: u16, rng: &mut Rng) {
        self.send(src, L4::Syn, port, rng);
    }

    fn send(&self, src: IpAddr, l4: L4, dport: u16, rng: &mut Rng) {
        let dst = match src {
            IpAddr::V4(_) => SERVER_V4,
            IpAddr::V6(_) => SERVER_V6,
        };
        let sport = 1024 + rng.below(64_512) as u16;
        let frame = self.frame(src, dst, l4, sport, dport, rng.next_u64() as u32);
        // SAFETY: `frame` is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send a spoofed frame: {}",
            std::io::Error::last_os_error()
        );
        // The veth hands a frame to the peer within the call, but a full
        // receive queue drops it silently: pausing now and then lets the
        // kernel drain the queue, and the tests count every frame.
        if rng.below(32) == 0 {
            sleep(Duration::from_millis(1));
        }
    }

    /// An Ethernet frame carrying a TCP SYN or a UDP datagram, with valid IPv4
    /// header and transport checksums: the stack drops bad ones before anything
    /// can answer, which would hide a verdict of the filter.
    fn frame(&self, src: IpAddr, dst: IpAddr, l4: L4, sport: u16, dport: u16, seq: u32) -> Vec<u8> {
        let (proto, mut segment) = match l4 {
            L4::Syn => {
                let mut tcp = Vec::with_capacity(20);
                tcp.extend_from_slice(&sport.to_be_bytes());
                tcp.extend_from_slice(&dport.to_be_bytes());
                tcp.extend_from_slice(&seq.to_be_bytes());
                tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
                tcp.extend_from_slice(&[5 << 4, 0x02]); // 20-byte header, SYN
                tcp.extend_from_slice(&64_240u16.to_be_bytes()); // window
                tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                (libc::IPPROTO_TCP as u8, tcp)
            }
            L4::Udp => {
                let payload = b"knock";
                let len = (8 + payload.len()) as u16;
                let mut udp = Vec::with_capacity(len as usize);
                udp.extend_from_slice(&sport.to_be_bytes());
                udp.extend_from_slice(&dport.to_be_bytes());
                udp.extend_from_slice(&len.to_be_bytes());
                udp.extend_from_slice(&[0, 0]); // checksum
                udp.extend_from_slice(payload);
                (libc::IPPROTO_UDP as u8, udp)
            }
        };
        let len = segment.len();
        let mut pseudo = Vec::with_capacity(40);
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&[0, proto]);
                pseudo.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&(len as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, proto]);
            }
            _ => panic!("{src} and {dst} are not of one family"),
        }
        let mut sum = checksum(&[&pseudo, &segment]);
        // In UDP a zero checksum means none; an all-ones one is the same sum.
        if proto == libc::IPPROTO_UDP as u8 && sum == 0 {
            sum = 0xffff;
        }
        let at = if proto == libc::IPPROTO_TCP as u8 {
            16
        } else {
            6
        };
        segment[at..at + 2].copy_from_slice(&sum.to_be_bytes());

        let mut frame = Vec::with_capacity(14 + 40 + len);
        frame.extend_from_slice(&self.server_mac);
        frame.extend_from_slice(&self.client_mac);
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut ip = Vec::with_capacity(20);
                ip.extend_from_slice(&[0x45, 0]);
                ip.extend_from_slice(&((20 + len) as u16).to_be_bytes());
                ip.extend_from_slice(&(seq as u16).to_be_bytes()); // id
                ip.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]); // DF, ttl, checksum
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let sum = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                frame.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend_from_slice(&0x86ddu16.to_be_bytes());
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
                frame.extend_from_slice(&[proto, 64]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            _ => unreachable!("checked above"),
        }
        frame.extend_from_slice(&segment);
        frame
    }
}

/// Interface index and MAC address of `dev` in namespace `ns`.
fn link(ns: &str, dev: &str) -> (i32, [u8; 6]) {
    let json = link_json(ns, dev);
    let ifindex = json[0]["ifindex"].as_i64().expect("ifindex") as i32;
    let text = json[0]["address"].as_str().expect("address");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    (ifindex, mac)
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`, each of
/// even length except maybe the last.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Seeded from `IPLOCK_SPOOF_SEED`, else the clock; the seed is printed so
/// a failure can be replayed.
fn seeded(test: &str) -> Rng {
    let seed = seed(SEED_VAR);
    eprintln!("{test}: seed {seed} (replay: {SEED_VAR}={seed})");
    Rng::new(seed)
}
