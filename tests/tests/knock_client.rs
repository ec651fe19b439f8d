//! `iplock knock`, the client: it opens the door of a filter whose sequence
//! has a udp step, over IPv4 and IPv6 and with the sequence from the
//! server's own config file; a wrong sequence leaves the door shut; and it
//! interoperates both ways with Debian's knock tools (`knock` opens an
//! iplock filter, `iplock knock` opens knockd).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use iplock_e2e::knockers::{debian_knock, debian_steps, iplock_knock};
use iplock_e2e::status::source_state;
use iplock_e2e::{
    ChildGuard, EchoServer, Iplock, Mode, NetnsPair, SERVER_V4, SERVER_V6, TempDir, describe,
    require_root, require_tools, run_bounded, wait_for,
};

/// Unsorted, with a udp step in the middle: the client must send both kinds.
const SEQUENCE: &str = "tcp:1234,udp:4000,tcp:2000";

/// The name the client namespace resolves to the server's addresses.
const SERVER_NAME: &str = "iplock-server";

/// `/etc/netns/<client>/hosts`, which `ip netns exec` mounts over
/// /etc/hosts for commands in the client namespace, so the client resolves
/// [`SERVER_NAME`] to both server addresses; removed on drop.
struct ClientHosts(PathBuf);

impl ClientHosts {
    fn new(pair: &NetnsPair) -> ClientHosts {
        let dir = PathBuf::from("/etc/netns").join(&pair.client);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let hosts = ClientHosts(dir);
        std::fs::write(
            hosts.0.join("hosts"),
            format!("{SERVER_V4} {SERVER_NAME}\n{SERVER_V6} {SERVER_NAME}\n"),
        )
        .unwrap();
        hosts
    }
}

impl Drop for ClientHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The address the client namespace sends from to `dst`, which is what a
/// tool without a bind option (`iplock knock`, `knock`) uses. For IPv6 it
/// need not be 2001:db8::2: source selection may pick 2001:db8::3.
fn client_source(pair: &NetnsPair, dst: IpAddr) -> IpAddr {
    let out = run_bounded(
        Command::new("ip").args(["-n", &pair.client, "route", "get", &dst.to_string()]),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == "src")
        .and_then(|_| words.next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no source in `ip route get {dst}`: {}", describe(&out)))
}

#[test]
fn opens_the_door_over_ipv4() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _hosts = ClientHosts::new(&pair);
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", SEQUENCE]);

    let out = iplock_knock(
        &pair,
        &[
            SERVER_NAME,
            "-4",
            "--sequence",
            SEQUENCE,
            "--then-connect",
            "22",
        ],
    );
    assert!(out.status.success(), "iplock knock: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("port 22 on {SERVER_V4} is open")),
        "{}",
        describe(&out)
    );
    let src = client_source(&pair, SERVER_V4);
    assert_eq!(
        source_state(&iplock.status_json(), src).as_deref(),
        Some("open")
    );
    drop(pair.connect(src, SERVER_V4, 22, "iplock knock opened the door"));
}

#[test]
fn opens_the_door_over_ipv6_with_the_servers_config_file() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    // The server's file: its interface does not exist in the client
    // namespace, and the client must not care.
    let config = dir.config_file(
        "interfaces = [\"eth0\"]\nknock = [\"tcp:1234\", \"udp:4000/20s\", \"tcp:2000\"]\n",
    );
    let config = config.as_str();
    let pair = NetnsPair::new();
    let _hosts = ClientHosts::new(&pair);
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--config", config]);

    let out = iplock_knock(
        &pair,
        &[
            SERVER_NAME,
            "-6",
            "--config",
            config,
            "--then-connect",
            "22",
        ],
    );
    assert!(out.status.success(), "iplock knock -6: {}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("port 22 on {SERVER_V6} is open")),
        "{}",
        describe(&out)
    );
    let src = client_source(&pair, SERVER_V6);
    assert_eq!(
        source_state(&iplock.status_json(), src).as_deref(),
        Some("open")
    );
    drop(pair.connect(src, SERVER_V6, 22, "iplock knock -6 opened the door"));
}

