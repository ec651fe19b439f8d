//! `iplock secret`: the shared secret of rotating knocks.

use clap::{Args, Subcommand};

use crate::config::duration;
use crate::config::knock;
use crate::config::rotate::{self, Params};
use crate::config::secret;
use crate::config::settings::DEFAULT_PROTECT;
use crate::error::Result;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock secret new --period 30s --steps 3 --exclude 22,23,3389 > /etc/iplock/secret\n  scp -p /etc/iplock/secret laptop:.config/iplock/secret"
)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub action: SecretAction,
}

#[derive(Subcommand, Debug)]
pub enum SecretAction {
    /// Print a new secret file: a 32-byte secret and the rotation it is for
    /// (a file it is redirected to gets mode 600).
    #[command(
        after_help = "Example:\n  iplock secret new --period 30s --steps 3 > /etc/iplock/secret\n  iplock secret new --period 1m --steps 4 --udp --exclude 22,2222 > secret\n\nThe parameters must match the server's `rotate` settings, and --exclude its\nprotected and trap ports: the server refuses a file that records others.\nClients then knock with `iplock knock HOST --secret-file FILE` alone."
    )]
    New(NewArgs),
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The rotation period, whole seconds.
    #[arg(long, value_name = "D", default_value = "30s")]
    pub period: String,
    /// Knocks in a sequence, 1 to 8.
    #[arg(long, value_name = "N", default_value_t = rotate::DEFAULT_STEPS)]
    pub steps: usize,
    /// Steps may be udp as well as tcp.
    #[arg(long)]
    pub udp: bool,
    /// The server's protected and trap ports, which the sequence never uses
    /// (repeat, or separate with commas) [default: 22].
    #[arg(long = "exclude", value_name = "PORT", value_delimiter = ',', value_parser = parse_port_arg)]
    pub exclude: Vec<u16>,
}

fn parse_port_arg(s: &str) -> std::result::Result<u16, String> {
    knock::parse_port(s, "port").map_err(|e| e.to_string())
}

pub fn run(args: &SecretArgs) -> Result<()> {
    match &args.action {
        SecretAction::New(a) => {
            let exclude = if a.exclude.is_empty() {
                DEFAULT_PROTECT.to_vec()
            } else {
                a.exclude.clone()
            };
            let period = duration::parse(&a.period, "--period")?;
            secret::write_new(&Params::new(period, a.steps, a.udp, &exclude, "--")?)
        }
    }
}
