//! The event task: the program's events from its pinned ring buffer, each
//! logged as it comes (the ring's descriptor wakes the runtime), through
//! the summarising [`EventLog`].

use std::time::Instant;

use iplock_common::events::Event;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::daemon::event_log::EventLog;
use crate::daemon::{Stop, stopped, watch_ring};
use crate::kernel::events::Events;

/// Events read before the other tasks get a turn.
const BATCH: usize = 1024;

/// Logs events until `stop`, then the summaries still open; hands every
/// event that banned its source to `bans` (the CrowdSec watcher), when
/// there is one.
pub async fn run(events: Events, bans: Option<mpsc::Sender<Event>>, mut stop: Stop) {
    let mut log = EventLog::default();
    let registered = watch_ring(events);
    let mut ring = match registered {
        Ok(ring) => Some(ring),
        Err(e) => {
            log::error!("waiting on the event ring failed, events are not logged: {e}");
            None
        }
    };
    loop {
        let flush = log.next_flush().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = stopped(&mut stop) => break,
            ready = readable(&mut ring) => match ready {
                Ok(mut guard) => {
                    // The ring wakes its waiters again only for events
                    // written after it was found empty: drain it before
                    // clearing the readiness. A flood may refill it as
                    // fast as it drains, so past a batch the other tasks
                    // get their turn first, the readiness kept.
                    let events = guard.get_inner_mut();
                    let mut full_batch = true;
                    for _ in 0..BATCH {
                        let Some(e) = events.read() else {
                            full_batch = false;
                            break;
                        };
                        log.log(&e, Instant::now());
                        if let Some(tx) = &bans
                            && e.ban_reason != 0
                        {
                            // Full: the watcher is behind a flood; the
                            // ban stands, only its push is lost.
                            let _ = tx.try_send(e);
                        }
                    }
                    if full_batch {
                        drop(guard);
                        tokio::task::yield_now().await;
                    } else {
                        guard.clear_ready();
                    }
                }
                Err(e) => {
                    log::error!("waiting on the event ring failed, events are no longer logged: {e}");
                    ring = None;
                }
            },
            () = tokio::time::sleep_until(flush.unwrap_or_else(tokio::time::Instant::now)), if flush.is_some() => {
                log.flush(Instant::now());
            }
        }
    }
    // Events still in the ring are left: during a flood, reading them all
    // could delay the stop without end, and the counters have them.
    log.finish();
}

async fn readable(
    ring: &mut Option<AsyncFd<Events>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, Events>> {
    match ring {
        Some(r) => r.readable_mut().await,
        None => std::future::pending().await,
    }
}
