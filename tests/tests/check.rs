//! `iplock check`: every invalid setting the load and reload tests use gets
//! the very sentence `load` prints, a valid one exits 0 and loads nothing
//! (and needs no root), and `--running` lists what a reload then applies,
//! changing nothing itself.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};
use std::time::Duration;

use iplock_e2e::iplock::binary;
use iplock_e2e::{
    Iplock, KNOCK, Mode, NetnsPair, TempDir, describe, in_netns, one_stderr_line, require_root,
    require_tools, run_bounded,
};

/// Exit status and the one line on stderr.
fn refusal(what: &str, out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", describe(out));
    one_stderr_line(out)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_refuses_with_the_sentence_load_prints() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let iface = pair.server_if.as_str();
    let file = |name: &str, text: String| dir.write(name, &text).to_str().unwrap().to_string();
    let sorted = file(
        "sorted.toml",
        format!("interfaces = [\"{iface}\"]\nknock = \"tcp:1000,tcp:2000,tcp:3000\"\n"),
    );
    let broken = file(
        "broken.toml",
        format!("interfaces = [\"{iface}\"]\nknock = [\n"),
    );
    let unknown = file(
        "unknown.toml",
        format!("interfaces = [\"{iface}\"]\nknock = \"{KNOCK}\"\nopen_windw = \"5s\"\n"),
    );
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    // The cases of lifecycle.rs (load) and ops.rs (reload).
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "unknown interface",
            vec!["--iface", "ipl-nosuchif", "--knock", KNOCK],
        ),
        (
            "ascending",
            vec!["--iface", iface, "--knock", "tcp:100,tcp:200,tcp:300"],
        ),
        (
            "descending",
            vec!["--iface", iface, "--knock", "udp:300,tcp:200,tcp:100"],
        ),
        (
            "protected port",
            vec!["--iface", iface, "--knock", "tcp:100,tcp:22,udp:300"],
        ),
        (
            "repeated port",
            vec!["--iface", iface, "--knock", "tcp:100,udp:300,tcp:100"],
        ),
        (
            "port 0",
            vec!["--iface", iface, "--knock", "tcp:100,udp:0,tcp:200"],
        ),
        (
            "bad CIDR",
            vec![
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
            vec!["--iface", iface, "--knock", KNOCK, "--ban-time", "0s"],
        ),
        (
            "unreadable config",
            vec!["--iface", iface, "--knock", KNOCK, "--config", missing],
        ),
        ("ascending in a file", vec!["--config", &sorted]),
        ("unparsable file", vec!["--config", &broken]),
        ("unknown key", vec!["--config", &unknown]),
        ("missing file", vec!["--config", missing]),
    ];
    for (what, args) in cases {
        let mut args = args.clone();
        args.extend(["--mode", "skb"]);
        let load = refusal(what, &iplock.run("load", &args));
        let check = refusal(what, &iplock.run("check", &args));
        assert_eq!(check, load, "{what}: check and load disagree");
    }
    // The listening-socket check of stealth.rs, in the server's namespace.
    let listener = in_netns(&pair.server, || {
        TcpListener::bind(("0.0.0.0", 100)).unwrap()
    });
    let args = iplock.settings(Mode::Skb, &["--knock", KNOCK]);
    let load = refusal("listening", &iplock.run("load", &args));
    let check = refusal("listening", &iplock.run("check", &args));
    assert_eq!(check, load);
    assert!(check.contains("tcp port 100"), "{check}");
    drop(listener);
    assert!(!iplock.pin_dir().exists(), "nothing was pinned");
    assert!(!pair.server_has_xdp(), "nothing was attached");
}

