//! Resilience: the filter's state outlives the program that made it, and
//! the filter outlives what happens around it. A `load` or `reload` over a
//! loaded filter swaps the program in place (a new program id behind the
//! same BPF link) while open doors, knocks in progress and bans stay, also
//! under a flood; the filter stays attached when its interface goes down
//! and up, `iplock run` attaches again to an interface deleted and created
//! anew, a missing bpffs and a busy filter are refused with one sentence and
//! exit status 2. Each filter ends with an `unload` that must leave no pin,
//! no program and no link.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Output};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use iplock_common::names::LINK_PIN_PREFIX;
use iplock_e2e::iplock::binary;
use iplock_e2e::lock::{BUSY, HeldLock};
use iplock_e2e::status::{bans, sources};
use iplock_e2e::{
    CLIENT_V4, Daemon, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, TempDir,
    assert_exit, both_modes, echo, in_netns, link_json, one_stderr_line, require_root,
    require_tools, run_bounded, run_ok, try_connect, wait_for,
};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

both_modes!(
    load_replaces_the_program_keeping_door_knock_and_ban,
    reload_replaces_the_program_keeping_door_knock_and_ban,
    replacements_under_a_flood_drop_nothing_legitimate,
    interface_down_and_up_keeps_the_filter,
    run_attaches_again_to_a_recreated_interface,
    racing_loads_end_with_one_filter,
);

/// Extra client sources, added to the client veth by the tests that need
/// them: one gets banned, one floods.
const BANNED_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
const FLOOD_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
/// An unrelated port the echo server also serves: it passes unless banned.
const OTHER_PORT: u16 = 8080;
/// Generous: other jobs share this machine, and a program load includes
/// the verifier.
const SLOW: Duration = Duration::from_secs(20);

fn load_replaces_the_program_keeping_door_knock_and_ban(mode: Mode) {
    replacement_keeps_state(mode, "load");
}

fn reload_replaces_the_program_keeping_door_knock_and_ban(mode: Mode) {
    replacement_keeps_state(mode, "reload");
}

/// Opens a door, leaves a knock half done and bans a source, then runs
/// `iplock <sub>` with the same settings over the loaded filter: the program
/// changes, the link stays, and the three states carry on as if nothing had
/// happened.
fn replacement_keeps_state(mode: Mode, sub: &str) {
    if !require_tools(&["bpftool"]) {
        return;
    }
    let pair = NetnsPair::new();
    pair.add_client_addr(BANNED_V4);
    let _server = EchoServer::start(&pair, &[22, OTHER_PORT]);
    let iplock = Iplock::new(&pair);
    // Windows far longer than the test, so only a lost state can close them.
    let extra = [
        "--knock",
        KNOCK,
        "--step-timeout",
        "2m",
        "--open-window",
        "2m",
    ];
    iplock.load(mode, &extra);

    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked");
    pair.knock(OTHER_V4, SERVER_V4, "tcp:100,udp:300");
    pair.assert_dropped(BANNED_V4, SERVER_V4, 22, "192.0.2.4 did not knock");
    let before = wait_for("the door, the knock and the ban in status", SLOW, || {
        let status = iplock.status_json();
        let sources = sources(&status);
        let open = sources
            .iter()
            .any(|s| s.0 == CLIENT_V4.to_string() && s.1 == "open");
        let knocking = sources.contains(&(OTHER_V4.to_string(), "knocking".into(), 2));
        let banned = bans(&status).contains(&(BANNED_V4.to_string(), "closed_door".into()));
        let ok = open && knocking && banned;
        if ok {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    let old_prog = single_prog(&pair);
    let (link, linked_prog) = pinned_link(&iplock, &pair);
    assert_eq!(
        linked_prog, old_prog,
        "the pinned link runs another program"
    );

    let out = iplock.run(sub, &iplock.settings(mode, &extra));
    assert_exit(&out, 0, &format!("{sub} over a loaded filter"));
    if sub == "load" {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("replaced it in place"),
            "load over a loaded filter does not say it replaced it: {stdout}"
        );
    }
    let new_prog = single_prog(&pair);
    assert_ne!(new_prog, old_prog, "{sub} left the old program attached");
    assert_eq!(
        pinned_link(&iplock, &pair),
        (link, new_prog),
        "{sub} did not switch the pinned link in place"
    );
    wait_for("the replaced program to be freed", SLOW, || {
        if loaded_programs().contains(&old_prog) {
            Err(format!("program {old_prog} still loaded"))
        } else {
            Ok(())
        }
    });

    let after = iplock.status_json();
    assert_eq!(
        sources(&after),
        sources(&before),
        "sources changed by {sub}"
    );
    assert_eq!(bans(&after), bans(&before), "bans changed by {sub}");
    let counters = before["counters"].as_object().expect("counters object");
    for (name, n) in counters {
        let (was, is) = (n.as_u64(), after["counters"][name].as_u64());
        assert!(
            is >= was,
            "counter {name} went from {was:?} to {is:?} across {sub}"
        );
    }

    echo(&mut session, "across the replacement");
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "the door opened before the replacement",
    ));
    pair.knock_tcp(OTHER_V4, SERVER_V4, 200);
    // Lets the last knock arrive before the SYN it unlocks.
    sleep(Duration::from_millis(50));
    drop(pair.connect(
        OTHER_V4,
        SERVER_V4,
        22,
        "the knock begun before the replacement was finished after it",
    ));
    pair.assert_dropped(
        BANNED_V4,
        SERVER_V4,
        OTHER_PORT,
        "the ban made before the replacement holds",
    );
    drop(session);
    unload_leaves_nothing(&pair, &iplock, &[link], &[old_prog, new_prog]);
}

