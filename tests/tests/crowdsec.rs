//! iplock's CrowdSec client against a real Local API (no kernel): startup
//! and delta pulls, deletions, null lists, expiry, the watcher's pushes,
//! outages and resynchronisation, and the time of a large startup pull.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use iplock::config::cidr::Cidr;
use iplock::config::crowdsec::{CrowdsecSettings, LapiUrl, MachineCredentials, SecretString};
use iplock::crowdsec::{
    BanReason, Bouncer, Change, DecisionSet, Feed, FeedStep, LapiError, LocalBan, Watcher,
};
use iplock::system::clock::now_ns;
use iplock_e2e::crowdsec::{Lapi, TOOLS};
use iplock_e2e::{NetnsPair, SERVER_V4, in_netns, require_root, require_tools};

const S: u64 = 1_000_000_000;

fn runnable() -> bool {
    require_tools(&TOOLS)
}

fn settings(url: &str, key: Option<String>) -> CrowdsecSettings {
    CrowdsecSettings {
        lapi_url: LapiUrl::parse(url, "lapi_url").unwrap(),
        api_key: key.map(SecretString::new),
        update_frequency: Duration::from_millis(200),
        origins: vec![],
        scenarios_containing: vec![],
        scenarios_not_containing: vec![],
        machine: None,
    }
}

fn bouncer(lapi: &Lapi, name: &str) -> Bouncer {
    Bouncer::new(&settings(&lapi.url(), Some(lapi.add_bouncer(name)))).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).unwrap()
}

/// `until` is `secs` from `at` (boot ns), give or take the few seconds a test takes.
fn lasts(until: u64, at: u64, secs: u64) {
    let want = at + secs * S;
    assert!(
        until <= want + S && until + 10 * S >= want,
        "ends {}s from then, not about {secs}s",
        (until as i128 - at as i128) / S as i128
    );
}

#[test]
fn startup_pull_types_every_scope_and_family() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    lapi.add_decision("192.0.2.7", "1h", "ban");
    lapi.add_decision("2001:db8::7", "2h", "ban");
    lapi.add_decision("198.51.100.0/24", "30m", "ban");
    lapi.add_decision("2001:db8:1::/48", "90m", "ban");
    lapi.add_decision("::ffff:203.0.113.8", "1h", "ban");
    lapi.add_decision("192.0.2.9", "1h", "captcha");
    let b = bouncer(&lapi, "b1");
    let at = now_ns();
    let delta = rt().block_on(b.pull(true, now_ns)).unwrap();
    assert!(delta.startup);
    let mut got: Vec<_> = delta
        .new
        .iter()
        .map(|d| (d.target.to_string(), d.origin.clone()))
        .collect();
    got.sort();
    let want = [
        "192.0.2.7/32",
        "198.51.100.0/24",
        "2001:db8:1::/48",
        "2001:db8::7/128",
        "203.0.113.8/32",
    ];
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), want);
    assert!(got.iter().all(|g| g.1 == "cscli"), "{got:?}");
    assert_eq!(delta.ignored_new.not_ban, 1, "{:?}", delta.ignored_new);
    let until = |t: &str| {
        delta
            .new
            .iter()
            .find(|d| d.target == cidr(t))
            .unwrap()
            .until_ns
    };
    lasts(until("192.0.2.7"), at, 3600);
    lasts(until("2001:db8::7"), at, 7200);
    lasts(until("198.51.100.0/24"), at, 1800);
    lasts(until("2001:db8:1::/48"), at, 5400);
    lasts(until("203.0.113.8"), at, 3600);
    // The IPv4-mapped value is IPv4, as the filter keys it.
    assert!(cidr("203.0.113.8").ip.is_ipv4());
}

