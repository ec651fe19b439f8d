//! `cargo xtask bench`: what iplock costs per packet, how fast it drops
//! floods compared with the iptables `recent` rules it replaces, how its
//! state behaves under a knock flood, and what its commands cost. Needs
//! root; all traffic stays in network namespaces it creates and removes.
//! BENCHMARKS.md (generated from BENCHMARKS.template.md) explains each figure.

mod control;
mod cost;
mod deadline;
mod ethtool;
mod filter;
mod frames;
mod generator;
mod iptables;
mod machine;
mod netns;
mod objects;
mod pressure;
mod procnet;
mod report;
mod stats;
mod throughput;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use clap::{Parser, ValueEnum};

/// `enum xdp_action` values the bench checks programs' verdicts against.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Cost,
    Throughput,
    Pressure,
    Control,
}

#[derive(Parser)]
#[command(
    about = "Benchmarks of iplock against empty XDP programs and the iptables rules it replaces (root)",
    after_help = "Example:\n  cargo xtask bench\n  cargo run --release -p iplock-bench -- --iplock target/release/iplock --only cost"
)]
struct Cli {
    /// The iplock binary whose load, unload and status are timed.
    #[arg(long, value_name = "PATH")]
    iplock: PathBuf,
    /// Run only these parts and print them; results.json and BENCHMARKS.md
    /// are written only by a full run.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the bench must run as root: it loads XDP programs, creates network namespaces and loads iptables rules"
    );
    ensure!(
        cli.iplock.is_file(),
        "{} is not the iplock binary; build it with `cargo build --release -p iplock`",
        cli.iplock.display()
    );
    let wants = |p| cli.only.is_empty() || cli.only.contains(&p);
    let started = Instant::now();
    deadline::start();
    netns::remove_stale()?;
    filter::remove_stale_pins()?;
    let machine = machine::Machine::detect();
    let load_before = machine::loadavg();
    println!("iplock bench on {}", machine.describe());
    println!("load average at start: {load_before}");
    // The generator and the program runs share one CPU, away from CPU 0
    // where most of the system's interrupts land.
    let cpu = (machine.cores > 1).then_some(machine.cores - 1);

    let cost = if wants(Part::Cost) {
        println!(
            "\n[1/4] cost per packet (BPF_PROG_TEST_RUN, {} runs x {} packets)",
            cost::RUNS,
            cost::REPEAT
        );
        let c = std::thread::scope(|s| s.spawn(|| cost::run(cpu)).join())
            .map_err(|_| anyhow::anyhow!("the cost thread panicked"))??;
        println!("{}", report::cost_table(&c));
        println!("{}", report::reference_table(&c));
        Some(c)
    } else {
        None
    };
    let mut generator = generator::Generator::load()?;
    let throughput = if wants(Part::Throughput) {
        println!(
            "\n[2/4] throughput on a veth pair ({} runs per flow and receiver)",
            throughput::RUNS
        );
        let t = throughput::run(&mut generator, cpu)?;
        println!("{}", report::throughput_table(&t));
        Some(t)
    } else {
        None
    };
    let pressure = if wants(Part::Pressure) {
        println!(
            "\n[3/4] state under a knock flood (source map of {} entries)",
            pressure::MAX_SOURCES
        );
        let p = pressure::run(&mut generator, cpu)?;
        println!("{}", report::pressure_table(&p));
        Some(p)
    } else {
        None
    };
    let control = if wants(Part::Control) {
        println!("\n[4/4] control plane ({})", cli.iplock.display());
        let c = control::run(&cli.iplock)?;
        println!("{}", report::control_table(&c));
        Some(c)
    } else {
        None
    };

    let results = report::Results::new(
        machine,
        load_before,
        machine::loadavg(),
        started.elapsed().as_secs_f64(),
        cost,
        throughput,
        pressure,
        control,
    );
    println!("\n{}", report::targets_table(&results.targets));
    if let Some(complete) = results.complete() {
        let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let json = bench_dir.join("results.json");
        std::fs::write(&json, serde_json::to_string_pretty(&complete)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        let md = bench_dir
            .parent()
            .context("bench has no parent")?
            .join("BENCHMARKS.md");
        std::fs::write(&md, report::markdown(complete))
            .with_context(|| format!("writing {}", md.display()))?;
        println!("wrote {} and {}", json.display(), md.display());
    } else {
        println!("(partial run: results.json and BENCHMARKS.md left as they are)");
    }
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
