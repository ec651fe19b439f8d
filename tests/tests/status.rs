//! `iplock status --json`: interfaces, configuration, counters, knocking and
//! open sources, bans and the allow list, as the CLI contract describes.

use std::thread::sleep;
use std::time::Duration;

use iplock_common::counters::Counter;
use iplock_e2e::status::entry;
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, SERVER_V6,
    both_modes,
};
use serde_json::Value;

both_modes!(status_json_shows_sources_bans_and_counters);

fn find<'a>(status: &'a Value, list: &str, addr: &str) -> &'a Value {
    entry(status, list, addr).unwrap_or_else(|| panic!("{addr} missing from {list} in {status}"))
}

fn expires_in(entry: &Value) -> f64 {
    entry["expires_in_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("expires_in_s is not a number in {entry}"))
}

fn status_json_shows_sources_bans_and_counters(mode: Mode) {
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    iplock.load(
        mode,
        &[
            "--knock",
            KNOCK,
            "--open-window",
            "10s",
            "--step-timeout",
            "10s",
            "--ban-time",
            "30s",
            "--allow",
            "198.51.100.0/24",
        ],
    );
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    pair.knock_tcp(CLIENT_V6, SERVER_V6, 100);
    // A wrong knock (which bans nothing by default), then the closed door.
    pair.knock_tcp(OTHER_V4, SERVER_V4, 200);
    pair.knock_tcp(OTHER_V4, SERVER_V4, 22);
    // The knocks are sent, not necessarily processed, when knock_* returns.
    sleep(Duration::from_millis(200));
    let status = iplock.status_json();

    for key in [
        "interfaces",
        "config",
        "counters",
        "sources",
        "bans",
        "allow",
    ] {
        assert!(status.get(key).is_some(), "no {key} in {status}");
    }
    let interfaces = status["interfaces"].as_array().expect("interfaces array");
    assert_eq!(interfaces.len(), 1, "{status}");
    assert_eq!(interfaces[0]["name"], pair.server_if.as_str());
    assert_eq!(interfaces[0]["mode"], mode.arg());
    assert!(interfaces[0]["ifindex"].as_u64().is_some(), "{status}");

    let open = find(&status, "sources", "192.0.2.2");
    assert_eq!(open["state"], "open", "{open}");
    let left = expires_in(open);
    assert!(left > 0.0 && left <= 10.0, "{open}");

    let knocking = find(&status, "sources", "2001:db8::2");
    assert_eq!(knocking["state"], "knocking", "{knocking}");
    assert_eq!(knocking["step"], 1, "{knocking}");
    let left = expires_in(knocking);
    assert!(left > 0.0 && left <= 10.0, "{knocking}");

    let ban = find(&status, "bans", "192.0.2.3");
    let left = expires_in(ban);
    assert!(left > 20.0 && left <= 30.0, "{ban}");

    let allow = status["allow"].as_array().expect("allow array");
    assert!(
        allow.iter().any(|a| a["cidr"] == "198.51.100.0/24"),
        "{status}"
    );

    let counters = &status["counters"];
    for counter in Counter::ALL {
        assert!(
            counters[counter.name()].as_u64().is_some(),
            "counter {} missing in {counters}",
            counter.name()
        );
    }
    let count = |c: Counter| counters[c.name()].as_u64().unwrap();
    assert!(count(Counter::DoorOpened) >= 1, "{counters}");
    assert!(count(Counter::KnockAdvanced) >= 3, "{counters}");
    assert!(count(Counter::WrongKnock) >= 1, "{counters}");
    assert!(count(Counter::BansAdded) >= 1, "{counters}");
}
