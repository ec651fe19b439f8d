//! `iplock calc`: how hard a knock sequence of N steps is to guess.

use std::collections::BTreeSet;

use clap::Args;
use iplock_common::names::MAX_STEPS;

use crate::client::calc;
use crate::config::duration;
use crate::config::knock;
use crate::error::{Result, input};

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock calc --steps 4 --protect 22 --protect 443 --udp\n  iplock calc --steps 3 --ban-time 1d"
)]
pub struct CalcArgs {
    /// Number of knock steps, 1 to 8.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub steps: u32,
    /// Protected TCP port, which no knock may use (repeat for several) [default: 22].
    #[arg(long, value_name = "PORT", value_parser = parse_port_arg)]
    pub protect: Vec<u16>,
    /// Let each step be tcp or udp.
    #[arg(long)]
    pub udp: bool,
    /// How long a ban lasts, i.e. how long each wrong try costs [default: 1h].
    #[arg(long, value_name = "D")]
    pub ban_time: Option<String>,
}

fn parse_port_arg(s: &str) -> std::result::Result<u16, String> {
    knock::parse_port(s, "protected port").map_err(|e| e.to_string())
}

pub fn run(args: &CalcArgs) -> Result<()> {
    if !(1..=MAX_STEPS as u32).contains(&args.steps) {
        return input(format!(
            "--steps {} is out of range; a knock sequence has 1 to {MAX_STEPS} steps",
            args.steps
        ));
    }
    let ban = duration::parse(args.ban_time.as_deref().unwrap_or("1h"), "the ban time")?;
    let protect: BTreeSet<u16> = if args.protect.is_empty() {
        crate::config::settings::DEFAULT_PROTECT.into()
    } else {
        args.protect.iter().copied().collect()
    };
    let ports = calc::PORTS - protect.len() as u32;
    let count = calc::sequences(ports, args.steps, args.udp);
    let protected = protect
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "steps          {} ({})",
        args.steps,
        if args.udp {
            "each tcp or udp"
        } else {
            "tcp only"
        }
    );
    println!("usable ports   {ports} (1-65535 without protected {protected})");
    println!("sequences      {count}");
    println!("search space   {:.2} bits", calc::log2(&count));
    println!(
        "expected time  {}",
        calc::describe_ms(&calc::expected_ms(&count, ban))
    );
    println!(
        "               (half the space at one try per {} ban, from one source;",
        duration::format(ban)
    );
    println!("               N sources divide it by N)");
    // The figure assumes the attacker learns nothing but whether a whole
    // guess opened the door; each of these settings keeps it so.
    println!("holds while    knock ports answer like unused ports (knock_answer matches the");
    println!("               host's firewall), wrong_knock = false (its bans name knock ports),");
    println!("               closed_door = true (each guess costs a ban), and nobody sees the");
    println!("               sequence on the wire (it travels in clear; see rotating knocks)");
    Ok(())
}
