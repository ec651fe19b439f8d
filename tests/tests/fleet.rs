//! A fleet through CrowdSec (issue 14): servers in network namespaces, each
//! running `iplock run` against one real Local API, pulling its decisions
//! every second and pushing its own bans. Two servers share the API over a
//! veth of their own (the API runs in server A's namespace on 10.99.0.1);
//! the outage, restart and 20,000-decision tests need only one.
//!
//! Every probe is a TCP connect from the client namespace to an echo port
//! the filter does not guard: a decision drops every port.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use iplock_e2e::crowdsec::{Lapi, TOOLS};
use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4,
    SERVER_V6, TempDir, require_root, require_tools, wait_for,
};
use serde_json::Value;

/// A port nothing guards, with an echo server on it.
const PORT: u16 = 8080;
/// The bound for a decision to arrive: a pull period (1 s here)
/// and a second.
const ARRIVES: Duration = Duration::from_secs(2);

fn runnable() -> bool {
    require_root() && require_tools(&TOOLS)
}

/// One server: its pair, echo server, filter and daemon, dropped in that
/// order's reverse (the daemon first, the namespaces last).
struct Server {
    daemon: Option<Daemon>,
    iplock: Iplock,
    _echo: EchoServer,
    pair: NetnsPair,
    dir: TempDir,
    config: String,
}

impl Server {
    fn new(pair: NetnsPair) -> Server {
        Server {
            daemon: None,
            iplock: Iplock::new(&pair),
            _echo: EchoServer::start(&pair, &[22, PORT]),
            pair,
            dir: TempDir::new(),
            config: String::new(),
        }
    }

    /// Writes the config: a bouncer and a watcher of `lapi` named `name`,
    /// bans of wrong knocks on, `allow` allow-listed.
    fn configure(&mut self, lapi: &Lapi, name: &str, allow: &[&str]) {
        let key = self.dir.write("bouncer.key", &lapi.add_bouncer(name));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = lapi.add_machine(name, "iplock-test-password-0123456789");
        let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
        self.config = self.dir.config_file(&format!(
            "allow = [{}]\n[ban]\nwrong_knock = true\n[crowdsec]\nlapi_url = \"{}\"\napi_key_file = \"{}\"\ncredentials_file = \"{}\"\nupdate_frequency = \"1s\"\n",
            allow.join(", "),
            lapi.url(),
            key.display(),
            creds.display()
        ));
    }

    /// Starts `iplock run` and waits for its first synchronisation.
    fn start(&mut self, extra: &[&str]) -> Duration {
        let mut args = vec!["--config", self.config.as_str(), "--knock", KNOCK];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let mut d = Daemon::start(
            &self.iplock,
            &self.iplock.settings(Mode::Skb, &args),
            "info",
        );
        d.wait_for_log("CrowdSec decisions synchronised", Duration::from_secs(60));
        self.daemon = Some(d);
        t.elapsed()
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("started")
    }

    fn reaches(&self, src: IpAddr) -> bool {
        let dst = if src.is_ipv4() { SERVER_V4 } else { SERVER_V6 };
        self.pair
            .try_connect(src, dst, PORT, Duration::from_millis(300))
            .is_some()
    }

    /// Waits up to `limit` for `src` to be dropped (`dropped`) or let in.
    fn wait(&self, name: &str, src: IpAddr, dropped: bool, limit: Duration) {
        let what = format!(
            "{src} {} on server {name}",
            if dropped { "dropped" } else { "let in" }
        );
        wait_for(&what, limit, || {
            if self.reaches(src) != dropped {
                Ok(())
            } else {
                Err(String::new())
            }
        });
    }

    fn ban_list(&self) -> Value {
        self.iplock.json("ban", &["list", "--json"])
    }
}

/// The entry of `addr` in a ban list.
fn listed<'a>(bans: &'a Value, addr: &str) -> Option<&'a Value> {
    bans.as_array()?.iter().find(|b| b["addr"] == addr)
}

/// Two servers against one Local API in A's namespace.
struct Fleet {
    a: Server,
    b: Server,
    lapi: Lapi,
}

impl Fleet {
    fn new(allow: &[&str]) -> Fleet {
        let (pa, pb) = (NetnsPair::new(), NetnsPair::new());
        let (api_ip, _) = pa.link_servers(&pb);
        let lapi = Lapi::start_in(&pa.server, api_ip);
        let (mut a, mut b) = (Server::new(pa), Server::new(pb));
        a.configure(&lapi, "iplock-a", allow);
        b.configure(&lapi, "iplock-b", allow);
        a.start(&[]);
        b.start(&[]);
        Fleet { a, b, lapi }
    }

    fn both(&self) -> [(&str, &Server); 2] {
        [("A", &self.a), ("B", &self.b)]
    }
}

