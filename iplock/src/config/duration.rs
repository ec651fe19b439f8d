//! Durations as administrators write them: `500ms`, `10s`, `5m`, `1h`, `1d`,
//! parsed by `humantime`, which also takes its longer unit names and sums
//! (`90min`, `2days`, `1h30m`, `1h 30m`, `1w`, `1y`).

use std::time::Duration;

use humantime::DurationError;

use crate::error::{Result, input, quote};

/// Longest duration accepted anywhere: a year as `humantime` counts it
/// (365.25 days, so that `1y` itself is accepted), far beyond any sane ban
/// and far from overflowing the kernel's u64 nanosecond clock.
const MAX: Duration = Duration::from_secs(31_557_600);

/// Parses a positive duration with a unit; `what` names the setting.
/// Fractions (`1.5s`) are refused, as are durations finer than a
/// millisecond, which nothing here can state (`500us`).
pub fn parse(s: &str, what: &str) -> Result<Duration> {
    let s = s.trim();
    let bad = || {
        input(format!(
            "{what} {} is not a duration like 500ms, 10s, 5m, 1h or 1d",
            quote(s)
        ))
    };
    let long = || input(format!("{what} {} is longer than a year", quote(s)));
    // humantime reads `1.5s`; the units say what a fraction would.
    if s.contains('.') {
        return bad();
    }
    let d = match humantime::parse_duration(s) {
        Ok(d) => d,
        Err(DurationError::NumberOverflow) => return long(),
        Err(_) => return bad(),
    };
    if d.is_zero() {
        return input(format!("{what} must be above zero, not {}", quote(s)));
    }
    if d > MAX {
        return long();
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return input(format!(
            "{what} {} is not a whole number of milliseconds",
            quote(s)
        ));
    }
    Ok(d)
}

/// Formats a duration in the largest unit that states it exactly.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("500ms", "x").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("10s", "x").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("5m", "x").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h", "x").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1d", "x").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn rejects_zero_missing_unit_and_huge() {
        for bad in ["0s", "10", "s", "-1s", "1.5s", "10 parsecs", "366d", ""] {
            let err = parse(bad, "ban time").unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().starts_with("ban time"), "{err}");
        }
    }

    #[test]
    fn takes_humantime_sums_and_names_within_the_bounds() {
        assert_eq!(parse("1h30m", "x").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1h 30m", "x").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2days", "x").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse("1y", "x").unwrap(), MAX);
        assert_eq!(
            parse("365d", "x").unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        let sentence = |s: &str| parse(s, "the ban time").unwrap_err().to_string();
        assert_eq!(
            sentence("500us"),
            "the ban time `500us` is not a whole number of milliseconds"
        );
        assert_eq!(
            sentence("0.5s"),
            "the ban time `0.5s` is not a duration like 500ms, 10s, 5m, 1h or 1d"
        );
        assert_eq!(
            sentence("99999999999999999999d"),
            "the ban time `99999999999999999999d` is longer than a year"
        );
        assert_eq!(
            sentence("1y 1s"),
            "the ban time `1y 1s` is longer than a year"
        );
        assert_eq!(
            sentence("0ms"),
            "the ban time must be above zero, not `0ms`"
        );
    }

    #[test]
    fn formats_round_trip() {
        for s in ["500ms", "10s", "5m", "1h", "1d", "90s"] {
            assert_eq!(format(parse(s, "x").unwrap()), s);
        }
    }
}