/// Swaps the program six times (`load` and `reload` in turn) while one
/// source floods SYNs to the protected port and datagrams to the knock
/// ports, an established session echoes, an allow-listed source and a
/// source with an open door connect again and again. Every legitimate
/// connect and echo must succeed and no flood SYN may ever reach the server.
fn replacements_under_a_flood_drop_nothing_legitimate(mode: Mode) {
    const REPLACEMENTS: usize = 6;
    if !require_tools(&["bpftool"]) {
        return;
    }
    let pair = NetnsPair::new();
    pair.add_client_addr(FLOOD_V4);
    let server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let extra = [
        "--knock",
        KNOCK,
        "--open-window",
        "5m",
        "--allow",
        "192.0.2.3/32",
    ];
    let args = iplock.settings(mode, &extra);
    iplock.load(mode, &extra);
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    let mut session = pair.connect(CLIENT_V4, SERVER_V4, 22, "192.0.2.2 knocked");
    let (link, first_prog) = pinned_link(&iplock, &pair);

    let stop = AtomicBool::new(false);
    // Bounds the traffic threads even if the replacements hang.
    let deadline = Instant::now() + Duration::from_secs(180);
    let client = pair.client.as_str();
    let (flooded, echoed, allowed, opened, replaced) = thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let stop = &stop;
        let flood = s.spawn(move || in_netns(client, || flood(FLOOD_V4, stop, deadline)));
        let session = &mut session;
        let echoes = s.spawn(move || echo_loop(session, stop, deadline));
        let allowed = s.spawn(move || in_netns(client, || connect_loop(OTHER_V4, stop, deadline)));
        let opened = s.spawn(move || in_netns(client, || connect_loop(CLIENT_V4, stop, deadline)));
        // The flood and the traffic are under way before the first swap.
        sleep(Duration::from_millis(500));
        let mut replaced = Vec::new();
        for i in 0..REPLACEMENTS {
            let sub = ["load", "reload"][i % 2];
            let out = iplock.run(sub, &args);
            replaced.push((sub, out, xdp_progs(&pair)));
            sleep(Duration::from_millis(200));
        }
        sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let flooded: u64 = join(flood);
        let echoed: Result<usize, String> = join(echoes);
        let allowed: Result<usize, String> = join(allowed);
        let opened: Result<usize, String> = join(opened);
        (flooded, echoed, allowed, opened, replaced)
    });

    let mut progs = vec![first_prog];
    for (i, (sub, out, now)) in replaced.iter().enumerate() {
        assert_exit(out, 0, &format!("{sub} #{i} under the flood"));
        assert_eq!(
            now.len(),
            1,
            "{sub} #{i}: programs on the interface: {now:?}"
        );
        assert!(
            !progs.contains(&now[0]),
            "{sub} #{i} did not replace the program ({now:?}, before: {progs:?})"
        );
        progs.push(now[0]);
    }
    assert_eq!(
        pinned_link(&iplock, &pair),
        (link, progs[REPLACEMENTS]),
        "the replacements did not keep the link"
    );
    let echoed = echoed.unwrap_or_else(|e| panic!("the established session: {e}"));
    let allowed = allowed.unwrap_or_else(|e| panic!("the allow-listed source: {e}"));
    let opened = opened.unwrap_or_else(|e| panic!("the source with an open door: {e}"));
    eprintln!(
        "{REPLACEMENTS} replacements: {flooded} flood packets, {echoed} echoes, \
         {allowed} allow-listed and {opened} open-door connections"
    );
    assert!(flooded >= 1000, "only {flooded} flood packets: no flood");
    for (what, n) in [
        ("echoes", echoed),
        ("allow-listed", allowed),
        ("open-door", opened),
    ] {
        assert!(
            n >= REPLACEMENTS,
            "only {n} {what} during {REPLACEMENTS} replacements"
        );
    }
    // A flood SYN that passed would have completed its handshake (its
    // socket stays open a while) and been accepted; accepts run every 20 ms.
    sleep(Duration::from_millis(300));
    let leaked: Vec<_> = server
        .peers()
        .into_iter()
        .filter(|p| p.ip() == FLOOD_V4)
        .collect();
    assert!(
        leaked.is_empty(),
        "{} flood connections got through, the first: {:?}",
        leaked.len(),
        &leaked[..leaked.len().min(5)]
    );

    let status = iplock.status_json();
    assert_eq!(
        bans(&status),
        [(FLOOD_V4.to_string(), "closed_door".to_string())],
        "only the flood source may be banned: {status}"
    );
    assert!(
        sources(&status)
            .iter()
            .any(|s| s.0 == CLIENT_V4.to_string() && s.1 == "open"),
        "the door of 192.0.2.2 closed: {status}"
    );
    echo(&mut session, "after the flood");
    drop(session);
    unload_leaves_nothing(&pair, &iplock, &[link], &progs);
}

