//! `iplock check`: validates settings exactly as `load`, `reload` and
//! `run` do, touching no kernel state; with `--running`, also says what a
//! reload would change in the running filter.
//!
//! It needs root only where a setting does: a secret file readable by root
//! alone (as a server's should be), and `--running`, which reads the
//! pinned maps.

use clap::Args;

use crate::cli::PinDirArg;
use crate::config::duration;
use crate::config::settings::{Settings, SettingsArgs};
use crate::error::Result;
use crate::kernel::changes;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock check --config /etc/iplock/iplock.toml\n  iplock check --config /etc/iplock/iplock.toml --running && iplock reload --config /etc/iplock/iplock.toml\n\nExit status 0 and one line when the settings are valid; 2 and the sentence\n`iplock load` would print when not."
)]
pub struct CheckArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Also say what `iplock reload` would change in the running filter
    /// (reads its pinned maps; needs root).
    #[arg(long)]
    pub running: bool,
    #[command(flatten)]
    pub pin: PinDirArg,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let settings = Settings::from_args(&args.settings)?;
    let what = match &args.settings.config {
        Some(path) => format!("{} is", path.display()),
        None => "the settings are".into(),
    };
    println!("iplock: {what} valid: {}", summary(&settings));
    if !args.running {
        return Ok(());
    }
    let dir = args.pin.dir()?;
    let c = changes::of_reload(&settings, &dir)?;
    if c.is_empty() {
        println!(
            "iplock: a reload of {} would change nothing",
            dir.path().display()
        );
        return Ok(());
    }
    println!("iplock: a reload of {} would change:", dir.path().display());
    for s in &c.settings {
        println!("  {} {} -> {}", s.key, s.before, s.after);
    }
    for (key, sign, list) in [
        ("allow", '+', &c.allow_added),
        ("allow", '-', &c.allow_removed),
        ("interfaces", '+', &c.interfaces_added),
        ("interfaces", '-', &c.interfaces_removed),
    ] {
        for item in list {
            println!("  {key} {sign} {item}");
        }
    }
    Ok(())
}

/// The settings in one line: what attaches where and what opens the door.
fn summary(s: &Settings) -> String {
    let knock = match &s.rotate {
        None => s
            .knock
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Some(r) => format!(
            "rotating every {} in {} steps{} (for `iplock run`)",
            duration::format(r.period),
            r.steps,
            if r.udp { " of tcp or udp" } else { "" }
        ),
    };
    let list = |v: &[u16]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "interfaces {}, knock {knock}, protect {}, trap ports {}, allow entries {}",
        s.interfaces.join(","),
        list(&s.protect),
        if s.ban.trap_ports.is_empty() {
            "none".into()
        } else {
            list(&s.ban.trap_ports)
        },
        s.allow.len()
    )
}
