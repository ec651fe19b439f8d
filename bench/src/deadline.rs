//! The bench stops by itself: each measurement checks the clock before it
//! starts, so an overlong run fails with an error (and cleans up) instead
//! of running on.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// The whole bench must finish within this.
pub const LIMIT: Duration = Duration::from_secs(9 * 60);

static START: OnceLock<Instant> = OnceLock::new();

pub fn start() {
    START.get_or_init(Instant::now);
}

/// Fails once the bench has run for longer than [`LIMIT`].
pub fn check(what: &str) -> Result<()> {
    let elapsed = START.get_or_init(Instant::now).elapsed();
    if elapsed > LIMIT {
        bail!(
            "stopping before {what}: the bench has run {:.0} s, over its limit of {} s",
            elapsed.as_secs_f64(),
            LIMIT.as_secs()
        );
    }
    Ok(())
}
