//! Reloads are all or nothing (issue 10). A reload whose allow list does
//! not fit together with the entries added at run time is refused with
//! exit status 2 before anything changes: the old knock sequence and the
//! whole old allow list stay in force. `allow add` refuses a full list the
//! same way. Entries added at run time outlive every reload and rotation,
//! which switch between two configuration slots, until `allow del`
//! removes them.
//!
//! The XDP attach mode plays no part here, so every test runs in skb mode.
//! Adding ~4000 entries with one `iplock allow add` each takes about a
//! minute, so the big lists come from config files (at most 4096 entries)
//! and only a few entries are added at run time.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use iplock_e2e::iplock::binary;
use iplock_e2e::status::{field, knock_sequence};
use iplock_e2e::{
    CLIENT_V4, Daemon, EchoServer, Iplock, KNOCK, Mode, NO_BANS, NetnsPair, OTHER_V4, OTHER_V6,
    SERVER_V4, SERVER_V6, TempDir, assert_exit, describe, one_stderr_line, require_root,
    run_bounded, wait_for,
};

const MODE: Mode = Mode::Skb;
/// Sequences the tests reload to, different from [`KNOCK`] and each other.
const KNOCK_B: &str = "tcp:1100,udp:1300,tcp:1200";
const KNOCK_C: &str = "udp:2100,tcp:2300,tcp:2200";
/// The allow list's capacity (`MAX_ALLOW` of iplock-common).
const MAX_ALLOW: usize = 4096;

/// `n` distinct host routes in `2001:db8:<group>::/48`, as status shows them.
fn hosts(group: u16, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, (i >> 16) as u16, i as u16);
            format!("{ip}/128")
        })
        .collect()
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// A config file `name` in `dir` without bans (a failed attempt leaves its
/// source free to try again) and with this allow list.
fn config(dir: &TempDir, name: &str, allow: &[String]) -> String {
    let list = allow
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let path = dir.write(name, &format!("allow = [{list}]\n{NO_BANS}"));
    path.to_str().expect("temp paths are UTF-8").to_string()
}

/// The CIDRs of the allow list in force, from `iplock status --json`.
fn allowed(iplock: &Iplock) -> BTreeSet<String> {
    field(&iplock.status_json()["allow"], "cidr")
        .into_iter()
        .collect()
}

fn set<'a>(lists: impl IntoIterator<Item = &'a [String]>) -> BTreeSet<String> {
    lists.into_iter().flatten().cloned().collect()
}

/// `iplock allow add` of each CIDR, one process each.
fn allow_add(iplock: &Iplock, cidrs: &[String]) {
    for c in cidrs {
        iplock.run_ok("allow", &["add", c]);
    }
}

/// Panics unless `sequence` opens the door for 192.0.2.2.
fn opens(pair: &NetnsPair, sequence: &str, why: &str) {
    pair.knock(CLIENT_V4, SERVER_V4, sequence);
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, why));
}

/// Panics if `sequence` opens the door for 192.0.2.2.
fn does_not_open(pair: &NetnsPair, sequence: &str, why: &str) {
    pair.knock(CLIENT_V4, SERVER_V4, sequence);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, why);
}

