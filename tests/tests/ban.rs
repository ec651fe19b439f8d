//! Bans: each trigger bans the source alone, a ban drops everything from it
//! (knocks included; a wrong-knock ban the filter's own ports only) until it
//! expires, and then the sequence works again. A wrong knock bans only
//! where `wrong_knock = true` says so.

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use iplock_e2e::status::entry;
use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, TempDir,
    both_modes, wait_for,
};

both_modes!(
    wrong_knock_bans_until_expiry,
    wrong_knock_bans_nothing_by_default,
    closed_door_syn_bans,
    trap_port_bans,
);

/// An unrelated port the echo server also serves: it passes unless banned.
const OTHER_PORT: u16 = 8080;
const BAN: Duration = Duration::from_secs(4);

/// Waits up to 1 s for `iplock status` to list a ban of `addr`: the packet
/// that bans may still be on its way when the sender returns.
fn assert_banned(iplock: &Iplock, addr: IpAddr) {
    wait_for(&format!("a ban of {addr}"), Duration::from_secs(1), || {
        let status = iplock.status_json();
        match entry(&status, "bans", addr) {
            Some(_) => Ok(()),
            None => Err(status.to_string()),
        }
    });
}

fn wrong_knock_bans_until_expiry(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file("[ban]\nwrong_knock = true\n");
    iplock.load(
        mode,
        &["--config", &config, "--knock", KNOCK, "--ban-time", "4s"],
    );
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "unrelated ports pass"));

    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    let banned = Instant::now();
    assert_banned(&iplock, CLIENT_V4);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "banned: knocks are dropped too");
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        OTHER_PORT,
        "a wrong-knock ban covers the filter's ports only",
    ));
    drop(pair.connect(OTHER_V4, SERVER_V4, OTHER_PORT, "only 192.0.2.2 is banned"));
    assert!(
        banned.elapsed() < BAN,
        "the checks took longer than the ban; raise the ban time"
    );

    sleep((banned + BAN + Duration::from_millis(500)).saturating_duration_since(Instant::now()));
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "the ban has expired"));
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the ban has expired"));
}

fn wrong_knock_bans_nothing_by_default(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.knock_tcp(CLIENT_V4, SERVER_V4, 200);
    pair.knock_udp(CLIENT_V4, SERVER_V4, 300);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "wrong knocks reset progress but ban nothing",
    ));
    let status = iplock.status_json();
    assert!(
        entry(&status, "bans", CLIENT_V4).is_none(),
        "no ban after wrong knocks: {status}"
    );
}

fn closed_door_syn_bans(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "nobody knocked");
    assert_banned(&iplock, OTHER_V4);
    pair.assert_dropped(OTHER_V4, SERVER_V4, OTHER_PORT, "192.0.2.3 is banned");
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "only 192.0.2.3 is banned"));
}

fn trap_port_bans(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file("[ban]\ntrap_ports = [2323]\n");
    iplock.load(mode, &["--config", &config, "--knock", KNOCK]);
    pair.knock_udp(OTHER_V4, SERVER_V4, 2323);
    assert_banned(&iplock, OTHER_V4);
    pair.assert_dropped(OTHER_V4, SERVER_V4, OTHER_PORT, "192.0.2.3 hit a trap port");
    drop(pair.connect(CLIENT_V4, SERVER_V4, OTHER_PORT, "only 192.0.2.3 is banned"));
}
