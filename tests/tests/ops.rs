//! Running iplock for real (issue 3): the allow and ban lists changed at run
//! time, `reload` keeping state while changing the sequence, and the
//! `iplock run` daemon with its event log, Prometheus endpoint, SIGHUP
//! reload and SIGTERM with and without `--keep`, and the endpoint's bounds
//! against clients that trickle or flood their request.
//!
//! Reload attaches the new program to each link, so it runs in both XDP
//! modes; the rest only changes maps or wraps load, and runs in native mode.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_e2e::frame::{Injector, L4};
use iplock_e2e::status::{field, knock_sequence, source_state};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4,
    SERVER_V6, TempDir, both_modes, describe, echo, in_netns, one_stderr_line,
    require_python_module, require_root, wait_for,
};
use serde_json::Value;

both_modes!(reload_keeps_door_and_ban_and_switches_sequence);

/// A sequence with no port in common with [`KNOCK`], so knocking the old one
/// after a reload touches no knock port at all.
const NEW_KNOCK: &str = "tcp:1234,udp:4000,tcp:2000";
/// An unrelated port the echo server also serves: it passes unless banned.
const OTHER_PORT: u16 = 8080;
/// A third IPv4 source, added to the client namespace by tests that need one
/// more than the harness provides.
const THIRD_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
/// Where `iplock run --metrics` listens, on the server namespace's loopback
/// (private to the namespace, so a fixed port cannot collide).
const METRICS: &str = "127.0.0.1:9477";

/// `ban list --json`, as addresses.
fn banned(iplock: &Iplock) -> Vec<String> {
    field(&iplock.json("ban", &["list", "--json"]), "addr")
}

/// The knock sequence in `status --json`, without the per-step timeouts.
fn status_knock(status: &Value) -> String {
    knock_sequence(status, "knock").unwrap_or_else(|| panic!("no knock sequence in {status}"))
}

#[test]
fn allow_add_lets_a_source_in_until_it_expires() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", KNOCK]);
    let client = CLIENT_V4.to_string();

    // The entry expires 2 s after some moment during the command: no
    // earlier than 2 s after `before`, no later than 2 s after `added`.
    let before = Instant::now();
    let out = iplock.run_ok("allow", &["add", &client, "--for", "2s"]);
    let added = Instant::now();
    assert!(out.contains("allowed for 2s"), "allow add said: {out}");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is allowed"));
    let listing = Instant::now();
    let allowed = field(&iplock.json("allow", &["list", "--json"]), "cidr");
    assert!(
        listing - before < Duration::from_secs(2),
        "the checks took longer than the allow entry lasts"
    );
    assert_eq!(allowed, [format!("{client}/32")], "allow list --json");
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "only 192.0.2.2 is allowed");

    sleep((added + Duration::from_millis(2500)).saturating_duration_since(Instant::now()));
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "the allow entry has expired");
    let allowed = field(&iplock.json("allow", &["list", "--json"]), "cidr");
    assert!(
        allowed.is_empty(),
        "expired entry still listed: {allowed:?}"
    );
}

#[test]
fn ban_add_drops_everything_and_ban_del_restores() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", KNOCK]);
    let client = CLIENT_V4.to_string();
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "unrelated ports pass"));

    iplock.run_ok("ban", &["add", &client]);
    let bans = iplock.json("ban", &["list", "--json"]);
    assert_eq!(field(&bans, "addr"), [client.as_str()], "{bans}");
    assert_eq!(field(&bans, "reason"), ["manual"], "{bans}");
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "banned: the knocks were dropped");
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        OTHER_PORT,
        "banned: everything is dropped",
    );
    drop(pair.connect(OTHER_V4, SERVER_V4, OTHER_PORT, "only 192.0.2.2 is banned"));
    assert_eq!(
        source_state(&iplock.status_json(), CLIENT_V4),
        None,
        "the knocks of a banned source must not reach the sequence"
    );

    iplock.run_ok("ban", &["del", &client]);
    assert!(banned(&iplock).is_empty(), "ban del left a ban");
    let again = iplock.run("ban", &["del", &client]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "second ban del: {}",
        describe(&again)
    );
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "the ban was lifted"));
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the ban was lifted"));
}

