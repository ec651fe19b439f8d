//! `iplock status`: interfaces, configuration, counters, sources, bans, allow list.

use clap::Args;

use crate::cli::{PinDirArg, print_json};
use crate::error::Result;
use crate::kernel::status;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  iplock status\n  iplock status --json | jq '.sources'")]
pub struct StatusArgs {
    /// Print JSON (keys: interfaces, config, counters, sources, bans, allow).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pin: PinDirArg,
}

pub fn run(args: &StatusArgs) -> Result<()> {
    let st = status::read(&args.pin.dir()?)?;
    if args.json {
        print_json(&st)?;
    } else {
        print!("{}", st.render());
    }
    Ok(())
}
