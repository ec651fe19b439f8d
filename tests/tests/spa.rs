//! Single packet authorization end to end, with Debian's fwknop client
//! (`fwknop-client`, installed by `cargo xtask setup`) in the client
//! namespace and `iplock run` in the server namespace: a real packet opens
//! the door; a replay, wrong keys, no HMAC, a stale timestamp, a port that
//! is not protected, truncated and random payloads are refused, open
//! nothing and leave the daemon running; the SPA port answers a probe as
//! its unused neighbours do; a flood of junk at it leaves the door working.
//! Native mode only: the SPA path of the program does not depend on it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use iplock_e2e::frame::L4;
use iplock_e2e::rng::Rng;
use iplock_e2e::scan::{Answer, Order, Scanner};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NO_BANS, NetnsPair, OTHER_V4,
    SERVER_V4, SERVER_V6, TempDir, in_netns, require_root, require_tools, run_bounded,
};

const SPA_PORT: u16 = 62201;
const WAIT: Duration = Duration::from_secs(5);

/// A key pair from `fwknop --key-gen`, as base64.
struct Keys {
    key: String,
    hmac: String,
}

fn key_gen() -> Keys {
    let out = run_bounded(
        Command::new("fwknop").args(["--key-gen", "--no-rc-file"]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "fwknop --key-gen failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    Keys {
        key: field("KEY_BASE64:"),
        hmac: field("HMAC_KEY_BASE64:"),
    }
}

/// The server with `iplock run` verifying SPA with fresh keys.
struct Server {
    pair: NetnsPair,
    _echo: EchoServer,
    iplock: Iplock,
    daemon: Daemon,
    keys: Keys,
    dir: TempDir,
    config: String,
    replay: PathBuf,
}

impl Server {
    fn start(extra: &str) -> Server {
        let pair = NetnsPair::new();
        let echo = EchoServer::start(&pair, &[22]);
        let iplock = Iplock::new(&pair);
        let keys = key_gen();
        let dir = TempDir::new();
        let key_file = dir.write(
            "spa.keys",
            &format!(
                "SOURCE ANY\nKEY_BASE64 {}\nHMAC_KEY_BASE64 {}\n",
                keys.key, keys.hmac
            ),
        );
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.config_file(&format!(
            "knock = \"{KNOCK}\"\n{extra}\n[spa]\nkey_file = \"{}\"\nopen_window = \"30s\"\n",
            key_file.display()
        ));
        let replay = iplock::daemon::spa::replay_path(iplock.pin_dir());
        let _ = std::fs::remove_file(&replay);
        let daemon = Daemon::start(
            &iplock,
            &iplock.settings(Mode::Native, &["--config", &config]),
            "info",
        );
        Server {
            pair,
            _echo: echo,
            iplock,
            daemon,
            keys,
            dir,
            config,
            replay,
        }
    }

    /// Stops `iplock run` (which removes the filter) and starts it again.
    fn restart(&mut self) {
        self.daemon.signal(libc::SIGTERM);
        self.daemon.wait_exit(Duration::from_secs(20));
        self.daemon = Daemon::start(
            &self.iplock,
            &self
                .iplock
                .settings(Mode::Native, &["--config", &self.config]),
            "info",
        );
    }

    /// Runs Debian's `fwknop` in the client namespace with this server's
    /// keys unless `args` bring their own; panics unless it exits 0.
    fn fwknop(&self, args: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.pair.client, "fwknop"])
            .args(["--no-rc-file", "--no-save-args"])
            .args(args);
        let out = run_bounded(&mut cmd, Duration::from_secs(10));
        assert!(
            out.status.success(),
            "fwknop {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `fwknop -A tcp/22 -a 192.0.2.2 -D 192.0.2.1 --use-hmac` with the
    /// keys, and `extra`.
    fn knock(&self, extra: &[&str]) {
        let mut args = vec![
            "-A",
            "tcp/22",
            "-a",
            "192.0.2.2",
            "-D",
            "192.0.2.1",
            "--use-hmac",
            "--key-base64-rijndael",
            &self.keys.key,
            "--key-base64-hmac",
            &self.keys.hmac,
        ];
        args.extend_from_slice(extra);
        self.fwknop(&args);
    }

    /// Sends `payload` to the SPA port from `src` in the client namespace.
    fn send(&self, src: IpAddr, payload: &[u8]) {
        in_netns(&self.pair.client, || {
            let sock = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
            let to = SocketAddr::new(if src.is_ipv4() { SERVER_V4 } else { SERVER_V6 }, SPA_PORT);
            sock.send_to(payload, to).unwrap();
        });
    }

    /// Waits until the daemon has logged `n` lines containing `needle`.
    fn wait_logged(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.daemon.log().matches(needle).count() < n {
            self.daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "iplock run logged {needle:?} fewer than {n} times:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn status(&self) -> serde_json::Value {
        self.iplock.status_json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.replay);
        let _ = std::fs::remove_dir(self.replay.parent().unwrap());
    }
}

fn guard() -> bool {
    require_root() && require_tools(&["fwknop"])
}

/// The real client opens the door for its address and a TCP connect to
/// port 22 succeeds; before, the port was closed (and the closed-door SYN
/// banned the client, a ban the accepted packet lifts).
#[test]
fn the_fwknop_client_opens_the_door() {
    if !guard() {
        return;
    }
    let mut s = Server::start("");
    s.pair
        .assert_dropped(CLIENT_V4, SERVER_V4, 22, "no SPA packet was sent");
    s.knock(&[]);
    s.wait_logged("accepted: door opened for 192.0.2.2", 1);
    drop(
        s.pair
            .connect(CLIENT_V4, SERVER_V4, 22, "the SPA packet opened the door"),
    );
    s.pair.assert_dropped(
        OTHER_V4,
        SERVER_V4,
        22,
        "the door opened for 192.0.2.2 only",
    );
    let st = s.status();
    assert_eq!(st["spa"]["accepted"], 1, "{st}");
    assert_eq!(st["counters"]["spa_seen"], 1, "{st}");
    assert!(
        s.daemon.log().contains("lifted its ban (closed_door)"),
        "{}",
        s.daemon.log()
    );
}

/// IPv6: fwknop 2.6.10 cannot send over IPv6 (its resolver asks for IPv4
/// only: "Address family for hostname not supported"), so the client
/// builds the packet (`-T -B`), asking for its source address (`-s`, since
/// the access string holds IPv4 addresses only), and it goes out from the
/// client's IPv6 address: the door opens for that address.
#[test]
fn an_ipv6_packet_opens_the_door_of_its_source() {
    if !guard() {
        return;
    }
    let mut s = Server::start(NO_BANS);
    s.pair
        .assert_dropped(CLIENT_V6, SERVER_V6, 22, "no SPA packet yet");
    let (key, hmac) = (s.keys.key.clone(), s.keys.hmac.clone());
    let saved = s.dir.path().join("packet");
    s.fwknop(&[
        "-A",
        "tcp/22",
        "-s",
        "-D",
        "192.0.2.1",
        "--use-hmac",
        "--key-base64-rijndael",
        &key,
        "--key-base64-hmac",
        &hmac,
        "-T",
        "-B",
        saved.to_str().unwrap(),
    ]);
    let payload = std::fs::read(&saved).unwrap();
    s.send(CLIENT_V6, payload.trim_ascii());
    s.wait_logged("accepted: door opened for 2001:db8::2", 1);
    drop(s.pair.connect(
        CLIENT_V6,
        SERVER_V6,
        22,
        "the IPv6 SPA packet opened the door",
    ));
    s.pair
        .assert_dropped(CLIENT_V4, SERVER_V4, 22, "only the IPv6 address was opened");
}

/// A captured packet sent again (from another address of the client) is
/// refused as a replay, and the daemon remembers it across a restart.
#[test]
fn a_replayed_packet_is_refused() {
    if !guard() {
        return;
    }
    let mut s = Server::start(NO_BANS);
    let saved = s.dir.path().join("packet");
    s.knock(&["-B", saved.to_str().unwrap()]);
    s.wait_logged("accepted", 1);
    let payload = std::fs::read(&saved).unwrap();
    let payload = payload.trim_ascii();
    s.send(OTHER_V4, payload);
    s.wait_logged("refused: replay", 1);
    s.pair
        .assert_dropped(OTHER_V4, SERVER_V4, 22, "a replay opens nothing");
    // A new daemon on a new filter reads the cache the first one saved.
    assert!(s.replay.exists(), "{} was not written", s.replay.display());
    s.restart();
    s.send(CLIENT_V4, payload);
    s.wait_logged("refused: replay", 1);
    assert_eq!(s.status()["spa"]["refused"]["replay"], 1);
    s.pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "a replay after a restart opens nothing",
    );
}