#[test]
fn ban_flush_lifts_every_ban() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", KNOCK]);

    iplock.run_ok("ban", &["add", &CLIENT_V4.to_string()]);
    iplock.run_ok("ban", &["add", &CLIENT_V6.to_string(), "--for", "1h"]);
    // One ban the program makes itself: a SYN to the closed door.
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "nobody knocked");
    // The bans list sorts by address; IPv6 shows the banned /64.
    wait_for("three bans listed", Duration::from_secs(5), || {
        let bans = banned(&iplock);
        if bans == ["192.0.2.2", "192.0.2.3", "2001:db8::"] {
            Ok(())
        } else {
            Err(format!("{bans:?}"))
        }
    });
    pair.assert_dropped(CLIENT_V4, SERVER_V4, OTHER_PORT, "192.0.2.2 is banned");

    let out = iplock.run_ok("ban", &["flush"]);
    assert!(out.contains("lifted 3 ban(s)"), "ban flush said: {out}");
    assert!(banned(&iplock).is_empty(), "bans left after flush");
    for (src, dst) in [
        (CLIENT_V4, SERVER_V4),
        (OTHER_V4, SERVER_V4),
        (CLIENT_V6, SERVER_V6),
    ] {
        drop(pair.connect(src, dst, OTHER_PORT, "every ban was flushed"));
    }
}

fn reload_keeps_door_and_ban_and_switches_sequence(mode: Mode) {
    let pair = NetnsPair::new();
    pair.add_client_addr(THIRD_V4);
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    // A long window: the door must still be open after the reload, however
    // slow the machine.
    iplock.load(mode, &["--knock", KNOCK, "--open-window", "60s"]);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked");
    iplock.run_ok("ban", &["add", &OTHER_V4.to_string()]);

    let out = iplock.run_ok("reload", &iplock.settings(mode, &["--knock", NEW_KNOCK]));
    assert!(out.contains("1 interface(s) kept"), "reload said: {out}");
    let status = iplock.status_json();
    assert_eq!(status_knock(&status), NEW_KNOCK, "{status}");
    assert_eq!(status["interfaces"][0]["mode"], mode.arg(), "{status}");
    assert_eq!(
        source_state(&status, CLIENT_V4).as_deref(),
        Some("open"),
        "{status}"
    );
    assert_eq!(field(&status["bans"], "addr"), [OTHER_V4.to_string()]);

    echo(&mut session, "across the reload");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the door stays open"));
    pair.assert_dropped(OTHER_V4, SERVER_V4, OTHER_PORT, "the ban stays");
    pair.knock(THIRD_V4, SERVER_V4, KNOCK);
    pair.assert_dropped(THIRD_V4, SERVER_V4, 22, "the old sequence is gone");
    pair.knock(CLIENT_V6, SERVER_V6, NEW_KNOCK);
    drop(pair.connect(CLIENT_V6, SERVER_V6, 22, "the new sequence opens"));
}

#[test]
fn invalid_reload_exits_2_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", KNOCK]);
    let before = iplock.status_json();
    let iface = pair.server_if.as_str();
    let sorted = dir.write(
        "sorted.toml",
        &format!("interfaces = [\"{iface}\"]\nknock = \"tcp:1000,tcp:2000,tcp:3000\"\n"),
    );
    let broken = dir.write(
        "broken.toml",
        &format!("interfaces = [\"{iface}\"]\nknock = [\n"),
    );
    let unknown_key = dir.write(
        "unknown.toml",
        &format!("interfaces = [\"{iface}\"]\nknock = \"{NEW_KNOCK}\"\nopen_windw = \"5s\"\n"),
    );
    let missing = dir.path().join("missing.toml");
    let cases: [(&str, Vec<&str>); 5] = [
        (
            "ascending sequence",
            vec!["--config", sorted.to_str().unwrap()],
        ),
        (
            "unparsable file",
            vec!["--config", broken.to_str().unwrap()],
        ),
        (
            "unknown key",
            vec!["--config", unknown_key.to_str().unwrap()],
        ),
        ("missing file", vec!["--config", missing.to_str().unwrap()]),
        (
            "protected port in the sequence",
            vec!["--iface", iface, "--knock", "tcp:1234,tcp:22,udp:4000"],
        ),
    ];
    for (what, args) in cases {
        let out = iplock.run("reload", &args);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", describe(&out));
        one_stderr_line(&out);
        let after = iplock.status_json();
        assert_eq!(
            after["config"], before["config"],
            "{what} changed the config"
        );
        assert_eq!(after["interfaces"], before["interfaces"], "{what}");
    }
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the old sequence still opens"));
}

