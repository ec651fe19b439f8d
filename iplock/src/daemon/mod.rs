//! `iplock run`: the long-running filter owner. One current-thread tokio
//! runtime runs a task per concern: the event log ([`events`]), the
//! metrics endpoint ([`metrics`]), the sweep ([`sweep`]), CrowdSec's
//! bouncer and watcher ([`crowdsec`], with `[crowdsec]`), the SPA
//! verifier ([`spa`]) and the control
//! task here, which owns the settings and makes every change to the
//! filter: reload on SIGHUP ([`signals`]), rotation at the period boundary
//! ([`rotation`]), attaching again when an interface comes back
//! ([`links`]). Those changes take the filter's change lock and read the
//! settings a reload replaces, so they run one after another in one task;
//! the blocking work of each runs on tokio's blocking pool, so that events
//! and scrapes are served meanwhile.

pub mod crowdsec;
pub mod event_log;
pub mod events;
pub mod links;
pub mod log_limit;
pub mod metrics;
pub mod rotation;
pub mod signals;
pub mod spa;
pub mod sweep;
pub mod xdp_log;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use crate::config::settings::{Settings, SettingsArgs};
use crate::crowdsec::schedule::DEFAULT_MAX_BACKOFF;
use crate::crowdsec::{Bouncer, Feed, Watcher};
use crate::error::{Context as _, Result};
use crate::kernel::events::Events;
use crate::kernel::filter;
use crate::kernel::pin_dir::{Owner, PinDir};
use links::Links;
use signals::{Signal, Signals};

/// What `iplock run` was asked to do.
pub struct Options {
    /// Read again on SIGHUP and before each rotation.
    pub settings: SettingsArgs,
    pub dir: PinDir,
    /// Leave the filter pinned when stopping.
    pub keep: bool,
    pub metrics: Option<SocketAddr>,
    pub sweep_every: Duration,
}

/// Tells the tasks to stop: they see `true`.
pub type Stop = watch::Receiver<bool>;

/// Waits until `stop` says so (or its sender is gone, which also means stop).
/// Registers a ring buffer with the runtime, which then wakes its task
/// when records wait.
pub fn watch_ring<T: std::os::fd::AsRawFd>(
    ring: T,
) -> std::result::Result<tokio::io::unix::AsyncFd<T>, tokio::io::unix::AsyncFdRegisterError<T>> {
    // SAFETY: the descriptor is the ring's own, which `ring` owns and closes
    // only when it is dropped, and the AsyncFd owns `ring`.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
}

pub async fn stopped(stop: &mut Stop) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Loads (or adopts) the filter and serves it until SIGTERM or SIGINT;
/// then detaches it unless `keep`.
pub fn run(options: Options) -> Result<()> {
    let settings = Settings::from_args(&options.settings)?;
    let dir = options.dir.clone();
    // Held until the process ends, crash or not: see pin_dir.rs.
    let _owner = dir.own(Owner::Daemon)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context(|| "starting the daemon's runtime".into())?;
    let inputs = runtime.block_on(start(&options, &settings))?;
    let result = runtime.block_on(serve(settings, inputs, &options));
    // A sweep still walking the maps on the blocking pool is not waited
    // for: its descriptors keep the maps alive until it ends, and the
    // process ends first.
    runtime.shutdown_background();
    if options.keep {
        log::info!("leaving the filter running at {}", dir.path().display());
    } else {
        let _lock = dir.lock()?;
        dir.remove_all()?;
        log::info!("detached and removed {}", dir.path().display());
    }
    result
}

/// What the daemon listens on: signals, link notifications (None when
/// they are not to be had) and the metrics listener.
type Inputs = (Signals, Option<Links>, Option<tokio::net::TcpListener>);

/// Everything that can fail before the filter is loaded, then the load:
/// the signal handlers and link notifications first, so a SIGTERM or a
/// vanished interface during the load is not missed, and the metrics
/// listener, so a taken port changes nothing.
async fn start(options: &Options, settings: &Settings) -> Result<Inputs> {
    let signals = Signals::new()?;
    let links = match Links::open() {
        Ok(l) => Some(l),
        Err(e) => {
            log::error!(
                "listening for link changes failed ({e}); interfaces that come back are attached again on the sweep tick"
            );
            None
        }
    };
    let listener = match options.metrics {
        Some(addr) => Some(metrics::bind(addr)?),
        None => None,
    };
    // A filter left running by `run --keep` is adopted, state and all.
    match filter::load(settings, &options.dir)? {
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
            for line in r.report() {
                log::info!("{line}");
            }
            log::info!(
                "adopted the filter pinned at {}",
                options.dir.path().display()
            );
        }
    }
    Ok((signals, links, listener))
}

