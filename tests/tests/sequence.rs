//! The sequence itself: order and step timeouts. Bans are off here so that a
//! failure shows the sequence logic, and the right sequence afterwards shows
//! that the failed attempt left the source able to start again.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::thread::sleep;
use std::time::Duration;

use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, KNOCK, Mode, NO_BANS, NetnsPair, SERVER_V4, TempDir, both_modes,
    in_netns,
};

both_modes!(
    wrong_order_fails,
    expired_step_fails,
    per_step_timeout_overrides_default,
    repeated_knock_is_ignored,
    unrelated_traffic_keeps_progress,
    knock_ports_answer_nothing,
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
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:100,udp:300");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 8080, "unrelated ports pass"));
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "a session in between keeps progress",
    ));
}

/// Knock ports look filtered: a connect times out instead of being refused,
/// a datagram draws no ICMP port unreachable. The probes are themselves the
/// sequence, so the door opens afterwards.
fn knock_ports_answer_nothing(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    // try_connect panics on a refusal, so None means no answer at all.
    let probe = Duration::from_millis(500);
    assert!(pair.try_connect(CLIENT_V4, SERVER_V4, 100, probe).is_none());
    let answer = in_netns(&pair.client, || {
        let sock = UdpSocket::bind(SocketAddr::new(CLIENT_V4, 0)).unwrap();
        sock.connect(SocketAddr::new(SERVER_V4, 300)).unwrap();
        sock.send(b"knock").unwrap();
        sock.set_read_timeout(Some(probe)).unwrap();
        sock.recv(&mut [0u8; 16]).map_err(|e| e.kind())
    });
    assert!(
        matches!(answer, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "udp:300 answered: {answer:?}"
    );
    assert!(pair.try_connect(CLIENT_V4, SERVER_V4, 200, probe).is_none());
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the probes were the sequence"));
}
