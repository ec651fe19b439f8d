//! The door: closed before knocking, open after the sequence for that source
//! only, closed again after the window while established sessions live on,
//! and open without knocking for allow-listed sources.

use std::thread::sleep;
use std::time::{Duration, Instant};

use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, OTHER_V6, SERVER_V4,
    SERVER_V6, both_modes, echo,
};

both_modes!(
    closed_before_knocking,
    opens_for_that_source_only,
    closes_after_window_established_survives,
    allow_list_passes_without_knocking,
);

fn closed_before_knocking(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "no filter is loaded yet"));
    iplock.load(mode, &["--knock", KNOCK]);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");
}

fn opens_for_that_source_only(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked right");
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "only 192.0.2.2 knocked");
    echo(&mut session, "still up");
}

fn closes_after_window_established_survives(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK, "--open-window", "2s"]);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let opened = Instant::now();
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "inside the window");
    sleep((opened + Duration::from_millis(2500)).saturating_duration_since(Instant::now()));
    echo(&mut session, "after the window");
    // Last: this SYN through the closed door bans 192.0.2.2, which would
    // also drop the session.
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "the window has passed");
}

fn allow_list_passes_without_knocking(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(
        mode,
        &[
            "--knock",
            KNOCK,
            "--allow",
            "192.0.2.3/32",
            "--allow",
            "2001:db8::3/128",
        ],
    );
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "192.0.2.3 is allowed"));
    drop(pair.connect(OTHER_V6, SERVER_V6, 22, "2001:db8::3 is allowed"));
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is not allowed");
}