/// Starts `iplock run <args>` logging at info, where its events are.
fn start_daemon(iplock: &Iplock, args: &[&str]) -> Daemon {
    Daemon::start(iplock, args, "info")
}

/// A config file for `iplock run` on the server veth in native mode.
fn daemon_config(dir: &TempDir, pair: &NetnsPair, knock: &str) -> String {
    dir.config_file(&format!(
        "interfaces = [\"{}\"]\nmode = \"native\"\nknock = \"{knock}\"\n",
        pair.server_if
    ))
}

/// A connection to the metrics endpoint, made in the server namespace.
fn metrics_client(pair: &NetnsPair) -> TcpStream {
    in_netns(&pair.server, || {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn
    })
}

/// GET /metrics from a thread in the server namespace; the metric lines as
/// `name{labels}` to value.
fn scrape(pair: &NetnsPair) -> Vec<(String, u64)> {
    parse_metrics(&scrape_text(pair))
}

/// The `name{labels}` and value of each metric line of `text`.
fn parse_metrics(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad metric line {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

/// GET /metrics; the body, after checking the head.
fn scrape_text(pair: &NetnsPair) -> String {
    let response = {
        let mut conn = metrics_client(pair);
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("read the metrics: {e}"));
        response
    };
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    assert!(head.contains("Content-Type: text/plain"), "{response}");
    body.to_string()
}

/// The metrics `status` implies, in the endpoint's names.
fn expected_metrics(status: &Value) -> Vec<(String, u64)> {
    let counters = status["counters"].as_object().expect("counters");
    let count = |name: &str| {
        counters[name]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {name} in {status}"))
    };
    let len = |key: &str| status[key].as_array().expect(key).len() as u64;
    let mut want: Vec<(String, u64)> = counters
        .keys()
        .filter(|name| *name != "bans_added")
        .map(|name| {
            (
                format!("iplock_packets_total{{verdict=\"{name}\"}}"),
                count(name),
            )
        })
        .collect();
    let interfaces = status["interfaces"].as_array().expect("interfaces");
    want.extend(interfaces.iter().map(|i| {
        (
            format!(
                "iplock_interface_info{{name={},mode={}}}",
                i["name"], i["mode"]
            ),
            1,
        )
    }));
    want.extend([
        (
            format!(
                "iplock_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1,
        ),
        ("iplock_door_opens_total".to_string(), count("door_opened")),
        ("iplock_bans_total".to_string(), count("bans_added")),
        ("iplock_sources".to_string(), len("sources")),
        ("iplock_bans_active".to_string(), len("bans")),
    ]);
    // The SPA verdicts, as status counts them.
    let spa = &status["spa"];
    want.push((
        "iplock_spa_accepted_total".to_string(),
        spa["accepted"].as_u64().expect("spa.accepted"),
    ));
    let refused = spa["refused"].as_object().expect("spa.refused");
    want.extend(refused.iter().map(|(reason, n)| {
        (
            format!("iplock_spa_refused_total{{reason=\"{reason}\"}}"),
            n.as_u64().expect("a count"),
        )
    }));
    want.sort();
    want
}

#[test]
fn run_logs_events_and_serves_metrics_that_match_status() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    // The gauges of sources and bans are the sweep's counts.
    let mut daemon = start_daemon(
        &iplock,
        &[
            "--config",
            &config,
            "--metrics",
            METRICS,
            "--sweep-every",
            "200ms",
        ],
    );

    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    daemon.wait_for_log(
        &format!("door opened for {CLIENT_V4} on {}", pair.server_if),
        Duration::from_secs(10),
    );
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked"));
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "192.0.2.3 did not knock");
    daemon.wait_for_log(
        &format!("{OTHER_V4} on {}", pair.server_if),
        Duration::from_secs(10),
    );
    assert!(
        daemon.log().contains("banned (closed_door)"),
        "the ban is not logged:\n{}",
        daemon.log()
    );

    // Stray packets (IPv6 neighbour discovery, say) may move a counter at
    // any time, and the gauges follow the maps one sweep late: compare only
    // when two scrapes around the status agree, until they agree with it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let first = scrape(&pair);
        let status = iplock.status_json();
        let mut second = scrape(&pair);
        second.sort();
        let want = expected_metrics(&status);
        if first.len() == second.len() && first.iter().all(|m| second.contains(m)) && second == want
        {
            break second;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never matched the status:\n{second:?}\nwanted\n{want:?}\nfrom {status}"
        );
        sleep(Duration::from_millis(200));
    };
    let get = |name: &str| metrics.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(get("iplock_door_opens_total"), 1);
    assert_eq!(get("iplock_bans_total"), 1);
    assert_eq!(get("iplock_bans_active"), 1);
    assert_eq!(get("iplock_packets_total{verdict=\"door_passed\"}"), 1);
}