/// A filter with sequence A and 4000 config entries (192.0.2.3 among
/// them) plus 3 added at run time; a reload to sequence B with 4095 config
/// entries, 192.0.2.3 no longer among them, would need 4098. It exits 2
/// with one sentence, and the filter is as it was: sequence A in force and
/// opening the door, B not, the old allow list whole, 192.0.2.3 let in
/// without knocking.
#[test]
fn a_reload_that_overflows_the_allow_list_changes_nothing() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let mut old = vec![host(OTHER_V4)];
    old.extend(hosts(0xffff, 3999));
    let runtime = hosts(0xeeee, 3);
    let new = hosts(0xdddd, MAX_ALLOW - 1);
    assert!(new.len() + runtime.len() > MAX_ALLOW);
    let old_config = config(&dir, "old.toml", &old);
    let new_config = config(&dir, "new.toml", &new);

    iplock.load(MODE, &["--config", &old_config, "--knock", KNOCK]);
    allow_add(&iplock, &runtime);
    let before = set([old.as_slice(), runtime.as_slice()]);
    assert_eq!(allowed(&iplock), before, "the allow list as loaded");

    let started = Instant::now();
    let out = iplock.run(
        "reload",
        &iplock.settings(MODE, &["--config", &new_config, "--knock", KNOCK_B]),
    );
    eprintln!("the refused reload took {:?}", started.elapsed());
    assert_exit(&out, 2, "a reload that does not fit the allow list");
    let line = one_stderr_line(&out);
    assert!(
        line.contains("allow list") && line.contains("4098") && line.contains("4096"),
        "the refusal names the allow list and both sizes: {line:?}"
    );

    let status = iplock.status_json();
    assert_eq!(
        knock_sequence(&status, "knock").as_deref(),
        Some(KNOCK),
        "the old sequence stays in force"
    );
    assert_eq!(
        allowed(&iplock),
        before,
        "the old allow list stays whole, config and run-time entries"
    );
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "192.0.2.3 is still allow-listed"));
    does_not_open(&pair, KNOCK_B, "the refused reload's sequence");
    opens(&pair, KNOCK, "the old sequence still opens the door");
}

/// With 4094 config entries and 2 added at run time the list is full: one
/// more `allow add` exits 2 with one sentence and changes nothing, and a
/// reload of the same settings afterwards finds the same 4096 entries.
#[test]
fn allow_add_to_a_full_list_is_refused_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let mut cfg = vec![host(OTHER_V4)];
    cfg.extend(hosts(0xffff, MAX_ALLOW - 3));
    let runtime = hosts(0xeeee, 3);
    let path = config(&dir, "full.toml", &cfg);
    let settings = iplock.settings(MODE, &["--config", &path, "--knock", KNOCK]);
    iplock.run_ok("load", &settings);
    allow_add(&iplock, &runtime[..2]);
    let full = set([cfg.as_slice(), &runtime[..2]]);
    assert_eq!(full.len(), MAX_ALLOW);
    assert_eq!(allowed(&iplock), full, "the allow list is full");

    let out = iplock.run("allow", &["add", &runtime[2]]);
    assert_exit(&out, 2, "allow add to a full list");
    let line = one_stderr_line(&out);
    assert!(
        line.contains("4096"),
        "the refusal names the list's size: {line:?}"
    );
    assert_eq!(allowed(&iplock), full, "the refused add changed nothing");
    let listed: BTreeSet<String> = field(&iplock.json("allow", &["list", "--json"]), "cidr")
        .into_iter()
        .collect();
    assert_eq!(listed, full, "allow list --json");

    iplock.run_ok("reload", &settings);
    assert_eq!(
        allowed(&iplock),
        full,
        "a reload switches to a slot that holds the same list"
    );
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "192.0.2.3 is allow-listed"));
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is not");
}

/// 192.0.2.3, added at run time, stays through two reloads in a row (so
/// through both configuration slots) that each change the sequence and
/// the config allow list; `allow del` then removes it, and it stays gone
/// through two more reloads.
#[test]
fn reloads_keep_run_time_allow_entries_until_deleted() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let dir = TempDir::new();
    let no_bans = dir.config_file(NO_BANS);
    let runtime = host(OTHER_V4);
    let run = |sub: &str, knock: &str, allow: &str| {
        let extra = [
            "--config",
            no_bans.as_str(),
            "--knock",
            knock,
            "--allow",
            allow,
        ];
        iplock.run_ok(sub, &iplock.settings(MODE, &extra));
    };

    run("load", KNOCK, "198.51.100.1/32");
    iplock.run_ok("allow", &["add", &runtime]);
    let v6 = host(OTHER_V6);
    for (round, (knock, cfg)) in [(KNOCK_B, "198.51.100.2/32"), (KNOCK_C, v6.as_str())]
        .into_iter()
        .enumerate()
    {
        run("reload", knock, cfg);
        let status = iplock.status_json();
        assert_eq!(
            knock_sequence(&status, "knock").as_deref(),
            Some(knock),
            "reload {round} switched the sequence"
        );
        assert_eq!(
            allowed(&iplock),
            BTreeSet::from([cfg.to_string(), runtime.clone()]),
            "reload {round}: the new config entry and the run-time one"
        );
        drop(pair.connect(
            OTHER_V4,
            SERVER_V4,
            22,
            &format!("the run-time entry after reload {round}"),
        ));
    }
    drop(pair.connect(OTHER_V6, SERVER_V6, 22, "the config entry in force"));
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is not allowed");

    iplock.run_ok("allow", &["del", &runtime]);
    assert_eq!(allowed(&iplock), BTreeSet::from([v6.clone()]), "after del");
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "the run-time entry is deleted");
    for (round, knock) in [KNOCK, KNOCK_B].into_iter().enumerate() {
        run("reload", knock, &v6);
        assert_eq!(
            allowed(&iplock),
            BTreeSet::from([v6.clone()]),
            "reload {round} after the del"
        );
        pair.assert_dropped(
            OTHER_V4,
            SERVER_V4,
            22,
            &format!("the deleted entry stays gone after reload {round}"),
        );
    }
}