/// A server alone, with the Local API in its own namespace on loopback.
fn single(allow: &[&str]) -> (Server, Lapi) {
    let pair = NetnsPair::new();
    let lapi = Lapi::start_in(&pair.server, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut s = Server::new(pair);
    s.configure(&lapi, "iplock-single", allow);
    (s, lapi)
}

#[test]
fn a_decision_drops_on_both_servers_and_its_deletion_lets_it_in() {
    if !runnable() {
        return;
    }
    let f = Fleet::new(&["192.0.2.3"]);
    for (name, s) in f.both() {
        assert!(s.reaches(CLIENT_V4), "server {name} before any decision");
    }
    f.lapi.add_decision("192.0.2.2", "1h", "ban");
    let added = Instant::now();
    for (name, s) in f.both() {
        s.wait(
            name,
            CLIENT_V4,
            true,
            ARRIVES.saturating_sub(added.elapsed()),
        );
    }
    eprintln!(
        "TIMING: decision enforced on both servers {:?} after cscli returned",
        added.elapsed()
    );
    let bans = f.a.ban_list();
    let entry = listed(&bans, "192.0.2.2").unwrap_or_else(|| panic!("no entry: {bans}"));
    assert_eq!(
        (&entry["reason"], &entry["origin"]),
        (&"crowdsec".into(), &"cscli".into())
    );
    let status = f.b.iplock.status_json();
    let cs = &status["crowdsec"];
    assert_eq!(cs["decisions"], 1, "{status}");
    assert_eq!(cs["by_origin"]["cscli"], 1, "{status}");
    assert!(
        cs["enforcing"].as_bool().unwrap() && cs["last_pull_unix"].as_u64().is_some(),
        "{status}"
    );
    assert!(f.a.reaches(OTHER_V4), "only 192.0.2.2 is decided");

    f.lapi.delete_decision("192.0.2.2");
    let deleted = Instant::now();
    for (name, s) in f.both() {
        s.wait(
            name,
            CLIENT_V4,
            false,
            ARRIVES.saturating_sub(deleted.elapsed()),
        );
    }

    // An allow-listed address is never dropped by a decision.
    f.lapi.add_decision("192.0.2.3", "1h", "ban");
    wait_for(
        "the decision on 192.0.2.3 to arrive",
        Duration::from_secs(5),
        || match listed(&f.b.ban_list(), "192.0.2.3") {
            Some(_) => Ok(()),
            None => Err(String::new()),
        },
    );
    for (name, s) in f.both() {
        assert!(
            s.reaches(OTHER_V4),
            "server {name} dropped an allow-listed address"
        );
    }
}

#[test]
fn ranges_drop_every_address_inside_and_none_outside() {
    if !runnable() {
        return;
    }
    let f = Fleet::new(&[]);
    let inside: [IpAddr; 4] = [
        "203.0.113.5".parse().unwrap(),
        "203.0.113.250".parse().unwrap(),
        "2001:db8:77::5".parse().unwrap(),
        "2001:db8:77:ffff::9".parse().unwrap(),
    ];
    let outside: [IpAddr; 4] = [
        CLIENT_V4,
        CLIENT_V6,
        "203.0.114.5".parse().unwrap(),
        "2001:db8:78::5".parse().unwrap(),
    ];
    for (_, s) in f.both() {
        for a in inside.iter().chain(&outside[2..]) {
            s.pair.add_client_addr(*a);
        }
        for block in [
            "203.0.113.0/24",
            "203.0.114.0/24",
            "2001:db8:77::/48",
            "2001:db8:78::/48",
        ] {
            s.pair.route_to_client(block);
        }
    }
    for (name, s) in f.both() {
        for a in inside.iter().chain(&outside) {
            assert!(s.reaches(*a), "server {name}: {a} before any decision");
        }
    }
    f.lapi.add_decision("203.0.113.0/24", "1h", "ban");
    f.lapi.add_decision("2001:db8:77::/48", "1h", "ban");
    let added = Instant::now();
    for (name, s) in f.both() {
        for a in inside {
            s.wait(
                name,
                a,
                true,
                (ARRIVES + Duration::from_secs(1)).saturating_sub(added.elapsed()),
            );
        }
        for a in outside {
            assert!(s.reaches(a), "server {name}: {a} is outside the ranges");
        }
    }
    let bans = f.b.ban_list();
    for r in ["203.0.113.0/24", "2001:db8:77::/48"] {
        assert!(
            listed(&bans, r).is_some_and(|b| b["reason"] == "crowdsec"),
            "{r}: {bans}"
        );
    }
}

#[test]
fn a_wrong_knock_on_a_bans_the_source_on_b() {
    if !runnable() {
        return;
    }
    let f = Fleet::new(&["192.0.2.3"]);
    // The second step first: a wrong knock, banned on A.
    f.a.pair.knock_udp(CLIENT_V4, SERVER_V4, 300);
    // An allow-listed source's wrong knock bans nothing, so pushes nothing.
    f.a.pair.knock_udp(OTHER_V4, SERVER_V4, 300);
    let knocked = Instant::now();
    // Flushed within a second, pulled by B within the next.
    f.b.wait("B", CLIENT_V4, true, Duration::from_secs(5));
    eprintln!(
        "TIMING: a wrong knock on A enforced on B {:?} later",
        knocked.elapsed()
    );
    let bans = f.b.ban_list();
    let entry = listed(&bans, "192.0.2.2").unwrap_or_else(|| panic!("no entry: {bans}"));
    assert_eq!(
        (&entry["reason"], &entry["origin"]),
        (&"crowdsec".into(), &"iplock".into())
    );
    let decisions = f.lapi.list_decisions();
    let all: Vec<&Value> = decisions
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|alert| alert["decisions"].as_array().into_iter().flatten())
        .collect();
    assert!(
        all.iter().any(|d| d["value"] == "192.0.2.2"
            && d["origin"] == "iplock"
            && d["scenario"] == "iplock/wrong-knock"),
        "{decisions}"
    );
    assert!(
        !all.iter().any(|d| d["value"] == "192.0.2.3"),
        "an allow-listed address was pushed: {decisions}"
    );
    assert!(f.b.reaches(OTHER_V4));
    let status = f.a.iplock.status_json();
    assert!(status["crowdsec"]["pushed"].as_u64() >= Some(1), "{status}");
}

