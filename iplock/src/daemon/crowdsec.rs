//! The CrowdSec tasks of `iplock run`: the bouncer pulls decisions every
//! `update_frequency` and writes them into the decision map (a startup
//! pull, after a start or an outage, rewrites the map whole, so nothing
//! stale stays); the watcher pushes the filter's own bans, which the event
//! task hands it, as alerts in batches. Two tasks, so that a flood of ban
//! events never delays a pull, nor a slow Local API the events.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iplock_common::addr;
use iplock_common::events::Event;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::config::cidr::Cidr;
use crate::config::settings::Settings;
use crate::crowdsec::decision::END_SLACK_NS;
use crate::crowdsec::{Backoff, BanReason, Change, Feed, FeedStep, LocalBan, Watcher};
use crate::daemon::{Stop, stopped};
use crate::error::Result;
use crate::kernel::decisions::{Decisions, Written};
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::system::clock::now_ns;
use iplock_common::state::CrowdsecStats;

/// How often queued bans are pushed.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Ban events waiting between the event task and the watcher; past it a
/// flood's events are dropped here (the watcher's own queue is bounded too).
pub const CHANNEL: usize = 4096;

/// The pull record both tasks update and write to the pinned array.
pub type Stats = Arc<Mutex<CrowdsecStats>>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the record; a failure is logged, it changes no verdict.
fn publish(dir: &PinDir, stats: &Stats) {
    let s = *stats.lock().unwrap();
    if let Err(e) = Decisions::open(dir).and_then(|mut d| d.set_stats(s)) {
        log::error!("recording the CrowdSec pull failed: {e}");
    }
}

/// A fresh record for a daemon that starts now.
pub fn new_stats() -> Stats {
    Arc::new(Mutex::new(CrowdsecStats {
        started_unix: unix_now(),
        ..CrowdsecStats::default()
    }))
}