#[test]
fn wrong_sequences_do_not_open() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", SEQUENCE]);

    // The right ports with the udp step sent as tcp over IPv4, and the
    // right steps in the wrong order over IPv6: two sources, so the first
    // attempt's ban does not decide the second.
    for (host, wrong) in [
        (SERVER_V4, "tcp:1234,tcp:4000,tcp:2000"),
        (SERVER_V6, "udp:4000,tcp:1234,tcp:2000"),
    ] {
        let client = client_source(&pair, host);
        let out = iplock_knock(
            &pair,
            &[
                &host.to_string(),
                "--sequence",
                wrong,
                "--then-connect",
                "22",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{wrong}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("port 22 on {host} did not open")),
            "{wrong}: {}",
            describe(&out)
        );
        assert_ne!(
            source_state(&iplock.status_json(), client).as_deref(),
            Some("open"),
            "{wrong} opened the door for {client}"
        );
    }
}

#[test]
fn debian_knock_opens_the_iplock_filter() {
    if !require_root() || !require_tools(&["knock"]) {
        return;
    }
    let pair = NetnsPair::new();
    let src = client_source(&pair, SERVER_V4);
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Native, &["--knock", SEQUENCE]);

    let out = debian_knock(&pair, SERVER_V4, SEQUENCE);
    assert!(out.status.success(), "knock: {}", describe(&out));
    assert_eq!(
        source_state(&iplock.status_json(), src).as_deref(),
        Some("open")
    );
    drop(pair.connect(src, SERVER_V4, 22, "Debian's knock opened the door"));
}

/// Starts knockd on the server veth with [`SEQUENCE`] in its own syntax,
/// bare SYNs only for the tcp steps, appending each opener's address to
/// `<dir>/opened`; waits until it listens.
fn start_knockd(pair: &NetnsPair, dir: &TempDir) -> ChildGuard {
    let opened = dir.path().join("opened");
    let config = dir.write(
        "knockd.conf",
        &format!(
            "[options]\n  logfile = {log}\n[iplock]\n  sequence = {seq}\n  seq_timeout = 10\n  \
             tcpflags = syn\n  command = /bin/sh -c 'echo %IP% >> {opened}'\n",
            log = dir.path().join("knockd.log").display(),
            seq = debian_steps(SEQUENCE).join(","),
            opened = opened.display(),
        ),
    );
    let out_path = dir.path().join("knockd.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut knockd = ChildGuard::spawn(
        Command::new("ip")
            .args(["netns", "exec", &pair.server, "knockd", "-v", "-i"])
            .arg(&pair.server_if)
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(dir.path().join("knockd.pid"))
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    wait_for("knockd to listen", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if text.contains("listening on") {
            return Ok(());
        }
        assert!(knockd.is_running(), "knockd exited: {text}");
        Err(text)
    });
    knockd
}

#[test]
fn iplock_knock_opens_knockd() {
    if !require_root() || !require_tools(&["knockd"]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _knockd = start_knockd(&pair, &dir);

    for host in [SERVER_V4, SERVER_V6] {
        let out = iplock_knock(&pair, &[&host.to_string(), "--sequence", SEQUENCE]);
        assert!(
            out.status.success(),
            "iplock knock {host}: {}",
            describe(&out)
        );
    }
    let opened = dir.path().join("opened");
    let mut want = vec![
        client_source(&pair, SERVER_V4).to_string(),
        client_source(&pair, SERVER_V6).to_string(),
    ];
    want.sort();
    wait_for(
        "knockd to open for each source",
        Duration::from_secs(5),
        || {
            let text = std::fs::read_to_string(&opened).unwrap_or_default();
            let mut got: Vec<String> = text.lines().map(String::from).collect();
            got.sort();
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "knockd opened for {got:?}, not {want:?}; its log: {}",
                    std::fs::read_to_string(dir.path().join("knockd.out")).unwrap_or_default()
                ))
            }
        },
    );
}