/// The filter belongs to the interface, not to its state: down and up
/// again, the same program is on it and the door still wants a knock.
fn interface_down_and_up_keeps_the_filter(mode: Mode) {
    if !require_tools(&["bpftool"]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    // Without closed-door bans the source that is refused may knock after.
    let config = dir.config_file("[ban]\nclosed_door = false\n");
    iplock.load(mode, &["--config", &config, "--knock", KNOCK]);
    let prog = single_prog(&pair);
    let (link, _) = pinned_link(&iplock, &pair);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");

    for state in ["down", "up"] {
        run_ok(Command::new("ip").args([
            "-n",
            &pair.server,
            "link",
            "set",
            &pair.server_if,
            state,
        ]));
    }
    wait_for("the veth to be up again", SLOW, || {
        let v = link_json(&pair.server, &pair.server_if);
        if v[0]["operstate"] == "UP" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    assert_eq!(single_prog(&pair), prog, "down and up changed the program");
    assert_eq!(pinned_link(&iplock, &pair), (link, prog));
    let status = iplock.status_json();
    assert_eq!(status["interfaces"][0]["present"], true, "{status}");

    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "down and up opened no door");
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "192.0.2.2 knocked after down and up",
    ));
    unload_leaves_nothing(&pair, &iplock, &[link], &[prog]);
}