#[test]
fn with_the_api_stopped_decisions_stay_until_they_expire() {
    if !runnable() {
        return;
    }
    let (mut s, mut lapi) = single(&[]);
    let later: IpAddr = "192.0.2.4".parse().unwrap();
    s.pair.add_client_addr(later);
    s.start(&[]);
    lapi.add_decision("192.0.2.2", "6s", "ban");
    let short = Instant::now();
    lapi.add_decision("192.0.2.3", "1h", "ban");
    s.wait("S", CLIENT_V4, true, ARRIVES);
    s.wait("S", OTHER_V4, true, ARRIVES);

    lapi.stop();
    s.daemon().wait_for_log(
        "keeping the 2 CrowdSec decisions in force",
        Duration::from_secs(5),
    );
    assert!(
        !s.reaches(CLIENT_V4) && !s.reaches(OTHER_V4),
        "enforced while the API is down"
    );
    // The short decision ends on its own time, the API still down.
    s.wait(
        "S",
        CLIENT_V4,
        false,
        Duration::from_secs(6).saturating_sub(short.elapsed()) + Duration::from_secs(2),
    );
    assert!(!s.reaches(OTHER_V4), "the long decision stays");
    assert!(s.reaches(later), "filtering goes on");
    let status = s.iplock.status_json();
    assert!(
        status["crowdsec"]["pull_errors"].as_u64() >= Some(1),
        "{status}"
    );
    let log = s.daemon().log();
    assert_eq!(
        log.matches("keeping the").count(),
        1,
        "one line per outage:\n{log}"
    );

    lapi.restart();
    lapi.add_decision("192.0.2.4", "1h", "ban");
    // Backoff is at most six pull periods.
    s.wait("S", later, true, Duration::from_secs(9));
    s.daemon()
        .wait_for_log("answers again", Duration::from_secs(1));
    assert!(!s.reaches(OTHER_V4));
}

#[test]
fn a_restart_resynchronises_and_keeps_nothing_stale() {
    if !runnable() {
        return;
    }
    let (mut s, lapi) = single(&[]);
    s.start(&["--keep"]);
    lapi.add_decision("192.0.2.2", "1h", "ban");
    lapi.add_decision("192.0.2.3", "1h", "ban");
    s.wait("S", CLIENT_V4, true, ARRIVES);
    s.wait("S", OTHER_V4, true, ARRIVES);
    let mut d = s.daemon.take().unwrap();
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    drop(d);
    // Kept: the filter still enforces both while no daemon runs.
    assert!(!s.reaches(CLIENT_V4) && !s.reaches(OTHER_V4));
    lapi.delete_decision("192.0.2.3");
    s.start(&[]);
    assert!(
        s.reaches(OTHER_V4),
        "a decision deleted while iplock was stopped stayed"
    );
    assert!(!s.reaches(CLIENT_V4));
    let status = s.iplock.status_json();
    assert_eq!(status["crowdsec"]["decisions"], 1, "{status}");
}

#[test]
fn twenty_thousand_decisions_load() {
    if !runnable() {
        return;
    }
    let (mut s, lapi) = single(&[]);
    let values: Vec<String> = (0..20_000u32)
        .map(|i| format!("100.64.{}.{}", i / 256, i % 256))
        .collect();
    let import = lapi.import_bans(&values, "1h");
    let load = s.start(&[]);
    let log = s.daemon().log();
    assert!(log.contains("20000 written"), "{log}");
    let status = s.iplock.status_json();
    assert_eq!(
        status["crowdsec"]["decisions"], 20_000,
        "{}",
        status["crowdsec"]
    );
    assert!(s.reaches(CLIENT_V4), "a source without a decision passes");
    eprintln!(
        "TIMING: cscli import of 20000 decisions {import:?}; iplock run start to 20000 decisions in the map {load:?}"
    );
}
