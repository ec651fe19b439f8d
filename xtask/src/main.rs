//! Development tasks for iplock: `cargo xtask setup|test|demo|man|deb|bench`.
mod bench;
mod cleanup;
mod cmd;
mod deb;
mod demo;
mod man;
mod netns;
mod setup;
mod test;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "iplock development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing needs: toolchain components, bpf-linker, Debian packages, bpffs (idempotent)
    Setup,
    /// Setup, then format check, clippy (host and eBPF), build and every test tier; needs root
    Test {
        /// Arguments passed on to `cargo test`, e.g. a test name filter
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Setup, then show a knock opening the door in a namespace pair it creates and removes; needs root
    Demo,
    /// Build iplock and write its man pages and shell completions to target/man
    Man,
    /// Build the Debian package target/debian/iplock_VERSION_ARCH.deb (a release build)
    Deb,
    /// Setup, then the benchmarks: bench/results.json, BENCHMARKS.md and its charts; needs root, about 5 minutes
    Bench {
        /// Arguments passed on to iplock-bench, e.g. `--only cost`
        #[arg(last = true)]
        bench_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let root = repo_root();
    let result = match Cli::parse().task {
        Task::Setup => setup::run(&root),
        Task::Test { cargo_test_args } => test::run(&root, &cargo_test_args),
        Task::Demo => demo::run(&root),
        Task::Man => man::run(&root),
        Task::Deb => deb::run(&root).map(drop),
        Task::Bench { bench_args } => bench::run(&root, &bench_args),
    };
    // Printed by hand: anyhow's Debug output would add a backtrace whenever
    // RUST_BACKTRACE is set, which says nothing about a failed command.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Where cargo puts build output for this workspace.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