#[test]
fn check_of_valid_settings_exits_0_loads_nothing_and_needs_no_root() {
    if !require_root() || !require_tools(&["setpriv"]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nknock = \"tcp:1000,udp:3000/20s,tcp:2000\"\nallow = [\"198.51.100.7\"]\n\
         [ban]\ntrap_ports = [23]\n",
        pair.server_if
    ));
    let out = iplock.run("check", &["--config", &config]);
    assert!(out.status.success(), "{}", describe(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.starts_with(&format!(
            "iplock: {config} is valid: interfaces {}",
            pair.server_if
        )) && line.contains("knock tcp:1000,udp:3000/20s,tcp:2000")
            && line.contains("trap ports 23")
            && line.contains("allow entries 1"),
        "{line}"
    );
    assert!(!iplock.pin_dir().exists(), "check pinned nothing");
    assert!(!pair.server_has_xdp(), "check attached nothing");

    // The same as nobody: a config file needs no root to check.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_bounded(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", pair.server))
            .args([
                "--",
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .arg(binary())
            .args(["check", "--config", &config]),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "check as nobody: {}", describe(&out));
    assert_eq!(stdout(&out), line);
}

#[test]
fn check_running_lists_what_a_reload_then_applies() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let iface = pair.server_if.as_str();
    let running = |config: &str| iplock.run("check", &["--config", config, "--running"]);

    // Nothing loaded yet: the sentence reload prints.
    let write = |name: &str, text: String| dir.write(name, &text).to_str().unwrap().to_string();
    let first = write(
        "first.toml",
        format!(
            "interfaces = [\"{iface}\"]\nmode = \"skb\"\nknock = \"{KNOCK}\"\nallow = [\"198.51.100.7\"]\n"
        ),
    );
    let reload = refusal("reload", &iplock.run("reload", &["--config", &first]));
    assert_eq!(refusal("check", &running(&first)), reload);

    iplock.run_ok("load", &["--config", &first]);
    let out = running(&first);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).ends_with("would change nothing\n"),
        "{}",
        describe(&out)
    );

    let second = write(
        "second.toml",
        format!(
            "interfaces = [\"{iface}\", \"lo\"]\nmode = \"skb\"\nprotect = [22, 2222]\n\
         knock = \"tcp:1000,udp:3000,tcp:2000\"\nallow = [\"203.0.113.0/24\"]\nopen_window = \"5s\"\n"
        ),
    );
    let before = iplock.status_json();
    let out = running(&second);
    assert!(out.status.success(), "{}", describe(&out));
    let listed: Vec<String> = stdout(&out).lines().skip(1).map(String::from).collect();
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some(
            format!(
                "iplock: a reload of {} would change:",
                iplock.pin_dir().display()
            )
            .as_str()
        ),
        "{}",
        describe(&out)
    );
    assert_eq!(
        listed[1..],
        [
            "  knock tcp:100/10s,udp:300/10s,tcp:200/10s -> tcp:1000/10s,udp:3000/10s,tcp:2000/10s",
            "  protect [22] -> [22, 2222]",
            "  open_window 10s -> 5s",
            "  allow + 203.0.113.0/24",
            "  allow - 198.51.100.7/32",
            "  interfaces + lo",
        ],
        "{}",
        describe(&out)
    );
    let after = iplock.status_json();
    assert_eq!(
        after["config"], before["config"],
        "check changed the config"
    );
    assert_eq!(
        after["allow"], before["allow"],
        "check changed the allow list"
    );
    assert_eq!(after["interfaces"], before["interfaces"], "check attached");

    // The reload applies exactly that.
    iplock.run_ok("reload", &["--config", &second]);
    let status = iplock.status_json();
    let c = &status["config"];
    assert_eq!(
        c["knock"],
        serde_json::json!(["tcp:1000/10s", "udp:3000/10s", "tcp:2000/10s"]),
        "{status}"
    );
    assert_eq!(c["protect"], serde_json::json!([22, 2222]), "{status}");
    assert_eq!(c["open_window"], "5s", "{status}");
    assert_eq!(status["allow"][0]["cidr"], "203.0.113.0/24", "{status}");
    assert_eq!(status["allow"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(
        status["interfaces"].as_array().unwrap().len(),
        2,
        "{status}"
    );
    let out = running(&second);
    assert!(
        stdout(&out).ends_with("would change nothing\n"),
        "{}",
        describe(&out)
    );

    // And back: the interface goes.
    let out = running(&first);
    let text = stdout(&out);
    assert!(text.contains("\n  interfaces - lo\n"), "{}", describe(&out));
    assert!(
        text.contains("\n  allow + 198.51.100.7/32\n"),
        "{}",
        describe(&out)
    );
}
