//! The SPA task: each datagram the program copied to the SPA ring is
//! verified ([`crate::spa::verify`]), and an accepted one opens the door of
//! the address it names for its window ([`crate::kernel::spa::open_door`]).
//! Every packet is counted in the pinned SPA counters (`spa_accepted`,
//! `spa_refused{reason}` in `iplock status` and the metrics) and logged
//! with its source, user and reason, through a [`LogLimit`] per verdict so
//! that a flood of junk is a flood of counts, not of lines. The program's
//! rate limit bounds how many datagrams reach this task (see
//! [`iplock_common::spa`]).
//!
//! The replay cache lives in a file per filter under [`REPLAY_DIR`], saved
//! after each accepted packet, so a restart (or an unload and a load)
//! does not forget what was used.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::duration;
use crate::config::rotate::unix_now;
use crate::config::settings::Settings;
use crate::config::spa::SpaSettings;
use crate::daemon::log_limit::LogLimit;
use crate::daemon::{Stop, stopped, watch_ring};
use crate::kernel::events::iface_name;
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::spa::{self, SpaDatagram, SpaRing};
use crate::spa::{Reason, Refusal, ReplayCache, verify};

/// Where the replay caches are kept: one file per pin directory.
pub const REPLAY_DIR: &str = "/var/lib/iplock/spa-replay";

/// Datagrams handled before the other tasks get a turn.
const BATCH: usize = 64;
/// Lines written per verdict in [`LOG_INTERVAL`]; past them the packets
/// are counted and summarised.
const LOG_BURST: u64 = 20;
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The replay cache file of the filter pinned at `dir`: its real path with
/// `/` as `-` (and a `-` or `%` of a name as `%2d`, `%25`), so filters in
/// different pin directories keep apart.
pub fn replay_path(dir: &Path) -> PathBuf {
    let name = dir
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => {
                Some(s.to_string_lossy().replace('%', "%25").replace('-', "%2d"))
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("-");
    Path::new(REPLAY_DIR).join(name)
}

/// The replay cache and where it is kept.
struct Replay {
    path: PathBuf,
    cache: ReplayCache,
    /// The `max_age` the cache was read with: a reload that changes it
    /// reads the file again with the new lifetime.
    max_age: Duration,
}

impl Replay {
    fn load(path: PathBuf, max_age: Duration) -> Replay {
        let cache = ReplayCache::load(&path, max_age, unix_now()).unwrap_or_else(|e| {
            log::error!("{e}; SPA starts with an empty replay cache");
            ReplayCache::new(max_age)
        });
        Replay {
            path,
            cache,
            max_age,
        }
    }

    fn fit(&mut self, spa: &SpaSettings) {
        if spa.max_age != self.max_age {
            *self = Replay::load(self.path.clone(), spa.max_age);
        }
    }

    fn remember(&mut self, grant: &crate::spa::Grant, now: u64) {
        self.cache.insert(grant.digest, now);
        let saved = match self.path.parent() {
            Some(parent) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))
                .and_then(|()| self.cache.save(&self.path).map_err(|e| e.to_string())),
            None => Ok(()),
        };
        if let Err(e) = saved {
            log::error!(
                "{e}: the packet is remembered until iplock run stops, not across a restart"
            );
        }
    }
}

use std::os::unix::fs::DirBuilderExt as _;