/// Empties the decision map, for a daemon that pulls none: decisions a
/// previous `run` left are not enforced without a bouncer.
pub async fn clear(dir: PinDir) {
    let done = tokio::task::spawn_blocking(move || -> Result<Written> {
        let mut d = Decisions::open(&dir)?;
        let w = d.sync(std::iter::empty(), 0)?;
        d.set_stats(CrowdsecStats::default())?;
        Ok(w)
    })
    .await;
    match done {
        Ok(Ok(w)) if w.lifted > 0 => log::info!(
            "removed {} CrowdSec decision(s) left by an earlier run, since no bouncer key is configured",
            w.lifted
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log::error!("clearing the CrowdSec decisions failed: {e}"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Pulls until `stop`.
pub async fn bouncer(dir: PinDir, mut feed: Feed, stats: Stats, mut stop: Stop) {
    publish(&dir, &stats);
    // Log a full map once per run of fullness.
    let mut full = false;
    loop {
        let step = tokio::select! {
            () = stopped(&mut stop) => return,
            step = feed.step(now_ns) => step,
        };
        match step {
            FeedStep::Pulled { changes, delta, .. } => {
                let startup = delta.startup;
                let wanted: Option<Vec<_>> = startup.then(|| feed.set.entries().collect());
                let changes: Vec<_> = changes
                    .into_iter()
                    .map(|c| match c {
                        Change::Lift { target } => (target, None),
                        Change::Ban {
                            target,
                            until_ns,
                            origin,
                        } => (target, Some((until_ns, origin))),
                    })
                    .collect();
                let in_force = feed.set.len();
                let d = dir.clone();
                let done = tokio::task::spawn_blocking(move || -> Result<Written> {
                    let mut m = Decisions::open(&d)?;
                    match wanted {
                        Some(all) => m.sync(all, END_SLACK_NS),
                        None => m.apply(&changes),
                    }
                })
                .await;
                let written = match done {
                    Ok(w) => w,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                match written {
                    Ok(w) => {
                        {
                            let mut s = stats.lock().unwrap();
                            s.pulls += 1;
                            s.last_pull_unix = unix_now();
                            s.refused_full = w.no_room as u64;
                        }
                        if startup || w.banned + w.lifted > 0 {
                            log::info!(
                                "CrowdSec decisions {}: {} written, {} lifted, {in_force} in force",
                                if startup { "synchronised" } else { "pulled" },
                                w.banned,
                                w.lifted
                            );
                        }
                        if w.no_room > 0 && !full {
                            log::warn!(
                                "the decision map is full: {} CrowdSec decision(s) are not enforced; raise maps.decisions",
                                w.no_room
                            );
                        }
                        full = w.no_room > 0;
                    }
                    Err(e) => {
                        log::error!("writing the CrowdSec decisions failed: {e}");
                        // Ask for everything again next time.
                        feed.schedule.failed(Instant::now());
                    }
                }
            }
            FeedStep::Failed { .. } => {
                // Feed::step logged the first failure of the outage.
                let mut s = stats.lock().unwrap();
                s.pull_errors += 1;
                s.last_error_unix = unix_now();
            }
        }
        publish(&dir, &stats);
    }
}

/// Whether `a` and `b` share an address.
fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    a.ip.is_ipv4() == b.ip.is_ipv4() && (a.contains(b.ip) || b.contains(a.ip))
}

/// The allow list in force, for the watcher's check.
fn allow_list(dir: &PinDir) -> Result<Vec<Cidr>> {
    let maps = Maps::open(dir)?;
    let now = now_ns();
    let mut out = Vec::new();
    for kv in maps.active_allow()?.iter() {
        let (k, a) = kv.map_err(|source| crate::error::Error::Map {
            what: "reading the allow list".into(),
            source,
        })?;
        if a.until_ns == 0 || a.until_ns > now {
            out.push(Cidr::from_key(&k));
        }
    }
    Ok(out)
}

/// The block a ban event's ban covers: the address, or the IPv6 prefix.
fn ban_target(e: &Event, v6_prefix: u32) -> Cidr {
    let key = addr::ban_key(&e.addr, v6_prefix);
    let ip = addr::to_ip(&key);
    let len = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => v6_prefix,
    };
    Cidr { ip, len }
}

/// Pushes the ban events of `bans` until `stop`.
pub async fn watcher(
    dir: PinDir,
    mut watcher: Watcher,
    mut bans: mpsc::Receiver<Event>,
    settings: watch::Receiver<Settings>,
    stats: Stats,
    mut stop: Stop,
) {
    let mut ticks = tokio::time::interval(FLUSH_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut backoff = Backoff::new(FLUSH_EVERY, Duration::from_secs(60));
    let mut next_try = Instant::now();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            event = bans.recv() => {
                let Some(e) = event else { return };
                // Decisions pulled from CrowdSec are not in the ban maps
                // and make no events; a reason iplock does not push is left.
                let Some(reason) = BanReason::from_kernel(e.ban_reason) else { continue };
                let s = settings.borrow();
                watcher.enqueue(LocalBan {
                    target: ban_target(&e, s.ban.ipv6_prefix),
                    reason,
                    duration: s.ban.time,
                });
            }
            _ = ticks.tick() => {
                if watcher.pending() == 0 || Instant::now() < next_try {
                    continue;
                }
                let d = dir.clone();
                let allow = match tokio::task::spawn_blocking(move || allow_list(&d)).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => {
                        log::error!("reading the allow list for the CrowdSec watcher failed: {e}");
                        continue;
                    }
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let pending = watcher.pending();
                match watcher.flush(|t| allow.iter().any(|a| overlaps(a, t))).await {
                    Ok(r) => {
                        if let Some(after) = backoff.succeeded(Instant::now()) {
                            log::info!("the CrowdSec Local API takes alerts again after {}s", after.as_secs());
                        }
                        next_try = Instant::now();
                        if r.pushed > 0 {
                            log::info!("pushed {} ban(s) to CrowdSec", r.pushed);
                        }
                        if r.allowed > 0 {
                            log::info!("left {} allow-listed ban(s) out of the CrowdSec push", r.allowed);
                        }
                        stats.lock().unwrap().pushed += r.pushed as u64;
                    }
                    Err(e) => {
                        let f = backoff.failed(Instant::now());
                        next_try = Instant::now() + f.retry_in;
                        if f.log {
                            log::warn!("{e}; keeping {pending} ban(s) to push and retrying with backoff");
                        }
                        stats.lock().unwrap().push_errors += 1;
                    }
                }
                let d = dir.clone();
                let s = stats.clone();
                let _ = tokio::task::spawn_blocking(move || publish(&d, &s)).await;
            }
        }
    }
}
