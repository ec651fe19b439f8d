//! `iplock load`: validate, attach, pin, exit; the filter keeps running.

use std::net::IpAddr;

use clap::Args;

use crate::cli::PinDirArg;
use crate::config::settings::{Settings, SettingsArgs};
use crate::error::{Result, input};
use crate::kernel::filter;
use crate::kernel::pin_dir::Owner;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock load --iface eth0 --knock tcp:100,udp:300,tcp:200 --allow 198.51.100.7\n  iplock load --config /etc/iplock/iplock.toml"
)]
pub struct LoadArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub pin: PinDirArg,
}

pub fn run(args: &LoadArgs) -> Result<()> {
    let settings = Settings::from_args(&args.settings)?;
    if settings.rotate.is_some() {
        return input(
            "rotating knocks change every period, which needs a process to change them: use `iplock run` for this configuration",
        );
    }
    if settings.crowdsec.is_some() {
        return input(
            "CrowdSec needs iplock run, which pulls its decisions and pushes the filter's bans: use `iplock run` for a configuration with [crowdsec]",
        );
    }
    if settings.spa.is_some() {
        return input(
            "SPA needs `iplock run`, which verifies the packets the filter hands it: use `iplock run` for a configuration with [spa]",
        );
    }
    let dir = args.pin.dir()?;
    let _owner = dir.own(Owner::Command)?;
    let attached = match filter::load(&settings, &dir)? {
        filter::Loaded::New(attached) => attached,
        filter::Loaded::Replaced(r) => {
            println!(
                "iplock: a filter was already loaded at {}; this build's program replaced it in place, keeping its state",
                dir.path().display()
            );
            for line in r.report() {
                println!("iplock: {line}");
            }
            warn_own_session(&settings);
            return Ok(());
        }
    };
    for a in &attached {
        if let Some(why) = &a.fallback {
            eprintln!(
                "iplock: native XDP is not available on {} ({why}); attached in skb mode",
                a.iface
            );
        }
        println!(
            "iplock: attached to {} in {} mode",
            a.iface,
            if a.native { "native" } else { "skb" }
        );
    }
    println!(
        "iplock: filter pinned at {}; knock sequence {}",
        dir.path().display(),
        settings
            .knock
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    warn_own_session(&settings);
    Ok(())
}

/// An administrator loading the filter over SSH from an address outside
/// the allow list keeps the session (established traffic passes) but would
/// be refused, and banned, on the next connection without knocking.
fn warn_own_session(settings: &Settings) {
    let Some(conn) = std::env::var("SSH_CONNECTION").ok() else {
        return;
    };
    let mut parts = conn.split_whitespace();
    let (Some(Ok(client)), Some(_), Some(_), Some(Ok(port))) = (
        parts.next().map(str::parse::<IpAddr>),
        parts.next(),
        parts.next(),
        parts.next().map(str::parse::<u16>),
    ) else {
        return;
    };
    if settings.protect.contains(&port) && !settings.allow.iter().any(|c| c.contains(client)) {
        eprintln!(
            "iplock: warning: your SSH session comes from {client}, which is not in the allow list; it stays up, but new connections from it must knock first{}",
            if settings.ban.closed_door {
                " or they are banned"
            } else {
                ""
            }
        );
    }
}
