//! `iplock run`: load and stay in the foreground (systemd `Type=simple`),
//! logging events, sweeping expired entries and reloading on SIGHUP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::PinDirArg;
use crate::cli::reload::report;
use crate::config::rotate;
use crate::config::settings::{Settings, SettingsArgs};
use crate::daemon::event_log::EventLog;
use crate::daemon::metrics;
use crate::error::{Context as _, Result};
use crate::kernel::events::Events;
use crate::kernel::filter;
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::{Owner, PinDir};
use crate::kernel::sweep::sweep;
use crate::system::clock::boot_ns;

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
    let settings = Settings::from_args(&args.settings)?;
    let metrics_addr = args
        .metrics
        .as_deref()
        .map(metrics::parse_addr)
        .transpose()?;
    let sweep_every = crate::config::duration::parse(&args.sweep_every, "the sweep interval")?;
    let dir = args.pin.dir()?;
    // Held until the process ends, crash or not: see pin_dir.rs.
    let _owner = dir.own(Owner::Daemon)?;

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone())
            .context(|| "installing signal handlers".into())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context(|| "installing signal handlers".into())?;

    // A filter left running by `run --keep` is adopted, state and all.
    match filter::load(&settings, &dir)? {
        filter::Loaded::New(attached) => {
            for a in attached {
                if let Some(why) = &a.fallback {
                    log::warn!(
                        "native XDP is not available on {} ({why}); attached in skb mode",
                        a.iface
                    );
                }
                log::info!(
                    "attached to {} in {} mode",
                    a.iface,
                    if a.native { "native" } else { "skb" }
                );
            }
        }
        filter::Loaded::Replaced(r) => {
            report(&r);
            log::info!("adopted the filter pinned at {}", dir.path().display());
        }
    }
    let result = serve(args, settings, &dir, metrics_addr, sweep_every, &term, &hup);
    if args.keep {
        log::info!("leaving the filter running at {}", dir.path().display());
    } else {
        let _lock = dir.lock()?;
        dir.remove_all()?;
        log::info!("detached and removed {}", dir.path().display());
    }
    result
}

fn serve(
    args: &RunArgs,
    mut settings: Settings,
    dir: &PinDir,
    metrics_addr: Option<std::net::SocketAddr>,
    sweep_every: Duration,
    term: &Arc<AtomicBool>,
    hup: &Arc<AtomicBool>,
) -> Result<()> {
    let metrics = match metrics_addr {
        Some(addr) => {
            let h = metrics::spawn(addr, dir.clone())?;
            log::info!("serving metrics on http://{addr}/metrics");
            Some(h)
        }
        None => None,
    };
    let mut events = Events::open(dir)?;
    let mut missing = Vec::new();
    let mut listening = Default::default();
    let mut period = current_period(&settings);
    let mut last_sweep = Instant::now();
    let mut event_log = EventLog::default();
    log::info!("running; SIGHUP reloads the settings, SIGTERM stops");
    crate::kernel::log::forward(dir);
    while !term.load(Ordering::Relaxed) {
        for e in events.wait(500) {
            event_log.log(&e, Instant::now());
        }
        event_log.flush(Instant::now());
        if hup.swap(false, Ordering::Relaxed) {
            let reloaded = Settings::from_args(&args.settings)
                .and_then(|s| filter::reload(&s, dir).map(|r| (s, r)));
            match reloaded {
                Ok((s, r)) => {
                    settings = s;
                    log::info!(
                        "reloaded: {} interface(s) kept, {} added, {} removed, knock progress reset for {} source(s)",
                        r.kept.len(),
                        r.added.len(),
                        r.removed.len(),
                        r.progress_reset
                    );
                }
                Err(e) => log::error!("reload failed, the previous settings stay in force: {e}"),
            }
        }
        if current_period(&settings) != period && rotate_sequence(args, &mut settings, dir) {
            period = current_period(&settings);
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = Instant::now();
            watch_interfaces(&settings, dir, &mut missing);
            crate::config::listening::warn_settings(&settings, &mut listening);
            let swept = Maps::open(dir).and_then(|mut m| sweep(&mut m, boot_ns()));
            match swept {
                Ok(s) if s != Default::default() => log::debug!("swept {s:?}"),
                Ok(_) => {}
                Err(e) => log::error!("sweeping failed: {e}"),
            }
        }
    }
    event_log.finish();
    if let Some(server) = metrics {
        server.stop();
    }
    Ok(())
}

/// Says when an interface disappears, and attaches again when an
/// interface of the same name comes back (a deleted and re-created veth, a
/// driver reload); its state in the maps is untouched meanwhile.
fn watch_interfaces(settings: &Settings, dir: &PinDir, missing: &mut Vec<String>) {
    let (gone, back) = match filter::interface_changes(dir) {
        Ok(c) => c,
        Err(e) => return log::error!("checking the interfaces failed: {e}"),
    };
    for name in &gone {
        if !missing.contains(name) {
            log::warn!("interface {name} is gone; iplock attaches again when it comes back");
        }
    }
    *missing = gone;
    if !back.is_empty() {
        match filter::reload(settings, dir) {
            Ok(_) => log::info!("interface {} is back; attached again", back.join(", ")),
            Err(e) => log::error!("attaching again to {} failed: {e}", back.join(", ")),
        }
    }
}

/// The rotation period the clock is in, if knocks rotate.
fn current_period(settings: &Settings) -> Option<u64> {
    let r = settings.rotate.as_ref()?;
    Some(r.filter_period(rotate::unix_now()))
}

/// Writes the new period's sequence (and the one before it) into the
/// filter. The settings are read again first, so a new secret file takes
/// effect at the next period at the latest; if they no longer validate,
/// the running ones go on rotating. Returns false where another command
/// holds the filter's lock: the next pass of the loop tries again.
fn rotate_sequence(args: &RunArgs, settings: &mut Settings, dir: &PinDir) -> bool {
    let _lock = match dir.lock() {
        Ok(lock) => lock,
        Err(e) => {
            log::debug!("rotation waits: {e}");
            return false;
        }
    };
    match Settings::from_args(&args.settings) {
        Ok(fresh) if fresh.rotate.is_some() => *settings = fresh,
        Ok(_) => {}
        Err(e) => {
            log::error!("re-reading the settings failed, rotating with the running ones: {e}")
        }
    }
    let written = Maps::open(dir).and_then(|mut m| {
        crate::kernel::slots::switch(&mut m, &settings.to_kernel(), &settings.allow)
    });
    match written {
        Ok(()) => log::debug!("knock sequence rotated"),
        Err(e) => log::error!("rotating the knock sequence failed: {e}"),
    }
    true
}
