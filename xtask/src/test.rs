//! `cargo xtask test`: everything CI checks, in order, stopping at the first failure.
use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, ensure};

use crate::{cmd, deb, setup};

pub fn run(root: &Path, cargo_test_args: &[String]) -> Result<()> {
    ensure!(
        crate::is_root(),
        "cargo xtask test must run as root: the kernel and end-to-end tests load XDP programs \
         and create network namespaces, and would fail rather than skip"
    );
    setup::run(root)?;
    let iplock_bin = crate::target_dir(root).join("debug").join("iplock");

    let cargo = |args: &[&str]| {
        let mut c = Command::new("cargo");
        c.current_dir(root).args(args);
        c
    };
    let steps: [(&str, Command); 4] = [
        (
            "the format check failed (reformat with `cargo fmt --all`)",
            cargo(&["fmt", "--all", "--", "--check"]),
        ),
        (
            "clippy found problems in the host crates",
            cargo(&[
                "clippy",
                "--workspace",
                "--exclude",
                "iplock-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        (
            "clippy found problems in the eBPF crate",
            cargo(&[
                "+nightly",
                "clippy",
                "-p",
                "iplock-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        (
            "the iplock binary does not build",
            cargo(&["build", "-p", "iplock"]),
        ),
    ];
    for (what_failed, mut step) in steps {
        println!("\n==> {}", cmd::describe(&step));
        cmd::run(&mut step).with_context(|| format!("cargo xtask test: {what_failed}"))?;
    }
    // A release build, paid once here rather than in the test that installs it.
    println!("\n==> cargo xtask deb");
    let deb = deb::run(root).context("cargo xtask test: the Debian package does not build")?;
    // `--workspace` would include iplock-ebpf, which only builds for bpfel-unknown-none.
    let mut test = cargo(&["test", "--workspace", "--exclude", "iplock-ebpf"]);
    test.env("IPLOCK_REQUIRE_PRIVILEGED", "1")
        .env("IPLOCK_BIN", &iplock_bin)
        .env("IPLOCK_DEB", &deb)
        .args(cargo_test_args);
    println!("\n==> {}", cmd::describe(&test));
    cmd::run(&mut test).context("cargo xtask test: tests failed")?;
    println!("\ncargo xtask test: all checks passed");
    Ok(())
}