#[test]
fn run_reloads_on_sighup_and_detaches_on_sigterm() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config]);
    assert_eq!(status_knock(&iplock.status_json()), KNOCK);

    daemon_config(&dir, &pair, NEW_KNOCK);
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("reloaded", Duration::from_secs(20));
    let status = iplock.status_json();
    assert_eq!(status_knock(&status), NEW_KNOCK, "{status}");
    pair.knock(CLIENT_V4, SERVER_V4, NEW_KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the reloaded sequence opens"));

    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "iplock run: {exit}\n{}", daemon.log());
    assert!(
        !iplock.pin_dir().exists(),
        "{} left after SIGTERM",
        iplock.pin_dir().display()
    );
    assert!(
        !pair.server_has_xdp(),
        "XDP left after SIGTERM: {}",
        pair.server_link_details()
    );
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "the filter is gone"));
}

#[test]
fn run_keep_leaves_the_filter_running_on_sigterm() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let mut daemon = start_daemon(
        &iplock,
        &iplock.settings(
            Mode::Native,
            &["--knock", KNOCK, "--open-window", "60s", "--keep"],
        ),
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    daemon.wait_for_log(
        &format!("door opened for {CLIENT_V4}"),
        Duration::from_secs(10),
    );

    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    assert!(
        exit.success(),
        "iplock run --keep: {exit}\n{}",
        daemon.log()
    );
    assert!(iplock.pin_dir().exists(), "--keep removed the pin dir");
    assert!(pair.server_has_xdp(), "--keep detached the filter");
    let status = iplock.status_json();
    assert_eq!(
        source_state(&status, CLIENT_V4).as_deref(),
        Some("open"),
        "the kept filter lost its state: {status}"
    );
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the door opened under run"));
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "the kept filter still filters");

    iplock.unload();
    assert!(!iplock.pin_dir().exists(), "pin dir left after unload");
    assert!(!pair.server_has_xdp(), "XDP left after unload");
}

