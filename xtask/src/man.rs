//! `cargo xtask man`: man pages and shell completions generated from
//! iplock's clap definitions, written to target/man.
use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use crate::cmd;

pub fn run(root: &Path) -> Result<()> {
    // The definitions live in the iplock binary, so it is built (which
    // needs the eBPF toolchain that `cargo xtask setup` installs).
    cmd::run(
        Command::new("cargo")
            .current_dir(root)
            .args(["build", "-p", "iplock"]),
    )
    .context("building iplock failed; `cargo xtask setup` installs what it needs")?;
    let target = crate::target_dir(root);
    let out = target.join("man");
    // Pages of subcommands that no longer exist must not linger.
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("removing the old {}", out.display()))?;
    }
    cmd::run(
        Command::new(target.join("debug").join("iplock"))
            .arg("generate-docs")
            .arg("--out")
            .arg(&out),
    )?;
    println!(
        "read one with `man -l {}`; install the pages under /usr/local/share/man/man8 and the \
         completions where your shell looks for them (iplock.bash, _iplock for zsh, iplock.fish)",
        out.join("iplock.8").display()
    );
    Ok(())
}
