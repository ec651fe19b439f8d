//! Who may change a filter: `iplock run` owns the filter it runs, so a
//! second `run`, a `load` or an `unload` is refused with the daemon's pid
//! while `reload`, `allow`, `ban` and the daemon's own reload keep working;
//! every spelling of a pin dir is one filter with one lock; a failed
//! command leaves no lock file; a pin dir the kernel cannot take is bad
//! input. None of this depends on the XDP mode, so every test attaches in
//! skb mode.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use iplock_common::names::LINK_PIN_PREFIX;
use iplock_e2e::lock::{BUSY, HeldLock, lock_files_of, lock_path};
use iplock_e2e::status::{bans, knock_sequence};
use iplock_e2e::{
    CLIENT_V4, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, TempDir,
    assert_exit, describe, one_stderr_line, require_root, run_ok, unique_id,
};

/// A sequence the tests reload to: valid, and different from [`KNOCK`].
const NEW_KNOCK: &str = "tcp:101,udp:301,tcp:201";
const SLOW: Duration = Duration::from_secs(20);

/// While `run` runs, a second `run`, a `load` and an `unload` exit 2 with
/// one sentence naming it and change nothing: the first daemon stays up
/// without errors and an un-knocked connect is still dropped. `reload`,
/// `allow add`, `ban add` and the daemon's own SIGHUP reload work, and on
/// SIGTERM it detaches and removes the filter and its lock file.
#[test]
fn run_owns_its_filter_while_reload_allow_and_ban_still_work() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let args = iplock.settings(Mode::Skb, &["--knock", KNOCK]);
    let mut run_args = args.clone();
    run_args.extend(["--sweep-every", "100ms"]);
    let mut run = Daemon::start(&iplock, &run_args, "info");
    let pid = run.pid();

    let refused = format!(
        "iplock: the filter at {} is run by `iplock run` (pid {pid}); stop it first",
        iplock.pin_dir().display()
    );
    for (sub, a) in [("run", &args[..]), ("load", &args[..]), ("unload", &[][..])] {
        let out = iplock.run(sub, a);
        assert_exit(&out, 2, &format!("{sub} while run runs"));
        assert_eq!(one_stderr_line(&out), refused, "{sub}");
    }
    run.assert_running();
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");
    let owner = lock_path(iplock.pin_dir(), "owner");
    let recorded =
        std::fs::read_to_string(&owner).unwrap_or_else(|e| panic!("read {}: {e}", owner.display()));
    assert_eq!(
        recorded.trim(),
        pid.to_string(),
        "pid in {}",
        owner.display()
    );

    iplock.run_ok(
        "reload",
        &iplock.settings(Mode::Skb, &["--knock", NEW_KNOCK]),
    );
    let status = iplock.status_json();
    assert_eq!(knock_sequence(&status, "knock").as_deref(), Some(NEW_KNOCK));
    iplock.run_ok("allow", &["add", &OTHER_V4.to_string()]);
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "allowed while run runs"));
    iplock.run_ok("ban", &["add", &CLIENT_V4.to_string()]);
    let banned = bans(&iplock.status_json());
    assert!(
        banned
            .iter()
            .any(|(addr, _)| *addr == CLIENT_V4.to_string()),
        "no ban of {CLIENT_V4} in {banned:?}"
    );
    pair.knock(CLIENT_V4, SERVER_V4, NEW_KNOCK);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "banned while run runs");

    // The daemon reloads from its own arguments: the sequence it started with.
    run.signal(libc::SIGHUP);
    run.wait_for_log("reloaded:", SLOW);
    let status = iplock.status_json();
    assert_eq!(knock_sequence(&status, "knock").as_deref(), Some(KNOCK));
    let log = run.log();
    assert!(!log.contains("ERROR"), "the daemon logged errors:\n{log}");

    run.signal(libc::SIGTERM);
    let exit = run.wait_exit(SLOW);
    assert!(exit.success(), "run exited {exit}: {}", run.log());
    assert!(!iplock.pin_dir().exists(), "run left the filter behind");
    assert_eq!(lock_files_of(iplock.pin_dir()), Vec::<String>::new());
}