/// A client that sends the start of a request one byte at a time, each
/// `every` apart, until the server closes the connection; it returns how
/// long the server kept it.
fn trickle(mut conn: TcpStream, every: Duration) -> thread::JoinHandle<Duration> {
    thread::spawn(move || {
        let start = Instant::now();
        for b in b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
            .iter()
            .cycle()
        {
            if conn.write_all(&[*b]).is_err() {
                break;
            }
            sleep(every);
        }
        start.elapsed()
    })
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn metrics_answer_while_a_client_trickles_its_request() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config, "--metrics", METRICS]);

    let slow = trickle(metrics_client(&pair), Duration::from_millis(1500));
    sleep(Duration::from_millis(200));
    let start = Instant::now();
    let metrics = scrape(&pair);
    let took = start.elapsed();
    assert!(
        metrics.iter().any(|(n, _)| n == "iplock_sources"),
        "{metrics:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "a scrape took {took:?} while a client trickled"
    );
    // The trickler is cut off by the header read timeout, not served forever.
    let kept = slow.join().unwrap();
    assert!(
        kept < Duration::from_secs(10),
        "the trickling client was kept {kept:?}"
    );
    eprintln!("scrape took {took:?} beside a trickling client, which was cut off after {kept:?}");
    daemon.assert_running();
}

#[test]
fn metrics_refuse_a_huge_request_line_without_holding_it() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config, "--metrics", METRICS]);
    scrape(&pair);
    let before = rss_kib(daemon.pid());

    // 200 MB of request line with no newline, or as much as the server
    // takes before it closes the connection.
    let mut conn = metrics_client(&pair);
    let chunk = vec![b'A'; 1 << 20];
    let mut sent = 0usize;
    let mut refused = None;
    conn.write_all(b"GET /").unwrap();
    for _ in 0..200 {
        match conn.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let after = rss_kib(daemon.pid());
    let refused = refused.unwrap_or_else(|| panic!("the server took all {sent} bytes"));
    assert!(
        matches!(
            refused.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "the connection was not closed: {refused}"
    );
    assert!(
        after < before + 8 * 1024,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
    eprintln!(
        "the server closed the connection after {sent} bytes of request line; VmRSS {before} KiB before, {after} KiB after"
    );
    // It still serves.
    scrape(&pair);
    daemon.assert_running();
}

#[test]
fn run_stops_at_once_on_sigterm_with_a_trickling_metrics_client() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config, "--metrics", METRICS]);
    let slow = trickle(metrics_client(&pair), Duration::from_millis(100));
    sleep(Duration::from_millis(300));

    let start = Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    let took = start.elapsed();
    assert!(exit.success(), "iplock run: {exit}\n{}", daemon.log());
    assert!(
        took < Duration::from_secs(2),
        "iplock run took {took:?} to stop with a trickling metrics client"
    );
    slow.join().unwrap();
    eprintln!("iplock run stopped {took:?} after SIGTERM with a trickling metrics client");
}

/// KNOCK's steps, for frames sent by an [`Injector`].
const STEPS: [(L4, u16); 3] = [(L4::SYN, 100), (L4::Udp, 300), (L4::SYN, 200)];

/// Issue 11: the ring's descriptor wakes the daemon, so a door opening is
/// logged within 50 ms of the knock that opened it (the time from sending
/// the last knock's frame to the daemon's log line reaching the test).
#[test]
fn an_event_is_logged_within_50_ms_of_its_knock() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config]);
    let inject = Injector::new(&pair);
    let mut took = Vec::new();
    for host in 1..=5u8 {
        let src = IpAddr::V4(Ipv4Addr::new(198, 51, 100, host));
        for (i, (l4, port)) in STEPS.iter().enumerate() {
            if i == STEPS.len() - 1 {
                // Give the log line of the step before nothing to hide behind.
                sleep(Duration::from_millis(20));
            }
            let sent = Instant::now();
            inject.send(src, *l4, 40_000 + u16::from(host), *port, 1);
            if i == STEPS.len() - 1 {
                let line = format!("door opened for {src}");
                daemon.wait_for_log(&line, Duration::from_secs(5));
                took.push(daemon.logged_at(&line).unwrap() - sent);
            }
        }
    }
    eprintln!("knock to log line: {took:?}");
    for t in &took {
        assert!(
            *t < Duration::from_millis(50),
            "a door opening was logged {t:?} after its knock ({took:?})"
        );
    }
}

