//! `cargo xtask bench`: setup, then the benchmarks of bench/ (iplock-bench),
//! which write bench/results.json, BENCHMARKS.md and its charts. Needs root.
use std::{path::Path, process::Command};

use anyhow::{Result, ensure};

use crate::{cmd, setup};

pub fn run(root: &Path, bench_args: &[String]) -> Result<()> {
    ensure!(
        crate::is_root(),
        "cargo xtask bench must run as root: it loads XDP programs, creates network namespaces \
         and loads iptables rules"
    );
    setup::run(root)?;
    // The control-plane part times the iplock binary itself.
    let cargo = |args: &[&str]| {
        let mut c = Command::new("cargo");
        c.current_dir(root).args(args);
        c
    };
    let mut build = cargo(&["build", "--release", "-p", "iplock"]);
    println!("\n==> {}", cmd::describe(&build));
    cmd::run(&mut build)?;
    let iplock = crate::target_dir(root).join("release").join("iplock");
    let mut bench = cargo(&["run", "--release", "-p", "iplock-bench", "--", "--iplock"]);
    bench.arg(&iplock).args(bench_args);
    println!("\n==> {}", cmd::describe(&bench));
    cmd::run(&mut bench)
}
