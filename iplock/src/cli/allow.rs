//! `iplock allow`: the allow list of a running filter.

use clap::{Args, Subcommand};
use iplock_common::names::MAX_ALLOW;
use iplock_common::state::AllowEntry;

use crate::cli::{PinDirArg, print_json};
use crate::config::cidr::Cidr;
use crate::config::duration;
use crate::error::{Context as _, Result, input};
use crate::kernel::maps::Maps;
use crate::system::clock::now_ns;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock allow add 198.51.100.7 --for 8h\n  iplock allow del 198.51.100.7\n  iplock allow list --json"
)]
pub struct AllowArgs {
    #[command(subcommand)]
    pub action: AllowAction,
    #[command(flatten)]
    pub pin: PinDirArg,
}

#[derive(Subcommand, Debug)]
pub enum AllowAction {
    /// Let an address or CIDR block pass without knocking, now.
    #[command(
        after_help = "Example:\n  iplock allow add 198.51.100.7 --for 8h\n  iplock allow add 2001:db8:42::/48"
    )]
    Add {
        cidr: String,
        /// Stop matching after this long (e.g. 8h); permanent without it.
        #[arg(long = "for", value_name = "D")]
        duration: Option<String>,
    },
    /// Remove an entry from the allow list.
    #[command(after_help = "Example:\n  iplock allow del 198.51.100.7")]
    Del { cidr: String },
    /// Show the allow list.
    #[command(after_help = "Example:\n  iplock allow list --json")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &AllowArgs) -> Result<()> {
    let dir = args.pin.dir()?;
    let mut maps = Maps::open(&dir)?;
    // A change of the two slots' lists must not interleave with a reload
    // or rotation rewriting one of them.
    let _lock = match args.action {
        AllowAction::List { .. } => None,
        _ => Some(dir.lock()?),
    };
    match &args.action {
        AllowAction::Add { cidr, duration: d } => {
            let cidr = Cidr::parse(cidr)?;
            let until_ns = match d {
                Some(d) => {
                    let d = duration::parse(d, "the allow duration")?;
                    now_ns() + d.as_nanos() as u64
                }
                None => 0,
            };
            let key = cidr.key();
            let active = maps.active_allow()?;
            if active.get(&key, 0).is_err() && active.keys().count() >= MAX_ALLOW as usize {
                return input(format!(
                    "the allow list already holds the {MAX_ALLOW} entries it can; remove some with `iplock allow del` first"
                ));
            }
            // Both slots' lists, so the entry outlives the next reload's switch.
            for allow in &mut maps.allow {
                allow
                    .insert(&key, AllowEntry::at_runtime(until_ns), 0)
                    .context(|| format!("adding {cidr} to the allow list"))?;
            }
            match d {
                Some(d) => println!("iplock: {cidr} allowed for {d}"),
                None => println!("iplock: {cidr} allowed"),
            }
        }
        AllowAction::Del { cidr } => {
            let cidr = Cidr::parse(cidr)?;
            let key = cidr.key();
            if maps.active_allow()?.get(&key, 0).is_err() {
                return input(format!("{cidr} is not in the allow list"));
            }
            for allow in &mut maps.allow {
                if allow.get(&key, 0).is_ok() {
                    allow
                        .remove(&key)
                        .context(|| format!("removing {cidr} from the allow list"))?;
                }
            }
            println!("iplock: {cidr} removed from the allow list");
        }
        AllowAction::List { json } => {
            let entries = crate::kernel::status::allow_list(&maps, now_ns())?;
            if *json {
                print_json(&entries)?;
            } else {
                for a in entries {
                    println!("{a}");
                }
            }
        }
    }
    Ok(())
}