/// What must be refused: each is logged with its reason, counted, opens
/// nothing, and the daemon goes on; a good packet still works at the end.
#[test]
fn bad_packets_are_refused_and_open_nothing() {
    if !guard() {
        return;
    }
    let mut s = Server::start(NO_BANS);
    let other = key_gen();
    let (key, hmac) = (s.keys.key.clone(), s.keys.hmac.clone());
    // A wrong encryption key with the right HMAC key decrypts to nothing;
    // a wrong HMAC key, or none, fails the HMAC.
    s.fwknop(&[
        "-A",
        "tcp/22",
        "-a",
        "192.0.2.2",
        "-D",
        "192.0.2.1",
        "--use-hmac",
        "--key-base64-rijndael",
        &other.key,
        "--key-base64-hmac",
        &hmac,
    ]);
    s.wait_logged("refused: bad_decrypt", 1);
    s.fwknop(&[
        "-A",
        "tcp/22",
        "-a",
        "192.0.2.2",
        "-D",
        "192.0.2.1",
        "--use-hmac",
        "--key-base64-rijndael",
        &key,
        "--key-base64-hmac",
        &other.hmac,
    ]);
    s.wait_logged("refused: bad_hmac", 1);
    s.fwknop(&[
        "-A",
        "tcp/22",
        "-a",
        "192.0.2.2",
        "-D",
        "192.0.2.1",
        "--key-base64-rijndael",
        &key,
    ]);
    s.wait_logged("refused: bad_hmac", 2);
    s.knock(&["--time-offset-minus", "10m"]);
    s.wait_logged("refused: stale, user", 1);
    s.fwknop(&[
        "-A",
        "tcp/2222",
        "-a",
        "192.0.2.2",
        "-D",
        "192.0.2.1",
        "--use-hmac",
        "--key-base64-rijndael",
        &key,
        "--key-base64-hmac",
        &hmac,
    ]);
    s.wait_logged("refused: port_not_protected", 1);
    // The program hands over 8 payloads a second from one source: a new
    // window for the next ones.
    std::thread::sleep(Duration::from_millis(1100));
    // Truncated copies of a good packet that was never sent.
    let saved = s.dir.path().join("packet");
    s.knock(&["-T", "-B", saved.to_str().unwrap()]);
    let good = std::fs::read(&saved).unwrap();
    let good = good.trim_ascii().to_vec();
    s.send(CLIENT_V4, &good[..100]);
    s.wait_logged("refused: too_short", 1);
    s.send(CLIENT_V4, &good[..good.len() - 10]);
    s.wait_logged("refused: bad_hmac", 3);
    // Random payloads: base64 text and binary.
    let mut rng = Rng::new(7);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text: Vec<u8> = (0..300).map(|_| alphabet[rng.below(64) as usize]).collect();
    s.send(CLIENT_V4, &text);
    s.wait_logged("refused: bad_hmac", 4);
    let binary: Vec<u8> = (0..300).map(|_| rng.below(256) as u8).collect();
    s.send(CLIENT_V4, &binary);
    s.wait_logged("refused: not_base64", 1);
    s.send(CLIENT_V4, &[b'A'; 2000]);
    s.wait_logged("refused: too_long", 1);
    std::thread::sleep(Duration::from_millis(1100));
    s.pair
        .assert_dropped(CLIENT_V4, SERVER_V4, 22, "no packet was good");
    let st = s.status();
    assert_eq!(st["spa"]["accepted"], 0, "{st}");
    assert_eq!(st["spa"]["refused"]["bad_hmac"], 4, "{st}");
    // The good packet, never sent before, still opens the door.
    s.send(CLIENT_V4, &good);
    s.wait_logged("accepted", 1);
    drop(
        s.pair
            .connect(CLIENT_V4, SERVER_V4, 22, "a good packet after the bad ones"),
    );
}