/// The server veth deleted, status says the interface is missing and
/// `iplock run` says it is gone; created again with the same name and
/// address, run attaches to it and it filters again. Run's sweep tick is an
/// hour, so both come from link notifications. SIGTERM detaches.
fn run_attaches_again_to_a_recreated_interface(mode: Mode) {
    if !require_tools(&["bpftool"]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file("[ban]\nclosed_door = false\n");
    let mut run = Daemon::start(
        &iplock,
        &iplock.settings(
            mode,
            &["--config", &config, "--knock", KNOCK, "--sweep-every", "1h"],
        ),
        "info",
    );
    wait_for("run to attach", SLOW, || {
        run.assert_running();
        let linked = iplock.pin_dir().join(link_name(&pair)).exists();
        if linked && xdp_progs(&pair).len() == 1 {
            Ok(())
        } else {
            Err(run.log())
        }
    });
    let old_prog = single_prog(&pair);
    let (old_link, _) = pinned_link(&iplock, &pair);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");

    run_ok(Command::new("ip").args(["-n", &pair.server, "link", "del", &pair.server_if]));
    let gone = format!("interface {} is gone", pair.server_if);
    wait_for(
        "status and run to notice the interface is gone",
        SLOW,
        || {
            run.assert_running();
            let status = iplock.status_json();
            if status["interfaces"][0]["present"] == false && run.log().contains(&gone) {
                Ok(())
            } else {
                Err(format!("status: {status}\nlog: {}", run.log()))
            }
        },
    );
    let text = iplock.run("status", &[]);
    assert_exit(&text, 0, "status with the interface gone");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("MISSING"), "status text: {text}");

    pair.recreate_veth();
    let back = format!("interface {} is back; attached again", pair.server_if);
    wait_for("run to attach to the new interface", SLOW, || {
        run.assert_running();
        let status = iplock.status_json();
        let present = status["interfaces"][0]["present"] == true;
        if present && xdp_progs(&pair).len() == 1 && run.log().contains(&back) {
            Ok(())
        } else {
            Err(format!("status: {status}\nlog: {}", run.log()))
        }
    });
    let new_prog = single_prog(&pair);
    let (new_link, linked) = pinned_link(&iplock, &pair);
    assert_eq!(linked, new_prog, "the new link runs another program");
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "the new interface is filtered");
    pair.knock(CLIENT_V4, SERVER_V4, KNOCK);
    drop(pair.connect(
        CLIENT_V4,
        SERVER_V4,
        22,
        "192.0.2.2 knocked on the new interface",
    ));

    run.signal(libc::SIGTERM);
    let status = run.wait_exit(SLOW);
    assert!(status.success(), "run exited {status}: {}", run.log());
    assert!(
        !iplock.pin_dir().exists(),
        "run left {} behind",
        iplock.pin_dir().display()
    );
    assert!(xdp_progs(&pair).is_empty(), "run left XDP on the interface");
    links_and_programs_gone(&[old_link, new_link], &[old_prog, new_prog]);
}

/// Without bpffs on /sys/fs/bpf (unmounted in a private mount namespace,
/// so nothing else notices) `load` says so in one sentence and attaches
/// nothing.
#[test]
fn load_without_bpffs_exits_2_and_attaches_nothing() {
    if !require_root() || !require_tools(&["unshare", "umount", "mountpoint"]) {
        return;
    }
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    // Stacked mounts are possible; the loop peels them all.
    let script = "while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 99; done; \
                  ns=$1; shift; exec nsenter --net=\"$ns\" -- \"$@\"";
    let netns = format!("/run/netns/{}", pair.server);
    let pin_dir = iplock.pin_dir().to_str().unwrap();
    let bin = binary();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&netns)
        .arg(&bin)
        .args(["load", "--pin-dir", pin_dir])
        .args(iplock.settings(Mode::Skb, &["--knock", KNOCK]));
    let out = run_bounded(&mut cmd, SLOW);
    assert_exit(&out, 2, "load without bpffs");
    let line = one_stderr_line(&out);
    assert!(
        line.contains("bpffs"),
        "the message does not mention bpffs: {line}"
    );
    assert!(is_bpffs("/sys/fs/bpf"), "the host lost its bpffs");
    assert!(!iplock.pin_dir().exists(), "a pin dir was made");
    assert!(xdp_progs(&pair).is_empty(), "XDP attached without bpffs");
}