/// `/sys/fs/bpf/./x`, `/sys/fs/bpf//x`, `x/` and two symlinks (to bpffs,
/// and to the filter's directory) are one filter: its lock refuses every
/// spelling, every spelling sees its interfaces, and a load through one
/// replaces the filter loaded through another.
#[test]
fn every_spelling_of_a_pin_dir_is_one_filter() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let dir = iplock.pin_dir();
    let name = dir.file_name().unwrap().to_str().unwrap();
    let links = TempDir::new();
    std::os::unix::fs::symlink("/sys/fs/bpf", links.path().join("bpf")).unwrap();
    std::os::unix::fs::symlink(dir, links.path().join("filter")).unwrap();
    let spellings = [
        PathBuf::from(format!("/sys/fs/bpf/./{name}")),
        PathBuf::from(format!("/sys/fs/bpf//{name}")),
        PathBuf::from(format!("{name}/")),
        links.path().join("bpf").join(name),
        links.path().join("filter"),
    ];
    let at = |spelling: &Path, sub: &str, args: &[&str]| -> Output {
        let mut cmd = iplock.command_at(spelling, sub, args);
        iplock_e2e::run_bounded(cmd.current_dir("/sys/fs/bpf"), SLOW)
    };
    let args = iplock.settings(Mode::Skb, &["--knock", KNOCK]);

    let out = at(&spellings[0], "load", &args);
    assert_exit(&out, 0, "load via /./");
    assert!(dir.exists(), "the filter is not at {}", dir.display());
    {
        let _held = HeldLock::take(dir);
        let busy = format!("{BUSY} {} right now", dir.display());
        for s in &spellings {
            let out = at(s, "reload", &args);
            assert_exit(&out, 2, &format!("reload via {} while locked", s.display()));
            let line = one_stderr_line(&out);
            assert!(line.contains(&busy), "via {}: {line}", s.display());
        }
    }
    for s in &spellings {
        let out = at(s, "status", &["--json"]);
        assert_exit(&out, 0, &format!("status via {}", s.display()));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            status["interfaces"][0]["name"],
            pair.server_if.as_str(),
            "via {}: {status}",
            s.display()
        );
    }
    let out = at(&spellings[4], "load", &args);
    assert_exit(&out, 0, "load via the symlink to the filter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let replaced = format!("a filter was already loaded at {}", dir.display());
    assert!(stdout.contains(&replaced), "{}", describe(&out));
    let out = at(&spellings[3], "unload", &[]);
    assert_exit(&out, 0, "unload via the symlink to bpffs");
    assert!(!dir.exists(), "unload via a symlink left {}", dir.display());
}

/// Reloads racing through two spellings, one adding a second interface and
/// one taking it away: each exits 0 or 2 (busy), and afterwards status
/// lists exactly the interfaces that have a pinned link and run XDP.
#[test]
fn racing_reloads_through_two_spellings_leave_status_true() {
    const ROUNDS: usize = 4;
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    // A second veth inside the server namespace: its other end stays there too.
    let id = unique_id();
    let (extra, peer) = (format!("ia{id}"), format!("ib{id}"));
    assert!(extra.len() <= 15, "interface name too long");
    let ip = |args: &[&str]| run_ok(Command::new("ip").args(["-n", &pair.server]).args(args));
    ip(&["link", "add", &extra, "type", "veth", "peer", "name", &peer]);
    ip(&["link", "set", &extra, "up"]);
    ip(&["link", "set", &peer, "up"]);
    let iplock = Iplock::new(&pair);
    iplock.load(Mode::Skb, &["--knock", KNOCK]);
    let name = iplock.pin_dir().file_name().unwrap().to_str().unwrap();
    let one = PathBuf::from(format!("/sys/fs/bpf/./{name}"));
    let other = PathBuf::from(format!("/sys/fs/bpf//{name}/"));
    let both = [
        "--iface",
        pair.server_if.as_str(),
        "--iface",
        extra.as_str(),
        "--mode",
        "skb",
        "--knock",
        KNOCK,
    ];
    let single = iplock.settings(Mode::Skb, &["--knock", KNOCK]);
    let mut refused = 0;
    for round in 0..ROUNDS {
        let barrier = Barrier::new(2);
        let outs: Vec<Output> = thread::scope(|s| {
            let racers = [(&one, &both[..]), (&other, &single[..])].map(|(dir, args)| {
                let barrier = &barrier;
                let iplock = &iplock;
                s.spawn(move || {
                    barrier.wait();
                    iplock_e2e::run_bounded(&mut iplock.command_at(dir, "reload", args), SLOW)
                })
            });
            racers.map(|h| h.join().unwrap()).into()
        });
        for out in &outs {
            match out.status.code() {
                Some(0) => {}
                Some(2) => {
                    assert!(one_stderr_line(out).contains(BUSY), "{}", describe(out));
                    refused += 1;
                }
                _ => panic!("round {round}: a reload failed: {}", describe(out)),
            }
        }
        let status = iplock.status_json();
        let mut listed: Vec<String> = status["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut linked: Vec<String> = std::fs::read_dir(iplock.pin_dir())
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.strip_prefix(LINK_PIN_PREFIX).map(str::to_string)
            })
            .collect();
        linked.sort();
        let mut running: Vec<String> = [&pair.server_if, &extra]
            .into_iter()
            .filter(|dev| has_xdp(&pair.server, dev))
            .cloned()
            .collect();
        running.sort();
        assert_eq!(listed, linked, "round {round}: status vs pinned links");
        assert_eq!(listed, running, "round {round}: status vs XDP on the links");
    }
    eprintln!(
        "{refused} of {} racing reloads were refused as busy",
        2 * ROUNDS
    );
}

