//! `iplock ban`: the ban list of a running filter.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Subcommand};
use iplock_common::addr::{self, AddrKey};
use iplock_common::state::{BAN_MANUAL, BanEntry};

use crate::cli::{PinDirArg, print_json};
use crate::config::duration;
use crate::error::{Context as _, Result, input, quote};
use crate::kernel::maps::Maps;
use crate::system::clock::now_ns;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock ban add 192.0.2.66 --for 1d\n  iplock ban del 192.0.2.66\n  iplock ban list\n  iplock ban flush"
)]
pub struct BanArgs {
    #[command(subcommand)]
    pub action: BanAction,
    #[command(flatten)]
    pub pin: PinDirArg,
}

#[derive(Subcommand, Debug)]
pub enum BanAction {
    /// Drop everything from an address (an IPv6 address bans its configured prefix).
    #[command(
        after_help = "Example:\n  iplock ban add 192.0.2.66 --for 1d\n  iplock ban add 2001:db8:66::1"
    )]
    Add {
        addr: String,
        /// How long; the filter's ban time without it.
        #[arg(long = "for", value_name = "D")]
        duration: Option<String>,
    },
    /// Lift the ban covering an address.
    #[command(after_help = "Example:\n  iplock ban del 192.0.2.66")]
    Del { addr: String },
    /// Show the bans in force.
    #[command(after_help = "Example:\n  iplock ban list --json")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift every ban.
    #[command(after_help = "Example:\n  iplock ban flush")]
    Flush,
}

fn parse_addr(s: &str) -> Result<IpAddr> {
    s.trim()
        .parse()
        .or_else(|_| input(format!("{} is not an IPv4 or IPv6 address", quote(s))))
}

pub fn run(args: &BanArgs) -> Result<()> {
    let dir = args.pin.dir()?;
    let mut maps = Maps::open(&dir)?;
    let cfg = maps.config()?;
    let key_of = |ip: IpAddr| -> AddrKey { addr::ban_key(&addr::from_ip(ip), cfg.ban_prefix_v6) };
    match &args.action {
        BanAction::Add {
            addr: a,
            duration: d,
        } => {
            let ip = parse_addr(a)?;
            let length = match d {
                Some(d) => duration::parse(d, "the ban duration")?,
                None => Duration::from_nanos(cfg.ban_time_ns),
            };
            let key = key_of(ip);
            let entry = BanEntry {
                until_ns: now_ns() + length.as_nanos() as u64,
                reason: BAN_MANUAL,
                _pad: 0,
            };
            maps.bans
                .insert(key, entry, 0)
                .context(|| format!("banning {ip}"))?;
            println!(
                "iplock: {} banned for {}",
                addr::to_ip(&key),
                duration::format(length)
            );
        }
        BanAction::Del { addr: a } => {
            let ip = parse_addr(a)?;
            let key = key_of(ip);
            let mut lifted = false;
            for bans in maps.ban_maps_mut() {
                if bans.get(&key, 0).is_ok() {
                    bans.remove(&key)
                        .context(|| format!("lifting the ban of {ip}"))?;
                    lifted = true;
                }
            }
            if !lifted {
                let decided = crate::kernel::decisions::Decisions::open(&dir)
                    .ok()
                    .and_then(|d| {
                        d.map
                            .get(&aya::maps::lpm_trie::Key::new(128, addr::from_ip(ip)), 0)
                            .ok()
                    })
                    .filter(|e| e.until_ns > now_ns());
                if let Some(e) = decided {
                    return input(format!(
                        "{ip} is dropped by a CrowdSec decision (origin {}), which iplock does not lift; delete it on the Local API (cscli decisions delete --ip {ip})",
                        iplock_common::state::origin_name(e.origin)
                    ));
                }
                return input(format!("{ip} is not banned"));
            }
            println!("iplock: ban of {} lifted", addr::to_ip(&key));
        }
        BanAction::List { json } => {
            let now = now_ns();
            let mut bans = crate::kernel::status::ban_list(&maps, now)?;
            // CrowdSec's decisions, after iplock's own bans.
            bans.extend(crate::kernel::status::decision_bans(&dir, now)?);
            if *json {
                print_json(&bans)?;
            } else {
                for b in bans {
                    println!("{b}");
                }
            }
        }
        BanAction::Flush => {
            let mut lifted = 0;
            for bans in maps.ban_maps_mut() {
                let keys = bans
                    .keys()
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .context(|| "reading the ban map".into())?;
                for k in &keys {
                    bans.remove(k).context(|| "lifting a ban".into())?;
                }
                lifted += keys.len();
            }
            println!("iplock: lifted {lifted} ban(s)");
        }
    }
    Ok(())
}
