//! The sequence itself: order and step timeouts. Bans are off here so that a
//! failure shows the sequence logic, and the right sequence afterwards shows
//! that the failed attempt left the source able to start again.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::sleep;
use std::time::Duration;

use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, KNOCK, Mode, NO_BANS, NetnsPair, SERVER_V4, TempDir, both_modes,
    echo, in_netns,
};

both_modes!(
    wrong_order_fails,
    expired_step_fails,
    per_step_timeout_overrides_default,
    repeated_knock_is_ignored,
    unrelated_traffic_keeps_progress,
    a_new_connection_in_between_resets_progress,
    knock_ports_answer_like_closed_ports,
    knock_ports_answer_nothing_when_told,
);

fn wrong_order_fails(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(NO_BANS);
    iplock.load(mode, &["--config", &config, "--knock", KNOCK]);
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:100,tcp:200,udp:300");
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "the knocks came in the wrong order",
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "then the right order"));
}

fn expired_step_fails(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(NO_BANS);
    let config = config.as_str();
    iplock.load(
        mode,
        &["--config", config, "--knock", KNOCK, "--step-timeout", "1s"],
    );
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:100,udp:300");
    sleep(Duration::from_millis(1500));
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "the last knock came after the step timeout",
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "then a timely sequence"));
}

fn per_step_timeout_overrides_default(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(NO_BANS);
    let config = config.as_str();
    let knock = "tcp:100,udp:300/4s,tcp:200";
    iplock.load(
        mode,
        &["--config", config, "--knock", knock, "--step-timeout", "1s"],
    );
    // udp:300 may come up to 4 s after tcp:100; tcp:200 only 1 s after udp:300.
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 100);
    sleep(Duration::from_millis(1500));
    pair.knock_udp(CLIENT_V4, SERVER_V4, 300);
    sleep(Duration::from_millis(1500));
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "tcp:200 has the default 1 s timeout",
    );

    pair.knock_tcp(CLIENT_V4, SERVER_V4, 100);
    sleep(Duration::from_millis(1500));
    pair.knock(CLIENT_V4, SERVER_V4, "udp:300,tcp:200");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "udp:300 has its own 4 s timeout"));
}

// The tests below keep the default bans on: a repeat, unrelated traffic or a
// knock probe that the filter mistook for a wrong knock would ban the source
// and so fail the final connect.

fn repeated_knock_is_ignored(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.knock(
        CLIENT_V4,
        SERVER_V4,
        "tcp:100,tcp:100,udp:300,udp:300,tcp:200",
    );
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "copies of the previous step are ignored",
    ));
}

fn unrelated_traffic_keeps_progress(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, 8080]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 8080, "unrelated ports pass");
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:100,udp:300");
    echo(&mut session, "established traffic in between");
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "a session in between keeps progress",
    ));
}

/// As in the article's rules, any other new connection resets progress, so
/// a spray over many ports between two knocks satisfies no step.
fn a_new_connection_in_between_resets_progress(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, 8080]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:100,udp:300");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 8080, "unrelated ports pass"));
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    // Last: the closed door bans.
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "a new connection in between reset progress",
    );
}

/// What a connect and a datagram from 192.0.2.2 to `port` get.
fn answers(
    pair: &NetnsPair,
    tcp: u16,
    udp: u16,
) -> (Result<(), ErrorKind>, Result<usize, ErrorKind>) {
    let probe = Duration::from_millis(500);
    in_netns(&pair.client, || {
        let connect = TcpStream::connect_timeout(&SocketAddr::new(SERVER_V4, tcp), probe)
            .map(drop)
            .map_err(|e| e.kind());
        let sock = UdpSocket::bind(SocketAddr::new(CLIENT_V4, 0)).unwrap();
        sock.connect(SocketAddr::new(SERVER_V4, udp)).unwrap();
        sock.send(b"knock").unwrap();
        sock.set_read_timeout(Some(probe)).unwrap();
        (connect, sock.recv(&mut [0u8; 16]).map_err(|e| e.kind()))
    })
}

/// By default knock ports answer as closed ports do: a connect is refused,
/// a datagram draws an ICMP port unreachable.
fn knock_ports_answer_like_closed_ports(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    let unused = answers(&pair, 101, 301);
    assert_eq!(
        unused,
        (
            Err(ErrorKind::ConnectionRefused),
            Err(ErrorKind::ConnectionRefused)
        ),
        "unused ports"
    );
    let (tcp, _) = answers(&pair, 100, 301);
    assert_eq!(tcp, unused.0, "tcp:100 answers like an unused port");
    let (_, udp) = answers(&pair, 200, 300);
    assert_eq!(udp, unused.1, "udp:300 answers like an unused port");
    // The probes were counted as knocks all the same.
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the knocks still count"));
}

/// With `knock_answer = "drop"` knock ports look filtered: a connect times
/// out, a datagram draws no ICMP port unreachable.
fn knock_ports_answer_nothing_when_told(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK, "--knock-answer", "drop"]);
    let (tcp, _) = answers(&pair, 100, 300);
    assert!(
        matches!(tcp, Err(ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "tcp:100 answered: {tcp:?}"
    );
    let (_, udp) = answers(&pair, 200, 300);
    assert!(
        matches!(udp, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "udp:300 answered: {udp:?}"
    );
}