/// Runs the tasks until a stop signal, then stops them all.
async fn serve(
    settings: Settings,
    (signals, links, listener): Inputs,
    options: &Options,
) -> Result<()> {
    let dir = &options.dir;
    let events = Events::open(dir)?;
    let spa_ring = crate::kernel::spa::SpaRing::open(dir)?;
    let (stop_tx, stop) = watch::channel(false);
    // The first count before anything serves, so the metrics never show
    // an adopted filter as empty.
    let live = sweep::once(dir.clone()).await;
    let (live_tx, live_rx) = watch::channel(live);
    let (settings_tx, settings_rx) = watch::channel(settings.clone());

    let metrics =
        listener.map(|l| tokio::spawn(metrics::serve(l, dir.clone(), live_rx, stop.clone())));
    let (bans_tx, bans_rx) = tokio::sync::mpsc::channel(crowdsec::CHANNEL);
    let mut crowdsec_tasks = Vec::new();
    let cs = settings.crowdsec.as_ref();
    if cs.is_some_and(|c| c.api_key.is_some()) || cs.is_some_and(|c| c.machine.is_some()) {
        let stats = crowdsec::new_stats();
        let cs = cs.expect("checked");
        if cs.api_key.is_some() {
            // Retries back off to six pulls' time, at most a minute.
            let max_backoff = (cs.update_frequency * 6).min(DEFAULT_MAX_BACKOFF);
            let feed =
                Feed::with_max_backoff(Bouncer::new(cs)?, max_backoff, std::time::Instant::now());
            crowdsec_tasks.push(tokio::spawn(crowdsec::bouncer(
                dir.clone(),
                feed,
                stats.clone(),
                stop.clone(),
            )));
            log::info!(
                "pulling CrowdSec decisions from {} every {}",
                cs.lapi_url,
                crate::config::duration::format(cs.update_frequency)
            );
        } else {
            crowdsec::clear(dir.clone()).await;
        }
        if cs.machine.is_some() {
            crowdsec_tasks.push(tokio::spawn(crowdsec::watcher(
                dir.clone(),
                Watcher::new(cs)?,
                bans_rx,
                settings_rx.clone(),
                stats,
                stop.clone(),
            )));
            log::info!("pushing this filter's bans to CrowdSec at {}", cs.lapi_url);
        }
    } else {
        crowdsec::clear(dir.clone()).await;
    }
    let bans = settings
        .crowdsec
        .as_ref()
        .is_some_and(|c| c.machine.is_some())
        .then_some(bans_tx);
    let events = tokio::spawn(events::run(events, bans, stop.clone()));
    let xdp_log = tokio::spawn(xdp_log::run(dir.clone(), stop.clone()));
    let spa = tokio::spawn(spa::run(
        spa_ring,
        dir.clone(),
        settings_tx.subscribe(),
        stop.clone(),
    ));
    let sweeper = tokio::spawn(sweep::run(
        dir.clone(),
        options.sweep_every,
        settings_rx,
        live_tx,
        stop.clone(),
    ));
    let mut control = Control {
        args: options.settings.clone(),
        settings,
        dir: dir.clone(),
        missing: Vec::new(),
        pending: false,
        published: settings_tx,
    };
    log::info!("running; SIGHUP reloads the settings, SIGTERM stops");
    control.run(signals, links, options.sweep_every).await;

    let _ = stop_tx.send(true);
    sweeper.abort();
    if let Some(m) = metrics {
        let _ = m.await;
    }
    let _ = events.await;
    let _ = xdp_log.await;
    for t in crowdsec_tasks {
        let _ = t.await;
    }
    let _ = spa.await;
    Ok(())
}

/// The settings in force and the work that changes the filter.
#[derive(Clone)]
struct Control {
    args: SettingsArgs,
    settings: Settings,
    dir: PinDir,
    /// Interfaces of the filter found gone, so each is reported once.
    missing: Vec<String>,
    /// An interface came back and attaching to it failed: try again on
    /// the next tick.
    pending: bool,
    /// The settings for the sweep's listening-socket warning.
    published: watch::Sender<Settings>,
}

