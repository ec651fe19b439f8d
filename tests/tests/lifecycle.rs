//! Load and unload: what `load` leaves in bpffs and on the interface, that
//! `unload` removes all of it, that bad input leaves nothing behind, and
//! that a config file drives `load` with flags taking precedence. Filters in
//! separate pin dirs are independent, so commands on them may run at once.

use iplock_common::names::{LINK_PIN_PREFIX, PINNED_MAPS};
use iplock_e2e::{
    CLIENT_V4, EchoServer, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, TempDir,
    assert_exit, both_modes, one_stderr_line,
};

both_modes!(
    unload_leaves_no_pin_and_no_program,
    bad_input_exits_2_and_leaves_nothing,
    config_file_drives_load_and_flags_override_it,
    concurrent_commands_on_separate_pin_dirs_all_succeed,
);

fn unload_leaves_no_pin_and_no_program(mode: Mode) {
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);

    let pins = iplock.pin_dir();
    for map in PINNED_MAPS {
        assert!(
            pins.join(map).exists(),
            "{map} not pinned in {}",
            pins.display()
        );
    }
    let link = pins.join(format!("{LINK_PIN_PREFIX}{}", pair.server_if));
    assert!(link.exists(), "{} not pinned", link.display());
    let details = pair.server_link_details();
    assert!(details.contains("prog/xdp"), "no XDP program: {details}");
    // `ip` names a generic attachment xdpgeneric, a native one plain xdp.
    assert_eq!(
        details.contains("xdpgeneric"),
        mode == Mode::Skb,
        "not attached in {} mode: {details}",
        mode.arg()
    );
    pair.assert_dropped(CLIENT_V4, SERVER_V4, 22, "the filter is loaded");

    iplock.unload();
    assert!(!pins.exists(), "{} left after unload", pins.display());
    let details = pair.server_link_details();
    assert!(!details.contains("xdp"), "XDP left after unload: {details}");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the filter is gone"));
}

fn bad_input_exits_2_and_leaves_nothing(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let iface = pair.server_if.as_str();
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let cases: [(&str, &[&str]); 9] = [
        (
            "unknown interface",
            &["--iface", "ipl-nosuchif", "--knock", KNOCK],
        ),
        (
            "ascending sequence",
            &["--iface", iface, "--knock", "tcp:100,tcp:200,tcp:300"],
        ),
        (
            "descending sequence",
            &["--iface", iface, "--knock", "udp:300,tcp:200,tcp:100"],
        ),
        (
            "protected port in sequence",
            &["--iface", iface, "--knock", "tcp:100,tcp:22,udp:300"],
        ),
        (
            "repeated port",
            &["--iface", iface, "--knock", "tcp:100,udp:300,tcp:100"],
        ),
        (
            "port 0",
            &["--iface", iface, "--knock", "tcp:100,udp:0,tcp:200"],
        ),
        (
            "bad CIDR",
            &[
                "--iface",
                iface,
                "--knock",
                KNOCK,
                "--allow",
                "192.0.2.0/33",
            ],
        ),
        (
            "zero duration",
            &["--iface", iface, "--knock", KNOCK, "--ban-time", "0s"],
        ),
        (
            "unreadable config",
            &["--iface", iface, "--knock", KNOCK, "--config", missing],
        ),
    ];
    for (what, args) in cases {
        let mut args = args.to_vec();
        args.extend(["--mode", mode.arg()]);
        let out = iplock.run("load", &args);
        assert_exit(
            &out,
            2,
            &format!("{what}: `iplock load {}`", args.join(" ")),
        );
        one_stderr_line(&out);
        assert!(!iplock.pin_dir().exists(), "{what}: pin dir left behind");
        assert!(!pair.server_has_xdp(), "{what}: XDP left on {iface}");
    }
}

fn config_file_drives_load_and_flags_override_it(mode: Mode) {
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nmode = \"{}\"\nknock = \"tcp:1000,udp:3000,tcp:2000\"\n\
         open_window = \"5s\"\n[ban]\ntime = \"5m\"\n",
        pair.server_if,
        mode.arg()
    ));
    let config = config.as_str();
    let load = |args: &[&str]| iplock.run_ok("load", args);

    load(&["--config", config]);
    let status = iplock.status_json();
    assert_eq!(status["interfaces"][0]["name"], pair.server_if.as_str());
    assert_eq!(status["interfaces"][0]["mode"], mode.arg());
    pair.knock(CLIENT_V4, SERVER_V4, "tcp:1000,udp:3000,tcp:2000");
    drop(pair.connect(CLIENT_V4, SERVER_V4, 22, "the sequence from the file"));
    iplock.unload();

    // Had the file's sequence won, these knocks would be wrong knocks and ban.
    load(&["--config", config, "--knock", KNOCK]);
    pair.knock(OTHER_V4, SERVER_V4, KNOCK);
    drop(pair.connect(OTHER_V4, SERVER_V4, 22, "the sequence from --knock"));
}

/// Several filters, each in its own namespace and pin dir, loaded and
/// unloaded at the same moment: none may fail because another is busy.
fn concurrent_commands_on_separate_pin_dirs_all_succeed(mode: Mode) {
    let pairs: Vec<NetnsPair> = (0..3).map(|_| NetnsPair::new()).collect();
    let filters: Vec<Iplock> = pairs.iter().map(Iplock::new).collect();
    for round in 0..3 {
        for sub in ["load", "unload"] {
            let barrier = std::sync::Barrier::new(filters.len());
            let outputs: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = filters
                    .iter()
                    .map(|iplock| {
                        let barrier = &barrier;
                        scope.spawn(move || {
                            let args = match sub {
                                "load" => iplock.settings(mode, &["--knock", KNOCK]),
                                _ => Vec::new(),
                            };
                            barrier.wait();
                            iplock.run(sub, &args)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for out in outputs {
                assert!(
                    out.status.success(),
                    "round {round}: concurrent `iplock {sub}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
