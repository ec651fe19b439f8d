//! Runs the `iplock` binary in the server namespace with a private pin dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::netns::NetnsPair;
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
        let bin = binary();
        assert!(
            bin.is_file(),
            "{} does not exist: build it with `cargo build -p iplock` or set IPLOCK_BIN",
            bin.display()
        );
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

    /// `iplock <sub> --pin-dir <ours> <args>` in the server namespace. Only
    /// the network namespace is switched (nsenter, not `ip netns exec`, which
    /// would give iplock a private /sys without bpffs).
    pub fn run(&self, sub: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(&self.bin)
            .arg(sub)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .args(args);
        run_bounded(&mut cmd, Duration::from_secs(30))
    }

    /// Loads the filter on the server veth in `mode` with extra `args`;
    /// panics with iplock's output unless it exits 0.
    pub fn load(&self, mode: Mode, args: &[&str]) {
        let mut all = vec!["--iface", &self.iface, "--mode", mode.arg()];
        all.extend_from_slice(args);
        let out = self.run("load", &all);
        assert_success("load", &all, &out);
    }

    /// `iplock status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run("status", &["--json"]);
        assert_success("status", &["--json"], &out);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn unload(&self) {
        let out = self.run("unload", &[]);
        assert_success("unload", &[], &out);
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

fn assert_success(sub: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "iplock {sub} {} failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `$IPLOCK_BIN`, else the workspace's debug build.
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("IPLOCK_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("debug").join("iplock")
}