/// A load that fails after taking its locks (native XDP on loopback, which
/// has none), a reload and an unload of a filter that is not there leave
/// no lock file behind.
#[test]
fn failed_commands_leave_no_lock_file() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let out = iplock.run(
        "load",
        &["--iface", "lo", "--mode", "native", "--knock", KNOCK],
    );
    assert_exit(&out, 1, "native XDP on lo");
    assert!(!iplock.pin_dir().exists(), "the failed load left its pins");
    assert_eq!(
        lock_files_of(iplock.pin_dir()),
        Vec::<String>::new(),
        "after load"
    );
    for (sub, args) in [
        (
            "reload",
            &iplock.settings(Mode::Skb, &["--knock", KNOCK])[..],
        ),
        ("unload", &[][..]),
    ] {
        let out = iplock.run(sub, args);
        assert_exit(&out, 2, &format!("{sub} without a filter"));
        assert_eq!(
            lock_files_of(iplock.pin_dir()),
            Vec::<String>::new(),
            "after {sub}"
        );
    }
}

/// A pin dir with a name longer than NAME_MAX, one whose path leaves no
/// room under PATH_MAX for the pins inside it, and one ending in `..` are
/// bad input: exit 2 with one line, and no lock file.
#[test]
fn pin_dirs_the_kernel_cannot_take_exit_2_with_one_line() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let name = iplock.pin_dir().file_name().unwrap().to_str().unwrap();
    let long_name = format!("/sys/fs/bpf/{name}.{}", "x".repeat(300));
    // 4080 bytes: within PATH_MAX, but not with `/link_<15 bytes>` after it.
    let mut deep = format!("/sys/fs/bpf/{name}");
    while deep.len() < 3900 {
        deep.push('/');
        deep.push_str(&"y".repeat(100));
    }
    deep.push('/');
    deep.push_str(&"z".repeat(4080 - deep.len()));
    assert_eq!(deep.len(), 4080);
    let up = format!("/sys/fs/bpf/{name}/..");
    let args = iplock.settings(Mode::Skb, &["--knock", KNOCK]);
    for (dir, want) in [
        (&long_name, "bytes long"),
        (&deep, "bytes long"),
        (&up, "does not end in a directory name"),
    ] {
        let out =
            iplock_e2e::run_bounded(&mut iplock.command_at(Path::new(dir), "load", &args), SLOW);
        assert_exit(&out, 2, &format!("load at {} bytes", dir.len()));
        let line = one_stderr_line(&out);
        assert!(line.contains(want), "want {want:?}, got {line:?}");
    }
    assert_eq!(lock_files_of(iplock.pin_dir()), Vec::<String>::new());
    assert!(!pair.server_has_xdp(), "a refused load attached XDP");
}

fn has_xdp(ns: &str, dev: &str) -> bool {
    !iplock_e2e::link_json(ns, dev)[0]["xdp"].is_null()
}