/// While another command holds the filter's lock, load, reload and unload
/// are refused with one sentence and change nothing, whether a filter is
/// loaded or not.
#[test]
fn commands_while_the_lock_is_held_exit_2_and_change_nothing() {
    if !require_root() || !require_tools(&["bpftool"]) {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let extra = ["--knock", KNOCK];
    let args = iplock.settings(Mode::Skb, &extra);
    let busy = format!("{BUSY} {} right now", iplock.pin_dir().display());

    {
        let _held = HeldLock::take(iplock.pin_dir());
        let out = iplock.run("load", &args);
        assert_exit(&out, 2, "load while the lock is held");
        let line = one_stderr_line(&out);
        assert!(line.contains(&busy), "want {busy:?}, got {line:?}");
        assert!(!iplock.pin_dir().exists(), "load made a pin dir anyway");
        assert!(xdp_progs(&pair).is_empty(), "load attached anyway");
    }

    iplock.load(Mode::Skb, &extra);
    let prog = single_prog(&pair);
    let (link, _) = pinned_link(&iplock, &pair);
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");
    let before = iplock.status_json();
    {
        let _held = HeldLock::take(iplock.pin_dir());
        for (sub, args) in [
            ("load", &args[..]),
            ("reload", &args[..]),
            ("unload", &[][..]),
        ] {
            let out = iplock.run(sub, args);
            assert_exit(&out, 2, &format!("{sub} while the lock is held"));
            let line = one_stderr_line(&out);
            assert!(line.contains(&busy), "{sub}: want {busy:?}, got {line:?}");
            assert_eq!(single_prog(&pair), prog, "{sub} changed the program");
            assert_eq!(
                pinned_link(&iplock, &pair),
                (link, prog),
                "{sub} changed the link"
            );
        }
        let during = iplock.status_json();
        assert_eq!(bans(&during), bans(&before), "bans changed");
        assert_eq!(sources(&during), sources(&before), "sources changed");
    }
    pair.assert_dropped(OTHER_V4, SERVER_V4, 22, "still filtering");
    unload_leaves_nothing(&pair, &iplock, &[link], &[prog]);
}

/// Two loads started at the same moment, on an empty pin dir and on a
/// loaded filter: each exits 0 or 2 (busy), never 1, never both 2, and
/// what is left is one filter: one program on the interface behind one
/// pinned link, and a status that reads.
fn racing_loads_end_with_one_filter(mode: Mode) {
    const ROUNDS: usize = 6;
    if !require_tools(&["bpftool"]) {
        return;
    }
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let args = iplock.settings(mode, &["--knock", KNOCK]);
    let (mut links, mut progs) = (Vec::new(), Vec::new());
    let mut refused = 0;
    for round in 0..ROUNDS {
        if round % 2 == 0 && iplock.pin_dir().exists() {
            unload_leaves_nothing(&pair, &iplock, &links, &progs);
            links.clear();
            progs.clear();
        }
        let barrier = Barrier::new(2);
        let outs: Vec<Output> = thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        iplock.run("load", &args)
                    })
                })
                .collect();
            racers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
        for out in &outs {
            match out.status.code() {
                Some(0) => {}
                Some(2) => {
                    let line = one_stderr_line(out);
                    assert!(line.contains(BUSY), "round {round}: exit 2 with {line:?}");
                    refused += 1;
                }
                _ => panic!(
                    "round {round}: a racing load exited {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        assert!(
            codes.contains(&Some(0)),
            "round {round}: no load won: {codes:?}"
        );

        let on_iface = xdp_progs(&pair);
        assert_eq!(on_iface.len(), 1, "round {round}: programs {on_iface:?}");
        let pins: Vec<_> = std::fs::read_dir(iplock.pin_dir())
            .expect("the pin dir exists")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(LINK_PIN_PREFIX))
            .collect();
        assert_eq!(pins, [link_name(&pair)], "round {round}: link pins");
        let (link, linked) = pinned_link(&iplock, &pair);
        assert_eq!(
            linked, on_iface[0],
            "round {round}: the link runs another program"
        );
        let status = iplock.status_json();
        assert_eq!(status["interfaces"][0]["name"], pair.server_if.as_str());
        assert_eq!(status["interfaces"][0]["present"], true, "{status}");
        links.push(link);
        progs.push(linked);
    }
    eprintln!(
        "{refused} of {} racing loads were refused as busy",
        2 * ROUNDS
    );
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked");
    pair.knock(OTHER_V4, SERVER_V4, KNOCK);
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "192.0.2.3 knocked"));
    unload_leaves_nothing(&pair, &iplock, &links, &progs);
}