impl Control {
    async fn run(&mut self, mut signals: Signals, mut links: Option<Links>, tick: Duration) {
        let mut period = rotation::current(&self.settings);
        let mut rotate_at = rotation::next_switch(&self.settings);
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A stop comes before whatever else is due.
                biased;
                signal = signals.next() => match signal {
                    Signal::Stop => break,
                    Signal::Reload => {
                        self.off_thread(Control::reload).await;
                        period = rotation::current(&self.settings);
                        rotate_at = rotation::next_switch(&self.settings);
                    }
                },
                () = sleep_until(rotate_at.unwrap_or_else(Instant::now)), if rotate_at.is_some() => {
                    (period, rotate_at) = self.rotate(period).await;
                }
                change = next_change(&mut links), if links.is_some() => match change {
                    Some(name) => {
                        if name.as_ref().is_none_or(|n| self.settings.interfaces.contains(n)) {
                            self.off_thread(Control::watch_interfaces).await;
                        }
                    }
                    None => {
                        log::error!("the link notifications ended; interfaces that come back are attached again on the sweep tick");
                        links = None;
                    }
                },
                _ = ticks.tick() => {
                    // The wall clock may be stepped (NTP, an operator),
                    // which the rotation timer, on the monotonic clock,
                    // does not see.
                    if rotation::current(&self.settings) != period {
                        (period, rotate_at) = self.rotate(period).await;
                    }
                    if links.is_none() || self.pending {
                        self.off_thread(Control::watch_interfaces).await;
                    }
                }
            }
        }
    }

    /// Runs `work` on the blocking pool with a copy of the state, and
    /// keeps the state it leaves.
    async fn off_thread(&mut self, work: fn(&mut Control)) {
        let mut copy = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            work(&mut copy);
            copy
        })
        .await;
        match done {
            Ok(state) => *self = state,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Rotates unless the period is still `period` (a timer that fired at
    /// the boundary of a clock that was set back); returns the period the
    /// filter is in and when to rotate next. A busy lock is tried again
    /// shortly.
    async fn rotate(&mut self, period: Option<u64>) -> (Option<u64>, Option<Instant>) {
        if rotation::current(&self.settings) == period {
            return (period, rotation::next_switch(&self.settings));
        }
        let mut copy = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let rotated = rotation::rotate(&copy.args, &mut copy.settings, &copy.dir);
            (copy, rotated)
        })
        .await;
        let rotated = match done {
            Ok((state, rotated)) => {
                *self = state;
                rotated
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.published.send_replace(self.settings.clone());
        if rotated {
            (
                rotation::current(&self.settings),
                rotation::next_switch(&self.settings),
            )
        } else {
            (period, Some(Instant::now() + rotation::RETRY))
        }
    }

    fn reload(&mut self) {
        let reloaded = Settings::from_args(&self.args)
            .and_then(|s| filter::reload(&s, &self.dir).map(|r| (s, r)));
        match reloaded {
            Ok((s, r)) => {
                self.settings = s;
                self.published.send_replace(self.settings.clone());
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

    /// Says when an interface disappears, and attaches again when an
    /// interface of the same name comes back (a deleted and re-created
    /// veth, a driver reload); its state in the maps is untouched meanwhile.
    fn watch_interfaces(&mut self) {
        let (gone, back) = match filter::interface_changes(&self.dir) {
            Ok(c) => c,
            Err(e) => {
                self.pending = true;
                return log::error!("checking the interfaces failed: {e}");
            }
        };
        for name in &gone {
            if !self.missing.contains(name) {
                log::warn!("interface {name} is gone; iplock attaches again when it comes back");
            }
        }
        self.missing = gone;
        self.pending = false;
        if !back.is_empty() {
            match filter::reload(&self.settings, &self.dir) {
                Ok(_) => log::info!("interface {} is back; attached again", back.join(", ")),
                Err(e) => {
                    self.pending = true;
                    log::error!("attaching again to {} failed: {e}", back.join(", "))
                }
            }
        }
    }
}

/// The next link change: `Some(Some(name))` for a link, `Some(None)` when
/// notifications were lost and every interface must be checked, `None`
/// when the notifications ended.
async fn next_change(links: &mut Option<Links>) -> Option<Option<String>> {
    match links {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}
