//! `iplock unload`: detach everywhere and remove every pin.

use clap::Args;

use crate::cli::PinDirArg;
use crate::error::Result;
use crate::kernel::pin_dir::Owner;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock unload\n  iplock unload --pin-dir /sys/fs/bpf/iplock-lab"
)]
pub struct UnloadArgs {
    #[command(flatten)]
    pub pin: PinDirArg,
}

pub fn run(args: &UnloadArgs) -> Result<()> {
    let dir = args.pin.dir()?;
    let _owner = dir.own(Owner::Command)?;
    let _lock = dir.lock()?;
    dir.require_loaded()?;
    let ifaces = dir.linked_interfaces()?;
    dir.remove_all()?;
    println!(
        "iplock: detached from {} and removed {}",
        if ifaces.is_empty() {
            "no interface".to_string()
        } else {
            ifaces.join(", ")
        },
        dir.path().display()
    );
    Ok(())
}