fn link_name(pair: &NetnsPair) -> String {
    format!("{LINK_PIN_PREFIX}{}", pair.server_if)
}

/// Ids of the XDP programs on the server veth (one, or with native and
/// generic both attached, two).
fn xdp_progs(pair: &NetnsPair) -> Vec<u64> {
    let v = link_json(&pair.server, &pair.server_if);
    let xdp = &v[0]["xdp"];
    let id = |p: &Value| {
        p["prog"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id: {v}"))
    };
    match xdp["attached"].as_array() {
        Some(attached) => attached.iter().map(id).collect(),
        None if xdp.is_object() => vec![id(xdp)],
        None => Vec::new(),
    }
}

fn single_prog(pair: &NetnsPair) -> u64 {
    match xdp_progs(pair)[..] {
        [id] => id,
        ref other => panic!("want one XDP program on {}, got {other:?}", pair.server_if),
    }
}

/// (link id, program id) of the server veth's pinned XDP link.
fn pinned_link(iplock: &Iplock, pair: &NetnsPair) -> (u64, u64) {
    let pin = iplock.pin_dir().join(link_name(pair));
    let out = run_ok(
        Command::new("bpftool")
            .arg("link")
            .arg("show")
            .arg("pinned")
            .arg(&pin)
            .arg("-j"),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON");
    assert_eq!(
        v["type"],
        "xdp",
        "{} is not an XDP link: {v}",
        pin.display()
    );
    (
        v["id"].as_u64().expect("link id"),
        v["prog_id"].as_u64().expect("link prog_id"),
    )
}

/// Ids of every BPF program loaded in the system.
fn loaded_programs() -> Vec<u64> {
    let out = run_ok(Command::new("bpftool").args(["prog", "show", "-j"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON");
    v.as_array()
        .expect("bpftool lists an array")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect()
}

/// `unload`, then: no pin dir, no XDP on the interface, and none of the
/// filter's links or programs left in the kernel.
fn unload_leaves_nothing(pair: &NetnsPair, iplock: &Iplock, links: &[u64], progs: &[u64]) {
    iplock.unload();
    assert!(
        !iplock.pin_dir().exists(),
        "{} left after unload",
        iplock.pin_dir().display()
    );
    // A `bpftool link show` of a test running beside this one holds the
    // link for a moment, which delays the detach until it closes it.
    wait_for("the interface to run no XDP program", SLOW, || {
        let left = xdp_progs(pair);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("XDP programs {left:?} left after unload"))
        }
    });
    links_and_programs_gone(links, progs);
}

/// bpftool 7.1 shows no ifindex for XDP links, and an ifindex means little
/// across namespaces anyway: the links are known by id, and by the programs
/// they ran. Freeing is deferred in the kernel, hence the wait.
fn links_and_programs_gone(links: &[u64], progs: &[u64]) {
    wait_for("the filter's links and programs to be freed", SLOW, || {
        let out = run_ok(Command::new("bpftool").args(["link", "show", "-j"]));
        let all: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON");
        let left: Vec<&Value> = all
            .as_array()
            .expect("bpftool lists an array")
            .iter()
            .filter(|l| {
                l["id"].as_u64().is_some_and(|id| links.contains(&id))
                    || l["prog_id"].as_u64().is_some_and(|id| progs.contains(&id))
            })
            .collect();
        let loaded: Vec<u64> = loaded_programs()
            .into_iter()
            .filter(|id| progs.contains(id))
            .collect();
        if left.is_empty() && loaded.is_empty() {
            Ok(())
        } else {
            Err(format!("links {left:?}, programs {loaded:?}"))
        }
    });
}

fn is_bpffs(path: &str) -> bool {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == libc::BPF_FS_MAGIC
}

/// Stops the traffic threads however the scope is left, so a panic in the
/// main thread cannot leave the scope waiting for them.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A traffic thread's result; its panic goes on in the caller.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Sends one line and waits up to 5 s for its echo.
fn try_echo(stream: &mut TcpStream, line: &str) -> Result<(), String> {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("send {line:?}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut got = String::new();
    BufReader::new(&*stream)
        .read_line(&mut got)
        .map_err(|e| format!("no echo of {line:?}: {e}"))?;
    if got.trim_end() == line {
        Ok(())
    } else {
        Err(format!("sent {line:?}, got back {got:?}"))
    }
}

/// Echoes numbered lines on `stream` until `stop`; how many, or the first
/// failure.
fn echo_loop(
    stream: &mut TcpStream,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<usize, String> {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        try_echo(stream, &format!("line {n}"))?;
        n += 1;
        sleep(Duration::from_millis(10));
    }
    Ok(n)
}

/// New connections from `src` to port 22, one echo each, until `stop`; how
/// many, or the first failure. The 5 s connect timeout forgives a SYN lost
/// to the veth's own queue (retransmitted after 1 s) but not a door that
/// stays shut.
fn connect_loop(src: IpAddr, stop: &AtomicBool, deadline: Instant) -> Result<usize, String> {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut stream = try_connect(src, SERVER_V4, 22, Duration::from_secs(5))
            .ok_or_else(|| format!("connection #{n} from {src} timed out"))?;
        try_echo(&mut stream, &format!("{src} #{n}"))?;
        n += 1;
        sleep(Duration::from_millis(20));
    }
    Ok(n)
}

/// Floods from `src` until `stop`: SYNs to port 22 from sockets kept open
/// for the last 256 (a SYN that passed would complete its handshake and be
/// accepted by the echo server) and datagrams to every knock port; returns
/// the packets sent.
fn flood(src: IpAddr, stop: &AtomicBool, deadline: Instant) -> u64 {
    let syn_to = SocketAddr::new(SERVER_V4, 22).into();
    let udp = UdpSocket::bind(SocketAddr::new(src, 0)).expect("bind the flood's UDP socket");
    let mut held = VecDeque::new();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        sock.bind(&SocketAddr::new(src, 0).into())
            .expect("bind a flood socket");
        sock.set_nonblocking(true).unwrap();
        match sock.connect(&syn_to) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => sent += 1,
            other => panic!("flood SYN: expected EINPROGRESS, got {other:?}"),
        }
        held.push_back(sock);
        if held.len() > 256 {
            held.pop_front();
        }
        for port in [100, 300, 200] {
            if udp
                .send_to(b"flood", SocketAddr::new(SERVER_V4, port))
                .is_ok()
            {
                sent += 1;
            }
        }
    }
    sent
}
