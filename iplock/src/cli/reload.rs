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
    for line in r.report() {
        println!("iplock: {line}");
    }
    Ok(())
}