/// The endpoint's text read by the Python `prometheus_client` parser (the
/// reference implementation of the format): every family with its type,
/// and each sample's value equal to what the test reads itself.
#[test]
fn the_metrics_parse_with_the_prometheus_client_parser() {
    if !require_root() || !require_python_module("prometheus_client") {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(
        &iplock,
        &[
            "--config",
            &config,
            "--metrics",
            METRICS,
            "--sweep-every",
            "200ms",
        ],
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "192.0.2.3 did not knock");
    daemon.wait_for_log(&format!("{OTHER_V4} on"), Duration::from_secs(10));
    let text = scrape_text(&pair);

    const PARSE: &str = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = [[f.name, f.type, [[s.name, s.labels, s.value] for s in f.samples]]\n\
               for f in text_string_to_metric_families(sys.stdin.read())]\n\
        print(json.dumps(out))\n";
    let mut python = std::process::Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the metrics: {}\n{text}",
        describe(&out)
    );
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = families.as_array().unwrap();
    let kind = |name: &str| {
        families
            .iter()
            .find(|f| f[0] == name)
            .unwrap_or_else(|| panic!("no family {name} in {families:?}\n{text}"))[1]
            .clone()
    };
    // The parser names counter families without `_total`.
    for (name, want) in [
        ("iplock_packets", "counter"),
        ("iplock_door_opens", "counter"),
        ("iplock_bans", "counter"),
        ("iplock_sources", "gauge"),
        ("iplock_bans_active", "gauge"),
        ("iplock_build_info", "gauge"),
        ("iplock_interface_info", "gauge"),
    ] {
        assert_eq!(kind(name), want, "{name} in\n{text}");
    }
    let mut parsed: Vec<(String, u64)> = Vec::new();
    for f in families {
        for s in f[2].as_array().unwrap() {
            let labels = s[1].as_object().unwrap();
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let name = s[0].as_str().unwrap();
            let name = if labels.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            parsed.push((name, s[2].as_f64().unwrap() as u64));
        }
    }
    let mut ours: Vec<(String, u64)> = parse_metrics(&text)
        .into_iter()
        .map(|(n, v)| (labels_sorted(&n), v))
        .collect();
    parsed.sort();
    ours.sort();
    assert_eq!(parsed, ours, "{text}");
    let interface = format!(
        "iplock_interface_info{{mode=\"native\",name=\"{}\"}}",
        pair.server_if
    );
    assert!(ours.contains(&(interface, 1)), "{text}");
}

/// `name{labels}` with the labels in the order of their names (the
/// parser keeps them in a dictionary). No value here holds a comma.
fn labels_sorted(metric: &str) -> String {
    let Some((name, labels)) = metric.split_once('{') else {
        return metric.to_string();
    };
    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

/// Distinct spoofed IPv6 sources, each in a /64 of its own (a ban covers
/// the /64) under the documentation prefix 2001:db8::/32.
fn spoofed_v6(i: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x100 + (i >> 16) as u16,
        i as u16,
        0,
        0,
        0,
        1,
    ))
}

/// Sends up to `n` frames built by `each` from the client veth, while
/// `more` says so, pausing now and then so the server veth's receive queue
/// never overflows (it would drop frames silently); returns how many.
fn inject_while(
    inject: &Injector,
    n: u32,
    more: impl Fn() -> bool,
    each: impl Fn(u32) -> (IpAddr, L4, u16),
) -> u32 {
    let mut sent = 0;
    while sent < n && more() {
        let (src, l4, port) = each(sent);
        inject.send(src, l4, 1024 + (sent % 60_000) as u16, port, sent);
        sent += 1;
        if sent.is_multiple_of(32) {
            sleep(Duration::from_millis(1));
        }
    }
    sent
}

