//! Durations as Go's `time.Duration.String` writes them and
//! `time.ParseDuration` reads them: `3h59m58.1s`, `-1.5s`, `300ms`,
//! `1.5µs`, `0`. The Local API sends a decision's time left this way,
//! negative for a decision that has ended.

/// Nanoseconds per unit, Go's names (`µs` as U+00B5 and U+03BC, and `us`).
const UNITS: [(&str, u64); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// Parses a Go duration into signed nanoseconds, as Go does (an `i64`);
/// `None` for text Go would refuse or a value out of its range.
pub fn parse(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    // Summed in u128 nanoseconds, checked against i64 at the end.
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac = "";
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            frac = &r[..n];
            rest = &r[n..];
        }
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (_, scale) = UNITS.iter().find(|(name, _)| *name == unit)?;
        if *scale == 0 {
            return None; // a number without a unit
        }
        let scale = u128::from(*scale);
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        total = total.checked_add(whole.checked_mul(scale)?)?;
        // Go keeps the fraction's digits as far as they matter and truncates.
        let mut f: u128 = 0;
        let mut div: u128 = 1;
        for d in frac.bytes().take(30) {
            f = f * 10 + u128::from(d - b'0');
            div *= 10;
        }
        total = total.checked_add(f * scale / div)?;
        if total > i64::MAX as u128 + 1 {
            return None;
        }
    }
    if negative {
        0i64.checked_sub_unsigned(u64::try_from(total).ok()?)
    } else {
        i64::try_from(total).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_what_the_local_api_sends() {
        assert_eq!(
            parse("3h59m58.1s"),
            Some(3 * 3600 * S + 59 * 60 * S + 58 * S + S / 10)
        );
        assert_eq!(parse("-1.5s"), Some(-3 * S / 2));
        assert_eq!(parse("59m58.59s"), Some(59 * 60 * S + 58 * S + 590_000_000));
        assert_eq!(parse("1h"), Some(3600 * S));
        assert_eq!(parse("300ms"), Some(300_000_000));
        assert_eq!(parse("1.5µs"), Some(1500));
        assert_eq!(parse("1.5\u{3bc}s"), Some(1500));
        assert_eq!(parse("1.5us"), Some(1500));
        assert_eq!(parse("7ns"), Some(7));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("-0"), Some(0));
        assert_eq!(parse("0s"), Some(0));
        assert_eq!(parse(".5s"), Some(S / 2));
        assert_eq!(parse("1.s"), Some(S));
        assert_eq!(parse("+2m"), Some(120 * S));
        assert_eq!(parse("59m59.063959915s"), Some(3599 * S + 63_959_915));
        assert_eq!(parse("-21.759997ms"), Some(-21_759_997));
        assert_eq!(parse("1h29m59.063927437s"), Some(5399 * S + 63_927_437));
        // Go's extremes.
        assert_eq!(parse("2562047h47m16.854775807s"), Some(i64::MAX));
        assert_eq!(parse("-2562047h47m16.854775808s"), Some(i64::MIN));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            "",
            "-",
            "1",
            "10",
            "s",
            ".s",
            "1x",
            "1.5",
            "1h 2m",
            "h1",
            "2562047h47m16.854775808s",
            "99999999999999999999h",
            "--1s",
            "1e3s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
