//! `iplock secret`: the shared secret of rotating knocks.

use clap::{Args, Subcommand};

use crate::config::secret;
use crate::error::Result;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock secret new > /etc/iplock/secret   # the file is made readable by its owner only\n  scp -p /etc/iplock/secret laptop:.config/iplock/secret"
)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
}

#[derive(Subcommand, Debug)]
pub enum SecretAction {
    /// Print a new 32-byte secret as hex (a file it is redirected to gets mode 600).
    #[command(after_help = "Example:\n  iplock secret new > /etc/iplock/secret")]
    New,
}

pub fn run(args: &SecretArgs) -> Result<()> {
    match args.action {
        SecretAction::New => secret::write_new(),
    }
}
