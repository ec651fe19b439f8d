//! The sweep task: expired entries out of the maps every tick, the count of
//! what is live for the metrics, and the listening-socket warning.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::config::listening;
use crate::config::settings::Settings;
use crate::daemon::{Stop, stopped};
use crate::kernel::decisions::Decisions;
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::sweep::{Live, sweep};
use crate::system::clock::now_ns;

/// Sweeps every `every` until `stop`, publishing the counts to `live`.
/// The walk of the maps runs on the blocking pool: with a few hundred
/// thousand entries it takes long enough to delay events.
pub async fn run(
    dir: PinDir,
    every: Duration,
    settings: watch::Receiver<Settings>,
    live: watch::Sender<Live>,
    mut stop: Stop,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is at once, and the daemon swept as it started.
    ticks.tick().await;
    let mut warned = BTreeSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = ticks.tick() => {}
        }
        let settings = settings.borrow().clone();
        let dir = dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            listening::warn_settings(&settings, &mut warned);
            (sweep_once(&dir), warned)
        })
        .await;
        match done {
            Ok((count, w)) => {
                warned = w;
                if let Some(count) = count {
                    live.send_replace(count);
                }
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// One sweep now, off the runtime's thread; the counts, zero if it failed.
pub async fn once(dir: PinDir) -> Live {
    let done = tokio::task::spawn_blocking(move || sweep_once(&dir)).await;
    match done {
        Ok(count) => count.unwrap_or_default(),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// One sweep, logged; the counts of what is live, None if it failed.
fn sweep_once(dir: &PinDir) -> Option<Live> {
    let now = now_ns();
    match Maps::open(dir).and_then(|mut m| sweep(&mut m, now)) {
        Ok((swept, mut live)) => {
            if swept != Default::default() {
                log::debug!("swept {swept:?}");
            }
            match Decisions::open(dir).and_then(|mut d| d.sweep(now)) {
                Ok((n, by_origin)) => {
                    if n > 0 {
                        log::debug!("swept {n} CrowdSec decision(s) that ended");
                    }
                    live.decisions = by_origin;
                }
                Err(e) => log::error!("sweeping the CrowdSec decisions failed: {e}"),
            }
            Some(live)
        }
        Err(e) => {
            log::error!("sweeping failed: {e}");
            None
        }
    }
}