/// A probe of the SPA port gets the answer every unused UDP port gets
/// (ICMP port unreachable from the stack), IPv4 and IPv6.
#[test]
fn the_spa_port_answers_like_its_neighbours() {
    if !guard() {
        return;
    }
    let s = Server::start(NO_BANS);
    s.pair.lift_icmp_rate_limits();
    let scanner = Scanner::new(&s.pair);
    let ports = [SPA_PORT - 1, SPA_PORT, SPA_PORT + 1];
    for src in [CLIENT_V4, CLIENT_V6] {
        let answers = scanner.scan(src, L4::Udp, &ports, Order::Ascending);
        for p in ports {
            assert_eq!(
                answers[&p],
                Answer::Unreachable,
                "{src} udp:{p}: {answers:?}"
            );
        }
    }
}

/// A flood of junk at the SPA port from another address: the program's
/// rate limit hands the daemon a bounded share, and the real client's
/// packet, sent in the middle of the flood, still opens the door.
#[test]
fn a_junk_flood_leaves_the_door_working() {
    if !guard() {
        return;
    }
    let mut s = Server::start(NO_BANS);
    let client = s.pair.client.clone();
    let flood = std::thread::spawn(move || {
        in_netns(&client, || {
            let sock = UdpSocket::bind(SocketAddr::new(OTHER_V4, 0)).unwrap();
            let to = SocketAddr::new(SERVER_V4, SPA_PORT);
            let junk = [b'Q'; 400];
            let end = Instant::now() + Duration::from_secs(2);
            let mut sent = 0u64;
            while Instant::now() < end {
                // ENOBUFS under the flood is fine: the next one goes.
                let _ = sock.send_to(&junk, to);
                sent += 1;
            }
            sent
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    // The flood can fill the veth's queue, which drops a frame before XDP
    // sees it: a real client sends again until the door opens, as fwknop's
    // users do (each packet is new, so no replay). A bounded number of tries
    // inside the flood's two seconds.
    for _ in 0..5 {
        s.knock(&[]);
        std::thread::sleep(Duration::from_millis(200));
        if s.daemon
            .log()
            .contains("accepted: door opened for 192.0.2.2")
        {
            break;
        }
    }
    let sent = flood.join().unwrap();
    s.wait_logged("accepted: door opened for 192.0.2.2", 1);
    drop(
        s.pair
            .connect(CLIENT_V4, SERVER_V4, 22, "the door opened during the flood"),
    );
    let st = s.status();
    let seen = st["counters"]["spa_seen"].as_u64().unwrap();
    let throttled = st["counters"]["spa_throttled"].as_u64().unwrap();
    eprintln!("flood: {sent} datagrams sent, {seen} handed over, {throttled} throttled");
    // Three windows of 8 from the flooding source at most, and the client's
    // tries.
    assert!(seen <= 3 * 8 + 5, "{seen} of {sent} handed over: {st}");
    assert!(throttled > 0, "{sent} sent, none throttled: {st}");
    s.daemon.assert_running();
}

/// `iplock load` refuses a configuration with SPA (exit 2): nothing would
/// verify the packets.
#[test]
fn load_refuses_spa() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let dir = TempDir::new();
    let keys = dir.write("spa.keys", "KEY_BASE64 a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=\nHMAC_KEY_BASE64 aG1hY2htYWNobWFjaG1hY2htYWNobWFjaG1hY2htYWM=\n");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.config_file(&format!(
        "knock = \"{KNOCK}\"\n[spa]\nkey_file = \"{}\"\n",
        keys.display()
    ));
    let out = iplock.run(
        "load",
        &iplock.settings(Mode::Native, &["--config", &config]),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SPA needs `iplock run`"));
    assert!(!iplock.pin_dir().exists());
}

/// A socket bound to the SPA port makes `iplock run` refuse to start.
#[test]
fn a_socket_on_the_spa_port_is_refused() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let _sock = in_netns(&pair.server, || {
        UdpSocket::bind(SocketAddr::new(SERVER_V4, SPA_PORT)).unwrap()
    });
    let dir = TempDir::new();
    let keys = dir.write("spa.keys", "KEY_BASE64 a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=\nHMAC_KEY_BASE64 aG1hY2htYWNobWFjaG1hY2htYWNobWFjaG1hY2htYWM=\n");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.config_file(&format!(
        "knock = \"{KNOCK}\"\n[spa]\nkey_file = \"{}\"\n",
        keys.display()
    ));
    let out = iplock.run(
        "run",
        &iplock.settings(Mode::Native, &["--config", &config]),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the SPA port"),
        "{out:?}"
    );
}
