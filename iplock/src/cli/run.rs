//! `iplock run`: load and stay in the foreground (systemd `Type=simple`),
//! logging events, sweeping expired entries and reloading on SIGHUP; the
//! daemon itself is in [`crate::daemon`].

use clap::Args;

use crate::cli::PinDirArg;
use crate::config::duration;
use crate::config::settings::SettingsArgs;
use crate::daemon::{self, metrics};
use crate::error::Result;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock run --config /etc/iplock/iplock.toml --metrics 127.0.0.1:9477\n  RUST_LOG=debug iplock run --iface eth0 --knock tcp:7113,udp:40022,tcp:3391 --keep"
)]
pub struct RunArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub pin: PinDirArg,
    /// On SIGTERM leave the pinned filter running instead of detaching it.
    #[arg(long)]
    pub keep: bool,
    /// Serve Prometheus metrics on ADDR:PORT (a bare port listens on loopback).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// How often expired entries are swept from the maps.
    #[arg(long, value_name = "D", default_value = "5s")]
    pub sweep_every: String,
    /// Log level, in place of RUST_LOG; debug also has the XDP program say
    /// why it dropped a frame as malformed or lost an event.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<crate::cli::LogLevel>,
}

pub fn run(args: &RunArgs) -> Result<()> {
    let metrics = args
        .metrics
        .as_deref()
        .map(metrics::parse_addr)
        .transpose()?;
    let sweep_every = duration::parse(&args.sweep_every, "the sweep interval")?;
    daemon::run(daemon::Options {
        settings: args.settings.clone(),
        dir: args.pin.dir()?,
        keep: args.keep,
        metrics,
        sweep_every,
    })
}