#[test]
fn deltas_show_deletions_and_null_lists() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    let b = bouncer(&lapi, "b1");
    let rt = rt();
    // Nothing at all: the Local API sends `null` lists.
    let empty = rt.block_on(b.pull(true, now_ns)).unwrap();
    assert!(empty.new.is_empty() && empty.deleted.is_empty());
    lapi.add_decision("192.0.2.7", "1h", "ban");
    lapi.add_decision("2001:db8:1::/48", "1h", "ban");
    let mut set = DecisionSet::new();
    let d = rt.block_on(b.pull(false, now_ns)).unwrap();
    assert_eq!(d.new.len(), 2, "{d:?}");
    assert_eq!(set.apply(&d).len(), 2);
    let quiet = rt.block_on(b.pull(false, now_ns)).unwrap();
    assert!(
        quiet.new.is_empty() && quiet.deleted.is_empty(),
        "{quiet:?}"
    );
    lapi.delete_decision("192.0.2.7");
    let mut lifts = Vec::new();
    let mut seen = 0;
    // The deletion comes on the next pull, and may come on the one after
    // (the Local API looks back 2 s): applied twice, it changes nothing.
    for _ in 0..3 {
        let d = rt.block_on(b.pull(false, now_ns)).unwrap();
        seen += d.deleted.len();
        assert!(
            d.deleted
                .iter()
                .all(|x| x.target == cidr("192.0.2.7") && x.until_ns <= now_ns())
        );
        lifts.extend(set.apply(&d));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(seen >= 1, "no deletion seen");
    eprintln!("the deletion arrived on {seen} of 3 pulls");
    assert_eq!(
        lifts,
        [Change::Lift {
            target: cidr("192.0.2.7")
        }]
    );
    assert_eq!(set.len(), 1);
    // A startup pull lists the deleted decision as deleted and the rest as new.
    let d = rt.block_on(b.pull(true, now_ns)).unwrap();
    assert_eq!(d.new.len(), 1);
    assert!(d.deleted.iter().any(|x| x.target == cidr("192.0.2.7")));
    assert_eq!(set.apply(&d), []);
}

#[test]
fn a_wrong_key_is_refused_and_filters_apply() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    lapi.add_decision("192.0.2.7", "1h", "ban");
    let bad = Bouncer::new(&settings(&lapi.url(), Some("0123456789abcdef".into()))).unwrap();
    let e = rt().block_on(bad.pull(true, now_ns)).unwrap_err();
    assert!(matches!(e, LapiError::Refused { status: 403, .. }), "{e}");
    assert!(!e.to_string().contains("0123456789"), "{e}");
    let mut s = settings(&lapi.url(), Some(lapi.add_bouncer("b1")));
    s.origins = vec!["crowdsec".into()];
    let d = rt()
        .block_on(Bouncer::new(&s).unwrap().pull(true, now_ns))
        .unwrap();
    assert!(d.new.is_empty(), "the origins filter left {d:?}");
}