/// What the task logs, summarised per verdict.
struct SpaLog(LogLimit<&'static str>);

impl SpaLog {
    /// The line is made only when it is written: a flood of junk costs
    /// no formatting (nor the interface's name).
    fn accepted(&mut self, line: impl FnOnce() -> String) {
        if self.0.admit("accepted", Instant::now()) {
            log::info!("{}", line());
        }
    }

    fn refused(&mut self, reason: Reason, line: impl FnOnce() -> String) {
        if self.0.admit(reason.name(), Instant::now()) {
            log::info!("{}", line());
        }
    }

    fn flush(&mut self, now: Instant) {
        let held = self.0.expire(now);
        self.summarise(held);
    }

    fn finish(&mut self) {
        let held = self.0.finish();
        self.summarise(held);
    }

    fn summarise(&self, held: Vec<(&'static str, u64)>) {
        let per = duration::format(self.0.interval());
        for (kind, n) in held {
            let what = if kind == "accepted" {
                "SPA packets accepted".to_string()
            } else {
                format!("SPA packets refused ({kind})")
            };
            log::info!(
                "… and {n} more {what} in the last {per} (log lines are summarised past {} per {per})",
                self.0.burst()
            );
        }
    }
}

/// The task's state.
struct Spa {
    maps: Maps,
    replay: Option<Replay>,
    log: SpaLog,
    dir: PathBuf,
}

impl Spa {
    /// Verifies one datagram and acts on the verdict.
    fn handle(&mut self, d: &SpaDatagram, settings: &Settings) {
        // SPA was turned off by a reload while the datagram waited.
        let Some(spa) = &settings.spa else { return };
        let replay = self
            .replay
            .get_or_insert_with(|| Replay::load(replay_path(&self.dir), spa.max_age));
        replay.fit(spa);
        let now = unix_now();
        let from = || format!("{} on {}", d.source, iface_name(d.ifindex));
        let verdict = if d.was_cut() {
            Err(Refusal::from(Reason::TooLong))
        } else {
            verify(
                &d.payload,
                d.source,
                now,
                spa,
                &settings.protect,
                &replay.cache,
            )
        };
        let grant = match verdict {
            Ok(grant) => grant,
            Err(refusal) => {
                self.count(Some(refusal.reason));
                let user = refusal
                    .user
                    .as_deref()
                    .map(|u| format!(", user {u}"))
                    .unwrap_or_default();
                return self.log.refused(refusal.reason, || {
                    format!(
                        "SPA packet from {} refused: {}{user}",
                        from(),
                        refusal.reason
                    )
                });
            }
        };
        match spa::open_door(&mut self.maps, grant.address, grant.window) {
            Ok(opened) => {
                replay.remember(&grant, now);
                self.count(None);
                let access: Vec<String> = grant.access.iter().map(ToString::to_string).collect();
                let lifted = if opened.lifted.is_empty() {
                    String::new()
                } else {
                    format!("; lifted its ban ({})", opened.lifted.join(", "))
                };
                self.log.accepted(|| {
                    format!(
                        "SPA packet from {} accepted: door opened for {} for {} (user {}, access {}){lifted}",
                        from(),
                        grant.address,
                        duration::format(grant.window),
                        grant.user,
                        access.join(",")
                    )
                });
            }
            // Not remembered: the client may send it again once the map
            // takes writes again.
            Err(e) => log::error!(
                "SPA packet from {} (user {}) verified, but opening the door failed: {e}",
                from(),
                grant.user
            ),
        }
    }

    fn count(&mut self, verdict: Option<Reason>) {
        if let Err(e) = spa::count(&mut self.maps, verdict) {
            log::debug!("{e}");
        }
    }
}

/// Verifies SPA datagrams until `stop`, with the settings `settings` holds
/// at each one.
pub async fn run(ring: SpaRing, dir: PinDir, settings: watch::Receiver<Settings>, mut stop: Stop) {
    let maps = match Maps::open(&dir) {
        Ok(m) => m,
        Err(e) => return log::error!("SPA packets are not verified: {e}"),
    };
    if let Some(spa) = &settings.borrow().spa {
        log::info!(
            "SPA: verifying fwknop packets to udp port {} (replay cache {})",
            spa.port,
            replay_path(dir.path()).display()
        );
    }
    let mut task = Spa {
        maps,
        replay: None,
        log: SpaLog(LogLimit::new(LOG_BURST, LOG_INTERVAL)),
        dir: dir.path().to_path_buf(),
    };
    let registered = watch_ring(ring);
    let mut ring = match registered {
        Ok(ring) => ring,
        Err(e) => {
            return log::error!(
                "waiting on the SPA ring failed, SPA packets are not verified: {e}"
            );
        }
    };
    loop {
        let flush = task.log.0.next_expiry().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = stopped(&mut stop) => break,
            ready = ring.readable_mut() => match ready {
                Ok(mut guard) => {
                    // As in events.rs: drain before clearing the readiness,
                    // a batch at a time.
                    let settings = settings.borrow().clone();
                    let ring = guard.get_inner_mut();
                    let mut full_batch = true;
                    for _ in 0..BATCH {
                        let Some(d) = ring.read() else {
                            full_batch = false;
                            break;
                        };
                        task.handle(&d, &settings);
                    }
                    if full_batch {
                        drop(guard);
                        tokio::task::yield_now().await;
                    } else {
                        guard.clear_ready();
                    }
                }
                Err(e) => {
                    log::error!("waiting on the SPA ring failed, SPA packets are no longer verified: {e}");
                    break;
                }
            },
            () = tokio::time::sleep_until(flush.unwrap_or_else(tokio::time::Instant::now)), if flush.is_some() => {
                task.log.flush(Instant::now());
            }
        }
    }
    task.log.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pin_dir_has_a_replay_file_of_its_own() {
        assert_eq!(
            replay_path(Path::new("/sys/fs/bpf/iplock")),
            Path::new("/var/lib/iplock/spa-replay/sys-fs-bpf-iplock")
        );
        assert_eq!(
            replay_path(Path::new("/sys/fs/bpf/a-b/c")),
            Path::new("/var/lib/iplock/spa-replay/sys-fs-bpf-a%2db-c")
        );
        assert_ne!(
            replay_path(Path::new("/sys/fs/bpf/a/b-c")),
            replay_path(Path::new("/sys/fs/bpf/a-b/c"))
        );
    }
}
