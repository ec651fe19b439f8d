//! Rotating knock sequences: the filter holds the current and the previous
//! period's sequence, and switches [`Rotation::lead`] early (see
//! config/rotate.rs); the daemon writes the new pair at that boundary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::config::rotate::{self, Rotation};
use crate::config::settings::{Settings, SettingsArgs};
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;

/// How soon a rotation is tried again when another command holds the
/// filter's lock: such commands take a fraction of a second.
pub const RETRY: Duration = Duration::from_millis(200);

/// The rotation period the filter is in, if knocks rotate.
pub fn current(settings: &Settings) -> Option<u64> {
    let r = settings.rotate.as_ref()?;
    Some(r.filter_period(rotate::unix_now()))
}

/// When the filter's period next changes, if knocks rotate.
pub fn next_switch(settings: &Settings) -> Option<Instant> {
    let r = settings.rotate.as_ref()?;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Some(Instant::now() + until_switch(r, unix))
}

/// The time from `unix` (since the epoch) to the next second at which
/// [`Rotation::filter_period`] changes.
fn until_switch(r: &Rotation, unix: Duration) -> Duration {
    let period = r.period.as_secs().max(1);
    let next = (r.filter_period(unix.as_secs()) + 1) * period - r.lead();
    Duration::from_secs(next).saturating_sub(unix)
}

/// Writes the new period's sequence (and the one before it) into the
/// filter. The settings are read again first, so a new secret file takes
/// effect at the next period at the latest; if they no longer validate,
/// the running ones go on rotating. Returns false where another command
/// holds the filter's lock: the caller tries again after [`RETRY`].
pub fn rotate(args: &SettingsArgs, settings: &mut Settings, dir: &PinDir) -> bool {
    let _lock = match dir.lock() {
        Ok(lock) => lock,
        Err(e) => {
            log::debug!("rotation waits: {e}");
            return false;
        }
    };
    match Settings::from_args(args) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(period: u64) -> Rotation {
        Rotation {
            secret: Default::default(),
            period: Duration::from_secs(period),
            steps: 3,
            udp: false,
        }
    }

    #[test]
    fn the_switch_is_lead_seconds_before_the_period_boundary() {
        let r = rotation(30);
        assert_eq!(r.lead(), 2);
        // 1000 s is in period 33 (990..1020): the filter switches at 1018.
        let at = |s: f64| until_switch(&r, Duration::from_secs_f64(s));
        assert_eq!(at(1000.0), Duration::from_secs(18));
        assert_eq!(at(1017.75), Duration::from_millis(250));
        // At the switch itself, the next one is a period away.
        assert_eq!(at(1018.0), Duration::from_secs(30));
        let t = 1000 + at(1000.0).as_secs();
        assert_ne!(r.filter_period(t - 1), r.filter_period(t));
    }

    #[test]
    fn short_periods_switch_a_second_early() {
        let r = rotation(2);
        assert_eq!(r.lead(), 1);
        assert_eq!(
            until_switch(&r, Duration::from_secs(10)),
            Duration::from_secs(1)
        );
    }
}