#[test]
fn pushed_bans_reach_other_bouncers() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    let creds = lapi.add_machine("host-a", "s3cr3t-password-for-host-a");
    let mut s = settings(&lapi.url(), None);
    s.machine = Some(MachineCredentials {
        machine_id: "host-a".into(),
        password: SecretString::new("s3cr3t-password-for-host-a"),
    });
    let mut w = Watcher::new(&s).unwrap();
    let ban = |t: &str, reason, secs| LocalBan {
        target: cidr(t),
        reason,
        duration: Duration::from_secs(secs),
    };
    let allow = [cidr("203.0.113.0/24")];
    let is_allowed = |c: &Cidr| allow.iter().any(|a| a.contains(c.ip) || c.contains(a.ip));
    w.enqueue(ban("192.0.2.66", BanReason::WrongKnock, 3600));
    w.enqueue(ban("2001:db8:66::/64", BanReason::TrapPort, 600));
    w.enqueue(ban("203.0.113.5", BanReason::ClosedDoor, 3600));
    w.enqueue(ban("198.51.100.1", BanReason::Crowdsec, 3600));
    let rt = rt();
    let t = Instant::now();
    let report = rt.block_on(w.flush(is_allowed)).unwrap();
    eprintln!("login and push of a batch: {:?}", t.elapsed());
    assert_eq!((report.pushed, report.allowed), (2, 1), "{report:?}");
    assert_eq!(w.pending(), 0);
    let direct = rt
        .block_on(w.push(&[ban("198.51.100.1", BanReason::Crowdsec, 60)], is_allowed))
        .unwrap();
    assert_eq!((direct.pushed, direct.from_crowdsec), (0, 1));
    // Another host's bouncer sees them on its next pull.
    let b = bouncer(&lapi, "host-b");
    let at = now_ns();
    let d = rt.block_on(b.pull(true, now_ns)).unwrap();
    let mut got: Vec<_> = d
        .new
        .iter()
        .map(|x| (x.target.to_string(), x.origin.as_str(), x.scenario.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("192.0.2.66/32".into(), "iplock", "iplock/wrong-knock"),
            ("2001:db8:66::/64".into(), "iplock", "iplock/trap-port"),
        ]
    );
    lasts(
        d.new
            .iter()
            .find(|x| x.target == cidr("192.0.2.66"))
            .unwrap()
            .until_ns,
        at,
        3600,
    );
    lasts(
        d.new
            .iter()
            .find(|x| x.target.ip.is_ipv6())
            .unwrap()
            .until_ns,
        at,
        600,
    );
    // cscli agrees.
    let list = lapi.list_decisions().to_string();
    assert!(
        list.contains("iplock/wrong-knock") && !list.contains("203.0.113.5"),
        "{list}"
    );
    // The credentials file cscli wrote is the one the config reads.
    let toml = format!("credentials_file = \"{}\"", creds.display());
    assert!(Path::new(&creds).exists() && toml.contains("machine-host-a"));
}

#[test]
fn a_wrong_machine_password_is_refused() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    lapi.add_machine("host-a", "right-password-123");
    let mut s = settings(&lapi.url(), None);
    s.machine = Some(MachineCredentials {
        machine_id: "host-a".into(),
        password: SecretString::new("wrong-password-123"),
    });
    let mut w = Watcher::new(&s).unwrap();
    let e = rt().block_on(w.login()).unwrap_err();
    assert!(matches!(e, LapiError::Refused { .. }), "{e}");
    assert!(!e.to_string().contains("password-123"), "{e}");
}

#[test]
fn an_outage_keeps_decisions_logs_once_and_resyncs() {
    if !runnable() {
        return;
    }
    let mut lapi = Lapi::start();
    lapi.add_decision("192.0.2.7", "1h", "ban");
    let mut b = bouncer(&lapi, "b1");
    b.set_timeout(Duration::from_secs(2));
    let rt = rt();
    let mut feed = Feed::with_max_backoff(b, Duration::from_secs(1), Instant::now());
    let FeedStep::Pulled { changes, .. } = rt.block_on(feed.step(now_ns)) else {
        panic!("the first pull failed");
    };
    assert_eq!(changes.len(), 1);
    lapi.stop();
    let mut logged = Vec::new();
    let mut waits = Vec::new();
    let t = Instant::now();
    for _ in 0..4 {
        match rt.block_on(feed.step(now_ns)) {
            FeedStep::Failed {
                error,
                log,
                retry_in,
            } => {
                assert!(matches!(error, LapiError::Unreachable { .. }), "{error}");
                logged.push(log);
                waits.push(retry_in);
            }
            other => panic!("pulled from a stopped Local API: {other:?}"),
        }
    }
    eprintln!("4 failed pulls in {:?}, waits {waits:?}", t.elapsed());
    assert_eq!(logged, [true, false, false, false]);
    assert_eq!(
        waits,
        [200, 400, 800, 1000].map(Duration::from_millis),
        "backoff doubles up to its bound"
    );
    // The filter keeps what it has while the Local API is down.
    assert_eq!(feed.set.len(), 1);
    lapi.restart();
    lapi.delete_decision("192.0.2.7");
    lapi.add_decision("192.0.2.8", "1h", "ban");
    let FeedStep::Pulled {
        changes,
        delta,
        recovered,
    } = rt.block_on(feed.step(now_ns))
    else {
        panic!("no pull after the restart");
    };
    assert!(delta.startup, "the pull after an outage resynchronises");
    assert!(recovered.is_some());
    assert_eq!(
        changes
            .iter()
            .map(|c| format!("{c:?}")
                .split_whitespace()
                .next()
                .unwrap()
                .to_string())
            .collect::<Vec<_>>(),
        ["Lift", "Ban"],
        "{changes:?}"
    );
    assert!(matches!(&changes[0], Change::Lift { target } if *target == cidr("192.0.2.7")));
    assert!(matches!(&changes[1], Change::Ban { target, .. } if *target == cidr("192.0.2.8")));
    let FeedStep::Pulled { delta, .. } = rt.block_on(feed.step(now_ns)) else {
        panic!("the pull after the resync failed");
    };
    assert!(!delta.startup);
}

