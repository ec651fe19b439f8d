//! Running iplock for real (issue 3): the allow and ban lists changed at run
//! time, `reload` keeping state while changing the sequence, and the
//! `iplock run` daemon with its event log, Prometheus endpoint, SIGHUP
//! reload and SIGTERM with and without `--keep`.
//!
//! Reload attaches the new program to each link, so it runs in both XDP
//! modes; the rest only changes maps or wraps load, and runs in native mode.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4,
    SERVER_V6, TempDir, both_modes, echo, in_netns, require_root, run_bounded,
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

/// `iplock <sub> <args>` in the server namespace; panics unless it exits 0,
/// returns stdout.
fn ok(iplock: &Iplock, sub: &str, args: &[&str]) -> String {
    let out = iplock.run(sub, args);
    assert!(
        out.status.success(),
        "iplock {sub} {}: {}",
        args.join(" "),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The values of `key` in a JSON array of objects.
fn field(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|e| {
            e[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {e}"))
                .to_string()
        })
        .collect()
}

/// `ban list --json`, as addresses.
fn banned(iplock: &Iplock) -> Vec<String> {
    field(&json(&ok(iplock, "ban", &["list", "--json"])), "addr")
}

/// The state `status --json` gives `addr`, if it is a known source.
fn source_state(status: &Value, addr: IpAddr) -> Option<String> {
    status["sources"]
        .as_array()
        .expect("sources is an array")
        .iter()
        .find(|s| s["addr"] == addr.to_string())
        .map(|s| s["state"].as_str().expect("state is a string").to_string())
}

/// The knock sequence in `status --json`, without the per-step timeouts.
fn status_knock(status: &Value) -> String {
    status["config"]["knock"]
        .as_array()
        .unwrap_or_else(|| panic!("no knock sequence in {status}"))
        .iter()
        .map(|step| {
            let step = step.as_str().expect("a step is a string");
            step.split('/').next().unwrap().to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Polls `cond` every 100 ms until it holds; panics with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not after {limit:?}");
        sleep(Duration::from_millis(100));
    }
}

fn add_client_source(pair: &NetnsPair, addr: IpAddr) {
    let out = run_bounded(
        Command::new("ip").args([
            "-n",
            &pair.client,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &pair.client_if,
        ]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "ip addr add {addr}: {}", show(&out));
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
    let out = ok(&iplock, "allow", &["add", &client, "--for", "2s"]);
    let added = Instant::now();
    assert!(out.contains("allowed for 2s"), "allow add said: {out}");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is allowed"));
    let listing = Instant::now();
    let allowed = field(&json(&ok(&iplock, "allow", &["list", "--json"])), "cidr");
    assert!(
        listing - before < Duration::from_secs(2),
        "the checks took longer than the allow entry lasts"
    );
    assert_eq!(allowed, [format!("{client}/32")], "allow list --json");
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "only 192.0.2.2 is allowed");

    sleep((added + Duration::from_millis(2500)).saturating_duration_since(Instant::now()));
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "the allow entry has expired");
    let allowed = field(&json(&ok(&iplock, "allow", &["list", "--json"])), "cidr");
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

    ok(&iplock, "ban", &["add", &client]);
    let bans = json(&ok(&iplock, "ban", &["list", "--json"]));
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

    ok(&iplock, "ban", &["del", &client]);
    assert!(banned(&iplock).is_empty(), "ban del left a ban");
    let again = iplock.run("ban", &["del", &client]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "second ban del: {}",
        show(&again)
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

    ok(&iplock, "ban", &["add", &CLIENT_V4.to_string()]);
    ok(
        &iplock,
        "ban",
        &["add", &CLIENT_V6.to_string(), "--for", "1h"],
    );
    // One ban the program makes itself: a SYN to the closed door.
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "nobody knocked");
    // The bans list sorts by address; IPv6 shows the banned /64.
    wait_until("three bans listed", Duration::from_secs(5), || {
        banned(&iplock) == ["192.0.2.2", "192.0.2.3", "2001:db8::"]
    });
    pair.assert_dropped(CLIENT_V4, SERVER_V4, OTHER_PORT, "192.0.2.2 is banned");

    let out = ok(&iplock, "ban", &["flush"]);
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
    add_client_source(&pair, THIRD_V4);
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    // A long window: the door must still be open after the reload, however
    // slow the machine.
    iplock.load(mode, &["--knock", KNOCK, "--open-window", "60s"]);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked");
    ok(&iplock, "ban", &["add", &OTHER_V4.to_string()]);

    let out = ok(
        &iplock,
        "reload",
        &[
            "--iface",
            &pair.server_if,
            "--mode",
            mode.arg(),
            "--knock",
            NEW_KNOCK,
        ],
    );
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
        assert_eq!(out.status.code(), Some(2), "{what}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{what}: want one sentence on one line of stderr, got {stderr:?}"
        );
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

/// `$IPLOCK_BIN`, else the workspace's debug build, as the harness finds it
/// (its own lookup is private to `Iplock`).
fn iplock_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("IPLOCK_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("debug").join("iplock")
}

/// `iplock run` in the server namespace, with the pin dir of an [`Iplock`].
/// Its stderr (the log) is collected; on drop it gets SIGTERM, then SIGKILL
/// if it has not exited within 10 s.
struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `iplock run <args>` and waits until it says it is running.
    fn start(pair: &NetnsPair, iplock: &Iplock, args: &[&str]) -> Daemon {
        let bin = iplock_bin();
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", pair.server))
            .arg("--")
            .arg(&bin)
            .arg("run")
            .arg("--pin-dir")
            .arg(iplock.pin_dir())
            .args(args)
            // The events are logged at info; a RUST_LOG from outside must
            // not hide them.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Daemon {
            child,
            log,
            reader: Some(reader),
        };
        daemon.wait_for_log("running;", Duration::from_secs(30));
        daemon
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; panics with the log if the
    /// daemon exits or `limit` passes first.
    fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader take the last lines.
                sleep(Duration::from_millis(100));
                panic!(
                    "iplock run exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "iplock run logged no {needle:?} within {limit:?}:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // nsenter execs iplock without forking (only a pid namespace would
        // need a fork), so the child is iplock itself.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; `pid` is our unreaped child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
    }

    /// Waits up to `limit` for the daemon to exit; panics with its log otherwise.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "iplock run still running {limit:?} after the signal:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A config file for `iplock run` on the server veth in native mode.
fn daemon_config(dir: &TempDir, pair: &NetnsPair, knock: &str) -> PathBuf {
    dir.write(
        "iplock.toml",
        &format!(
            "interfaces = [\"{}\"]\nmode = \"native\"\nknock = \"{knock}\"\n",
            pair.server_if
        ),
    )
}

/// GET /metrics from a thread in the server namespace; the metric lines as
/// `name{labels}` to value.
fn scrape(pair: &NetnsPair) -> Vec<(String, u64)> {
    let response = in_netns(&pair.server, || {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("read the metrics: {e}"));
        response
    });
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
    let mut daemon = Daemon::start(
        &pair,
        &iplock,
        &["--config", config.to_str().unwrap(), "--metrics", METRICS],
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
    let mut daemon = Daemon::start(&pair, &iplock, &["--config", config.to_str().unwrap()]);
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
    let mut daemon = Daemon::start(
        &pair,
        &iplock,
        &[
            "--iface",
            &pair.server_if,
            "--mode",
            "native",
            "--knock",
            KNOCK,
            "--open-window",
            "60s",
            "--keep",
        ],
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