/// A secret file of mode 600 as `iplock secret new` writes it, recording
/// the rotation of the test's config (2 s, 3 tcp steps, port 22 excluded).
fn secret(dir: &TempDir) -> PathBuf {
    let out = run_bounded(
        Command::new(binary()).args([
            "secret",
            "new",
            "--period",
            "2s",
            "--steps",
            "3",
            "--exclude",
            "22",
        ]),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "iplock secret new: {}",
        describe(&out)
    );
    let path = dir.path().join("secret");
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&out.stdout))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// How many times the daemon has written a new period's sequence.
fn rotations(daemon: &Daemon) -> usize {
    daemon.log().matches("knock sequence rotated").count()
}

/// `iplock run` rotating every 2 s with 2001:db8::3 in the config allow
/// list and 192.0.2.3 added at run time: across two rotations (one into
/// each slot) the sequence changes and both entries stay, and let their
/// sources in without knocking.
#[test]
fn rotation_keeps_config_and_run_time_allow_entries() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let secret = secret(&dir);
    let cfg = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nmode = \"skb\"\nprotect = [22]\nallow = [\"{}\"]\n\
         rotate = {{ secret_file = \"{}\", period = \"2s\", steps = 3 }}\n{NO_BANS}",
        pair.server_if,
        host(OTHER_V6),
        secret.display()
    ));
    let mut daemon = Daemon::start(&iplock, &["--config", &cfg], "info,iplock=debug");
    // A rotation holds the filter's lock for a moment: an add that meets
    // it is refused as busy and tried again.
    let runtime = host(OTHER_V4);
    wait_for("allow add", Duration::from_secs(10), || {
        let out = iplock.run("allow", &["add", &runtime]);
        match out.status.code() {
            Some(0) => Ok(()),
            _ => Err(describe(&out)),
        }
    });
    let want = BTreeSet::from([host(OTHER_V6), runtime.clone()]);
    // The sequence first: a rotation in between is then waited past.
    let mut sequence = knock_sequence(&iplock.status_json(), "knock");
    let mut seen = rotations(&daemon);
    for round in 0..2 {
        let started = Instant::now();
        while rotations(&daemon) <= seen {
            daemon.assert_running();
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no rotation {round} within 10 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        seen = rotations(&daemon);
        let status = iplock.status_json();
        let now = knock_sequence(&status, "knock");
        assert_ne!(now, sequence, "rotation {round} changed the sequence");
        sequence = now;
        assert_eq!(
            allowed(&iplock),
            want,
            "rotation {round} kept both allow entries"
        );
        drop(pair.connect(
            OTHER_V4,
            SERVER_V4,
            22,
            &format!("the run-time entry after rotation {round}"),
        ));
        drop(pair.connect(
            OTHER_V6,
            SERVER_V6,
            22,
            &format!("the config entry after rotation {round}"),
        ));
    }
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 is not allowed");
    daemon.assert_running();
}
