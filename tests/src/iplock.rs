//! Runs the `iplock` binary in the server namespace with a private pin dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::netns::NetnsPair;
use crate::output::describe;
use crate::util::{run_bounded, unique_id};

/// XDP attach mode, passed as `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Native,
    Skb,
}

impl Mode {
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Skb => "skb",
        }
    }
}

/// The `iplock` command bound to one namespace pair and one pin directory.
/// On drop it unloads and removes the pin directory, whatever the test did.
pub struct Iplock {
    bin: PathBuf,
    netns: String,
    iface: String,
    pin_dir: PathBuf,
}

impl Iplock {
    pub fn new(pair: &NetnsPair) -> Iplock {
        Iplock::with_binary(pair, binary())
    }

    /// [`Iplock::new`] running `bin` (an installed iplock, say).
    pub fn with_binary(pair: &NetnsPair, bin: PathBuf) -> Iplock {
        Iplock {
            bin,
            netns: pair.server.clone(),
            iface: pair.server_if.clone(),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/iplock-test-{}", unique_id())),
        }
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// `iplock <sub> --pin-dir <ours> <args>` in the server namespace, not
    /// yet started. Only the network namespace is switched (nsenter, not
    /// `ip netns exec`, which would give iplock a private /sys without
    /// bpffs); nsenter execs iplock without forking, so the child's pid is
    /// iplock's own and a signal to it reaches iplock.
    pub fn command(&self, sub: &str, args: &[&str]) -> Command {
        self.command_at(&self.pin_dir, sub, args)
    }

    /// [`Iplock::command`] with the pin dir spelled `pin_dir` (relative to
    /// the command's working directory, if relative).
    pub fn command_at(&self, pin_dir: &Path, sub: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(&self.bin)
            .arg(sub)
            .arg("--pin-dir")
            .arg(pin_dir)
            .args(args);
        cmd
    }

    /// [`Iplock::command`] run to completion.
    pub fn run(&self, sub: &str, args: &[&str]) -> Output {
        run_bounded(&mut self.command(sub, args), Duration::from_secs(30))
    }

    /// [`Iplock::run`] that panics with iplock's output unless it exits 0;
    /// returns stdout.
    pub fn run_ok(&self, sub: &str, args: &[&str]) -> String {
        let out = self.run(sub, args);
        assert!(
            out.status.success(),
            "iplock {sub} {} failed: {}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Iplock::run_ok`] of a subcommand that prints JSON, parsed.
    pub fn json(&self, sub: &str, args: &[&str]) -> serde_json::Value {
        let stdout = self.run_ok(sub, args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "iplock {sub} {} printed no JSON ({e}): {stdout}",
                args.join(" ")
            )
        })
    }

    /// `--iface <server veth> --mode <mode>` and `extra`: the settings that
    /// load, reload and run take alike.
    pub fn settings<'a>(&'a self, mode: Mode, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--iface", self.iface.as_str(), "--mode", mode.arg()];
        args.extend_from_slice(extra);
        args
    }

    /// Loads the filter on the server veth in `mode` with extra `args`;
    /// panics with iplock's output unless it exits 0.
    pub fn load(&self, mode: Mode, args: &[&str]) {
        self.run_ok("load", &self.settings(mode, args));
    }

    /// `iplock status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        self.json("status", &["--json"])
    }

    pub fn unload(&self) {
        self.run_ok("unload", &[]);
    }
}

impl Drop for Iplock {
    fn drop(&mut self) {
        if self.pin_dir.exists() {
            let _ = self.run("unload", &[]);
            // Whatever unload left: maps pinned here would outlive the test.
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
    }
}

/// `$IPLOCK_BIN`, else the workspace's debug build; panics when it is not
/// there, since every test needs it and a missing build explains them all.
pub fn binary() -> PathBuf {
    let bin = match std::env::var_os("IPLOCK_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ is inside the workspace");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(|dir| workspace.join(dir))
                .unwrap_or_else(|| workspace.join("target"));
            target.join("debug").join("iplock")
        }
    };
    assert!(
        bin.is_file(),
        "{} does not exist: build it with `cargo build -p iplock` or set IPLOCK_BIN",
        bin.display()
    );
    bin
}
