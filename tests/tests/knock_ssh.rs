//! The real thing: Debian's `knock` client opens the door and OpenSSH logs
//! in to an sshd in the server namespace.

use std::net::TcpStream;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use iplock_e2e::knockers::debian_knock;
use iplock_e2e::{
    ChildGuard, Iplock, KNOCK, Mode, NetnsPair, OTHER_V4, SERVER_V4, TempDir, both_modes, in_netns,
    require_tools, run_bounded,
};

both_modes!(knock_client_opens_door_for_openssh);

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &std::path::Path) {
    let out = run_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Starts sshd on 192.0.2.1:22 in the server namespace and waits until it
/// accepts (probed over the server's loopback path, which XDP does not see).
fn start_sshd(pair: &NetnsPair, dir: &TempDir) -> ChildGuard {
    let host_key = dir.path().join("host_key");
    let client_key = dir.path().join("client_key");
    keygen(&host_key);
    keygen(&client_key);
    std::fs::copy(
        client_key.with_extension("pub"),
        dir.path().join("authorized_keys"),
    )
    .unwrap();
    let config = dir.write(
        "sshd_config",
        &format!(
            "Port 22\nListenAddress {SERVER_V4}\nHostKey {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\n",
            host_key.display(),
            dir.path().join("authorized_keys").display()
        ),
    );
    // Privilege separation needs this directory; a container may lack it.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
    let mut sshd = ChildGuard::spawn(
        Command::new("ip")
            .args(["netns", "exec", &pair.server, SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stderr(log),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_netns(&pair.server, || TcpStream::connect((SERVER_V4, 22)).is_ok()) {
        let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
        assert!(sshd.is_running(), "sshd exited: {log}");
        assert!(Instant::now() < deadline, "sshd not listening: {log}");
        sleep(Duration::from_millis(50));
    }
    sshd
}

/// `ssh root@192.0.2.1 echo ok` from the client namespace, optionally bound
/// to `bind`; returns whether it printed ok.
fn ssh(pair: &NetnsPair, dir: &TempDir, bind: Option<&str>) -> bool {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.client, "ssh", "-i"])
        .arg(dir.path().join("client_key"))
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "LogLevel=ERROR",
        ]);
    if let Some(addr) = bind {
        cmd.args(["-b", addr]);
    }
    cmd.args([&format!("root@{SERVER_V4}"), "echo", "ok"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(20));
    let ok = out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok";
    if !ok {
        eprintln!(
            "ssh ({}) failed: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ok
}

fn knock_client_opens_door_for_openssh(mode: Mode) {
    if !require_tools(&["knock", "ssh", "ssh-keygen", SSHD]) {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let _sshd = start_sshd(&pair, &dir);
    let iplock = Iplock::new(&pair);
    iplock.load(mode, &["--knock", KNOCK]);

    let other = OTHER_V4.to_string();
    assert!(
        !ssh(&pair, &dir, Some(&other)),
        "ssh from 192.0.2.3 got in without knocking"
    );
    let out = debian_knock(&pair, SERVER_V4, KNOCK);
    assert!(out.status.success(), "knock: {out:?}");
    // The knock client and ssh both use the primary address 192.0.2.2.
    let log = || std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
    assert!(
        ssh(&pair, &dir, None),
        "ssh after knocking failed; sshd log: {}",
        log()
    );
}