/// A server that accepts and answers `answer` (or nothing) after `delay`.
fn fake_lapi(rt: &tokio::runtime::Runtime, answer: &'static str, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    rt.spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[test]
fn slow_and_malformed_answers_are_errors() {
    let rt = rt();
    let key = Some("k".to_string());
    let garbage = fake_lapi(
        &rt,
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{\"new\":[1",
        Duration::ZERO,
    );
    let b = Bouncer::new(&settings(&garbage, key.clone())).unwrap();
    let e = rt.block_on(b.pull(true, now_ns)).unwrap_err();
    assert!(matches!(e, LapiError::Malformed(_)), "{e}");
    let failing = fake_lapi(
        &rt,
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 20\r\nconnection: close\r\n\r\n{\"message\":\"db bad\"}",
        Duration::ZERO,
    );
    let b = Bouncer::new(&settings(&failing, key.clone())).unwrap();
    let e = rt.block_on(b.pull(true, now_ns)).unwrap_err();
    assert!(
        matches!(e, LapiError::Status { status: 500, .. }) && e.to_string().contains("db bad"),
        "{e}"
    );
    let slow = fake_lapi(&rt, "", Duration::from_secs(5));
    let mut b = Bouncer::new(&settings(&slow, key)).unwrap();
    b.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = rt.block_on(b.pull(true, now_ns)).unwrap_err();
    assert!(matches!(e, LapiError::Timeout { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn startup_pull_of_20000_decisions() {
    if !runnable() {
        return;
    }
    let lapi = Lapi::start();
    let values: Vec<String> = (0..20_000u32)
        .map(|i| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]).to_string())
        .collect();
    let import = lapi.import_bans(&values, "4h");
    let b = bouncer(&lapi, "b1");
    let rt = rt();
    let t = Instant::now();
    let d = rt.block_on(b.pull(true, now_ns)).unwrap();
    let pull = t.elapsed();
    let t = Instant::now();
    let mut set = DecisionSet::new();
    let changes = set.apply(&d);
    let apply = t.elapsed();
    eprintln!(
        "TIMING: import of 20000 decisions {import:?}; startup pull {pull:?}; DecisionSet::apply {apply:?}"
    );
    assert_eq!(d.new.len(), 20_000);
    assert_eq!(changes.len(), 20_000);
}

#[test]
fn a_local_api_inside_a_namespace() {
    if !runnable() || !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let lapi = Lapi::start_in(&pair.server, SERVER_V4);
    assert_eq!(lapi.url(), format!("http://{}", lapi.addr));
    lapi.add_decision("192.0.2.99", "1h", "ban");
    let b = bouncer(&lapi, "b1");
    // A bouncer in the client namespace reaches it over the veth.
    let d = in_netns(&pair.client, || rt().block_on(b.pull(true, now_ns))).unwrap();
    assert_eq!(d.new.len(), 1);
    assert_eq!(d.new[0].target, cidr("192.0.2.99"));
}
