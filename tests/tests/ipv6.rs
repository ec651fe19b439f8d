//! IPv6 works the same: knock and connect over 2001:db8::, and a ban covers
//! the source's /64.

use iplock_e2e::status::entry;
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V6, SERVER_V4,
    SERVER_V6, both_modes, echo,
};

both_modes!(ipv6_knock_opens_and_ban_covers_the_64);

fn ipv6_knock_opens_and_ban_covers_the_64(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);
    pair.knock(CLIENT_V6, SERVER_V6, KNOCK);
    let mut session = pair.connect(CLIENT_V6, SERVER_V6, 22, "2001:db8::2 knocked right");
    pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "the door opened for 2001:db8::2 only",
    );
    echo(&mut session, "still up");

    // 2001:db8::3 shares the /64 of 2001:db8::2: its closed-door SYN bans
    // the whole prefix, shown as the masked address.
    pair.assert_dropped(OTHER_V6, SERVER_V6, 22, "2001:db8::3 did not knock");
    let status = iplock.status_json();
    assert!(
        entry(&status, "bans", "2001:db8::").is_some(),
        "no ban of 2001:db8::/64 in {status}"
    );
}
