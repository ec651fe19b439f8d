//! Durations as administrators write them: `500ms`, `10s`, `5m`, `1h`, `1d`.

use std::time::Duration;

use crate::error::{Result, input, quote};

/// Longest duration accepted anywhere (a year), far beyond any sane ban
/// and far from overflowing the kernel's u64 nanosecond clock.
const MAX: Duration = Duration::from_secs(365 * 86_400);

/// Parses a positive duration with a unit; `what` names the setting.
pub fn parse(s: &str, what: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || {
        format!(
            "{what} {} is not a duration like 500ms, 10s, 5m, 1h or 1d",
            quote(s)
        )
    };
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(_) => return input(bad()),
    };
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return input(bad()),
    };
    if d.is_zero() {
        return input(format!("{what} must be above zero, not {}", quote(s)));
    }
    if d > MAX {
        return input(format!("{what} {} is longer than a year", quote(s)));
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
    fn formats_round_trip() {
        for s in ["500ms", "10s", "5m", "1h", "1d", "90s"] {
            assert_eq!(format(parse(s, "x").unwrap()), s);
        }
    }
}
