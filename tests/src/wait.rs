//! Waiting for a condition that becomes true some time after the action that
//! causes it: a packet is counted when the kernel gets to it, a daemon acts
//! on its next sweep, the kernel frees programs later.

use std::thread::sleep;
use std::time::{Duration, Instant};

/// Often enough that a test waits little longer than it must, rarely enough
/// that a check running a command does not load the machine.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it gives a value; panics with `what` and the last
/// complaint of `check` once `limit` has passed.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not within {limit:?}: {e}"),
            Err(_) => sleep(POLL),
        }
    }
}
