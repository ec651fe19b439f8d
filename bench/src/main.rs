//! `cargo xtask bench`: what iplock costs per packet, how fast it drops
//! floods compared with the iptables `recent` rules it replaces, how its
//! state behaves under a knock flood, what its commands cost, and how many
//! spoofed packets evict a ban. Needs
//! root; all traffic stays in network namespaces it creates and removes.
//! BENCHMARKS.md (generated from BENCHMARKS.template.md, with the charts
//! of bench/charts/) explains each figure.

mod chart;
mod control;
mod cost;
mod deadline;
mod ethtool;
mod eviction;
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
    Eviction,
}

#[derive(Parser)]
#[command(
    about = "Benchmarks of iplock against empty XDP programs and the iptables rules it replaces (root)",
    after_help = "Example:\n  cargo xtask bench\n  cargo run --release -p iplock-bench -- --iplock target/release/iplock --only cost\n  cargo run --release -p iplock-bench -- --iplock target/release/iplock --only eviction --record"
)]
struct Cli {
    /// The iplock binary whose load, unload and status are timed.
    #[arg(long, value_name = "PATH")]
    iplock: PathBuf,
    /// Run only these parts and print them; results.json, BENCHMARKS.md
    /// and its charts are written only by a full run.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// With `--only eviction`: also write that part into bench/results.json
    /// and re-generate its section of BENCHMARKS.md, leaving the rest of
    /// both files as the last full run wrote them.
    #[arg(long, requires = "only")]
    record: bool,
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
    ensure!(
        !cli.record || cli.only == [Part::Eviction],
        "--record only records `--only eviction`: the other parts' sections depend on each other"
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
            "\n[1/5] cost per packet (BPF_PROG_TEST_RUN, {} runs x {} packets)",
            cost::RUNS,
            cost::REPEAT
        );
        let c = std::thread::scope(|s| s.spawn(|| cost::run(cpu)).join())
            .map_err(|_| anyhow::anyhow!("the cost thread panicked"))??;
        println!("{}", report::cost_table(&c));
        println!("{}", report::reference_work_table(&c));
        println!("{}", report::reference_table(&c));
        Some(c)
    } else {
        None
    };
    // Only the veth parts use the generator.
    let mut generator = if wants(Part::Throughput) || wants(Part::Pressure) {
        Some(generator::Generator::load()?)
    } else {
        None
    };
    let throughput = if wants(Part::Throughput) {
        println!(
            "\n[2/5] throughput on a veth pair ({} runs per flow and receiver)",
            throughput::RUNS
        );
        let t = throughput::run(generator.as_mut().context("no generator")?, cpu)?;
        println!("{}", report::throughput_table(&t));
        Some(t)
    } else {
        None
    };
    let pressure = if wants(Part::Pressure) {
        println!(
            "\n[3/5] state under a knock flood (source map of {} entries)",
            pressure::MAX_SOURCES
        );
        let p = pressure::run(generator.as_mut().context("no generator")?, cpu)?;
        println!("{}", report::pressure_table(&p));
        Some(p)
    } else {
        None
    };
    let control = if wants(Part::Control) {
        println!("\n[4/5] control plane ({})", cli.iplock.display());
        let c = control::run(&cli.iplock)?;
        println!("{}", report::control_table(&c));
        Some(c)
    } else {
        None
    };
    let eviction = if wants(Part::Eviction) {
        println!(
            "\n[5/5] ban eviction (BPF_PROG_TEST_RUN, ban maps of {} / {} entries, {} trials)",
            eviction::BANS,
            eviction::KNOCK_BANS,
            eviction::TRIALS
        );
        let described = machine.describe();
        let e = std::thread::scope(|s| s.spawn(|| eviction::run(cpu, &described)).join())
            .map_err(|_| anyhow::anyhow!("the eviction thread panicked"))??;
        println!("{}", report::eviction_table(&e));
        Some(e)
    } else {
        None
    };
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let json = bench_dir.join("results.json");
    let md = bench_dir
        .parent()
        .context("bench has no parent")?
        .join("BENCHMARKS.md");
    if cli.record {
        let e = eviction.as_ref().context("the eviction part did not run")?;
        record(&json, &md, e)?;
        println!("bench took {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }

    let results = report::Results::new(
        machine,
        load_before,
        machine::loadavg(),
        started.elapsed().as_secs_f64(),
        cost,
        throughput,
        pressure,
        control,
        eviction,
    );
    println!("\n{}", report::targets_table(&results.targets));
    if let Some(complete) = results.complete() {
        std::fs::write(&json, serde_json::to_string_pretty(&complete)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(&md, report::markdown(complete))
            .with_context(|| format!("writing {}", md.display()))?;
        let charts = bench_dir.join("charts");
        chart::write(
            &charts,
            complete.cost.as_ref().context("complete results")?,
            complete.throughput.as_deref().context("complete results")?,
        )?;
        println!(
            "wrote {}, {} and the charts in {}",
            json.display(),
            md.display(),
            charts.display()
        );
    } else {
        println!("(partial run: results.json, BENCHMARKS.md and its charts left as they are)");
    }
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `--record`: the eviction part into the last full run's results.json
/// (its `eviction` key) and BENCHMARKS.md (its section 5), the rest of both
/// left as they are.
fn record(json: &std::path::Path, md: &std::path::Path, e: &eviction::Eviction) -> Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    // Where a full run puts it: after `control`, before `targets`.
    let new = report::with_json_key(&text, "eviction", e, "targets")
        .with_context(|| format!("editing {}", json.display()))?;
    std::fs::write(json, new).with_context(|| format!("writing {}", json.display()))?;
    let old = std::fs::read_to_string(md).with_context(|| format!("reading {}", md.display()))?;
    let new = report::with_eviction_section(&old, e).with_context(|| {
        format!(
            "{} or the template has no place for section 5 (no `## Caveats`)",
            md.display()
        )
    })?;
    std::fs::write(md, new).with_context(|| format!("writing {}", md.display()))?;
    println!(
        "recorded the eviction part in {} and {}",
        json.display(),
        md.display()
    );
    Ok(())
}
