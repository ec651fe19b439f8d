//! `iplock reload`: apply changed settings to the running filter.

use clap::Args;

use crate::cli::PinDirArg;
use crate::config::settings::{Settings, SettingsArgs};
use crate::error::Result;
use crate::kernel::filter;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock reload --config /etc/iplock/iplock.toml\n  iplock reload --iface eth0 --knock tcp:7113,udp:40022,tcp:3391"
)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub pin: PinDirArg,
}

pub fn run(args: &ReloadArgs) -> Result<()> {
    let settings = Settings::from_args(&args.settings)?;
    let r = filter::reload(&settings, &args.pin.dir()?)?;
    report(&r);
    Ok(())
}

/// Says what a reload changed, one line each.
pub fn report(r: &filter::Reloaded) {
    for a in &r.added {
        println!(
            "iplock: attached to {} in {} mode",
            a.iface,
            if a.native { "native" } else { "skb" }
        );
    }
    for name in &r.removed {
        println!("iplock: detached from {name}");
    }
    if r.progress_reset > 0 {
        println!(
            "iplock: the knock sequence changed; knock progress was reset for {} source(s)",
            r.progress_reset
        );
    }
    println!(
        "iplock: reloaded; {} interface(s) kept their state",
        r.kept.len()
    );
}