/// Issue 11: a scrape does not walk the maps, so one of a filter holding
/// 100,000 sources and 100,000 bans answers (the bench times it); SIGTERM
/// with scrapes in flight stops the daemon within 1 s and leaves nothing
/// pinned.
#[test]
fn a_scrape_of_100000_sources_and_bans_answers_and_sigterm_stops_within_1_s() {
    if !require_root() {
        return;
    }
    const MANY: u32 = 100_000;
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    // Knocks whose progress lasts, so every source stays "knocking"; knock
    // ports and trap port dropped in XDP, so the stack answers nobody.
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nmode = \"native\"\nknock = \"{KNOCK}\"\n\
         step_timeout = \"1h\"\nknock_answer = \"drop\"\n\
         [ban]\ntrap_ports = [23]\n[maps]\nsources = 131072\nbans = 131072\n",
        pair.server_if
    ));
    let mut daemon = start_daemon(
        &iplock,
        &[
            "--config",
            &config,
            "--metrics",
            METRICS,
            "--sweep-every",
            "500ms",
        ],
    );
    let inject = Injector::new(&pair);
    let start = Instant::now();
    inject_while(
        &inject,
        MANY,
        || true,
        |i| (spoofed_v6(i), STEPS[0].0, STEPS[0].1),
    );
    // Other sources for the bans: a ban ends its source's knock.
    inject_while(
        &inject,
        MANY,
        || true,
        |i| (spoofed_v6(MANY + i), L4::SYN, 23),
    );
    eprintln!("sent {} frames in {:?}", 2 * MANY, start.elapsed());

    let get = |metrics: &[(String, u64)], name: &str| {
        metrics
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = scrape(&pair);
        let (sources, bans) = (
            get(&metrics, "iplock_sources"),
            get(&metrics, "iplock_bans_active"),
        );
        if sources >= u64::from(MANY) && bans >= u64::from(MANY) {
            eprintln!("the filter holds {sources} sources and {bans} bans");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the filter never held {MANY} sources and bans: {sources} and {bans}\n{}",
            daemon.log()
        );
        sleep(Duration::from_millis(500));
    }
    daemon.assert_running();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        let addr: SocketAddr = METRICS.parse().unwrap();
        let ns = pair.server.clone();
        thread::spawn(move || {
            in_netns(&ns, || {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && answered < 100_000 {
                    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    else {
                        break;
                    };
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
                    let mut body = String::new();
                    if c.read_to_string(&mut body).is_ok() && body.starts_with("HTTP/1.1 200") {
                        answered += 1;
                    }
                }
                answered
            })
        })
    };
    sleep(Duration::from_millis(300));
    let start = Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = scraper.join().unwrap();
    assert!(exit.success(), "iplock run: {exit}\n{}", daemon.log());
    assert!(answered > 0, "no scrape answered before the SIGTERM");
    eprintln!("{answered} scrapes answered; iplock run stopped {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(1),
        "iplock run took {took:?} to stop during scrapes"
    );
    assert!(!iplock.pin_dir().exists(), "the pin dir is left");
    assert!(!pair.server_has_xdp(), "XDP is left");
}

/// Issue 11: SIGTERM in the middle of a burst of events (wrong knocks from
/// spoofed sources) stops the daemon within 1 s and leaves nothing pinned.
#[test]
fn sigterm_during_a_burst_of_events_stops_within_1_s() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = daemon_config(&dir, &pair, KNOCK);
    let mut daemon = start_daemon(&iplock, &["--config", &config]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burst = {
        let stop = stop.clone();
        let inject = Injector::new(&pair);
        // Bounded: 10 s of frames at most, should the daemon hang.
        let deadline = Instant::now() + Duration::from_secs(10);
        thread::spawn(move || {
            let more =
                || !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline;
            // The second step from a new source: a wrong knock.
            inject_while(&inject, u32::MAX, more, |i| {
                (spoofed_v6(i), STEPS[1].0, STEPS[1].1)
            })
        })
    };
    daemon.wait_for_log("wrong knock from", Duration::from_secs(10));
    sleep(Duration::from_millis(300));
    let start = Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = burst.join().unwrap();
    assert!(exit.success(), "iplock run: {exit}\n{}", daemon.log());
    eprintln!(
        "iplock run stopped {took:?} after SIGTERM during a burst ({sent} wrong knocks sent)"
    );
    assert!(
        took < Duration::from_secs(1),
        "iplock run took {took:?} to stop during a burst of events"
    );
    assert!(!iplock.pin_dir().exists(), "the pin dir is left");
    assert!(!pair.server_has_xdp(), "XDP is left");
}
