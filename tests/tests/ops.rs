//! Running iplock for real (issue 3): the allow and ban lists changed at run
//! time, `reload` keeping state while changing the sequence, and the
//! `iplock run` daemon with its event log, Prometheus endpoint, SIGHUP
//! reload and SIGTERM with and without `--keep`, and the endpoint's bounds
//! against clients that trickle or flood their request.
//!
//! Reload attaches the new program to each link, so it runs in both XDP
//! modes; the rest only changes maps or wraps load, and runs in native mode.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_e2e::status::{field, knock_sequence, source_state};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4,
    SERVER_V6, TempDir, both_modes, describe, echo, in_netns, one_stderr_line, require_root,
    wait_for,
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
    body.lines()
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
    want.extend([
        ("iplock_door_opens_total".to_string(), count("door_opened")),
        ("iplock_bans_total".to_string(), count("bans_added")),
        ("iplock_sources".to_string(), len("sources")),
        ("iplock_bans_active".to_string(), len("bans")),
    ]);
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
    let mut daemon = start_daemon(&iplock, &["--config", &config, "--metrics", METRICS]);

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
    // any time: compare only when two scrapes around the status agree.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (metrics, status) = loop {
        let first = scrape(&pair);
        let status = iplock.status_json();
        let mut second = scrape(&pair);
        if first == second {
            second.sort();
            break (second, status);
        }
        assert!(Instant::now() < deadline, "the counters never settled");
        sleep(Duration::from_millis(200));
    };
    assert_eq!(metrics, expected_metrics(&status), "metrics vs {status}");
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
