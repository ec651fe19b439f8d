//! How many knock sequences an attacker must search, counted exactly under
//! the rules of [`crate::config::knock::validate`], and how long that search takes
//! when every wrong try costs a ban.

use std::time::Duration;

use num_bigint::BigUint;

/// Ports a knock can use before protected ones are taken away: 1 to 65535.
pub const PORTS: u32 = 65_535;

/// A Julian year, the unit astronomers (and this estimate) use.
const YEAR: Duration = Duration::from_secs(31_557_600);

/// Sequences of `steps` knocks over `ports` usable ports that pass
/// validation. Ports are distinct, so there are P(k, n) orderings; from three
/// steps on the sorted ones are refused, and every set of n ports has exactly
/// one ascending and one descending ordering, so 2·C(k, n) of them go. With
/// `udp` each step may also be tcp or udp, and since the rules look at port
/// numbers only, every valid port ordering stands for 2^n sequences.
pub fn sequences(ports: u32, steps: u32, udp: bool) -> BigUint {
    // A factor of zero when steps > ports: no sequence of distinct ports.
    let orderings: BigUint = (0..steps)
        .map(|i| BigUint::from(ports.saturating_sub(i)))
        .product();
    let mut count = if steps >= 3 {
        let factorial: BigUint = (1..=steps).map(BigUint::from).product();
        let sorted = &orderings / factorial;
        orderings - sorted * 2u32
    } else {
        orderings
    };
    if udp {
        count <<= steps;
    }
    count
}

/// log2 of `n` to f64 precision: the top 64 bits give the mantissa, the bit
/// length the exponent, so nothing overflows however large `n` is.
pub fn log2(n: &BigUint) -> f64 {
    let shift = n.bits().saturating_sub(64);
    let top = u64::try_from(n >> shift).expect("at most 64 bits are left");
    (top as f64).log2() + shift as f64
}

/// `n` as the nearest f64, for display only (the count itself stays exact).
fn approx(n: &BigUint) -> f64 {
    let shift = n.bits().saturating_sub(64);
    let top = u64::try_from(n >> shift).expect("at most 64 bits are left");
    top as f64 * 2f64.powi(shift as i32)
}

/// Expected time to hit the sequence from one source that may try once per
/// ban: half the space, one ban time each. Exact, in milliseconds.
pub fn expected_ms(count: &BigUint, ban: Duration) -> BigUint {
    count * BigUint::from(ban.as_millis()) / 2u32
}

/// A duration in milliseconds in the unit a person would use: seconds up to
/// years, then powers of ten of years, compared with the universe's age when
/// it comes near.
pub fn describe_ms(ms: &BigUint) -> String {
    const AGE_OF_UNIVERSE_YEARS: f64 = 1.38e10;
    let year_ms = BigUint::from(YEAR.as_millis());
    if ms < &year_ms {
        let ms = u64::try_from(ms).expect("less than a year fits");
        let s = ms as f64 / 1000.0;
        return match s {
            s if s < 60.0 => format!("{s:.1} seconds"),
            s if s < 3600.0 => format!("{:.1} minutes", s / 60.0),
            s if s < 86_400.0 => format!("{:.1} hours", s / 3600.0),
            s => format!("{:.1} days", s / 86_400.0),
        };
    }
    let years = approx(ms) / approx(&year_ms);
    if years < 1000.0 {
        return format!("{years:.1} years");
    }
    let text = format!("{years:.1e} years");
    let ratio = years / AGE_OF_UNIVERSE_YEARS;
    match ratio {
        r if r < 0.1 => text,
        r if r < 1.0 => format!("{text}, {:.0}% of the age of the universe", r * 100.0),
        r if r < 1000.0 => format!("{text}, {r:.1} times the age of the universe"),
        r => format!("{text}, {r:.1e} times the age of the universe"),
    }
}

#[cfg(test)]
mod tests {
    use iplock_common::packet::{PROTO_TCP, PROTO_UDP};

    use super::*;
    use crate::config::knock::{Step, validate};

    /// Counts the sequences of `steps` knocks over ports 1..=ports+1 with
    /// port 1 protected that [`validate`] accepts, trying every port (also
    /// repeated and protected ones) and, with `udp`, every protocol.
    fn brute_force(ports: u32, steps: u32, udp: bool) -> u64 {
        let protect = [1u16];
        let protos: &[u8] = if udp {
            &[PROTO_TCP, PROTO_UDP]
        } else {
            &[PROTO_TCP]
        };
        let choices: Vec<(u8, u16)> = (1..=ports as u16 + 1)
            .flat_map(|port| protos.iter().map(move |&proto| (proto, port)))
            .collect();
        let mut count = 0;
        let mut seq = Vec::with_capacity(steps as usize);
        fn walk(
            choices: &[(u8, u16)],
            steps: usize,
            protect: &[u16],
            seq: &mut Vec<Step>,
            count: &mut u64,
        ) {
            if seq.len() == steps {
                *count += u64::from(validate(seq, protect).is_ok());
                return;
            }
            for &(proto, port) in choices {
                seq.push(Step {
                    proto,
                    port,
                    timeout: None,
                });
                walk(choices, steps, protect, seq, count);
                seq.pop();
            }
        }
        walk(&choices, steps as usize, &protect, &mut seq, &mut count);
        count
    }

    #[test]
    fn formula_matches_brute_force_over_small_port_ranges() {
        for ports in 5..=8 {
            // Up to five steps, and one more than the ports where that is
            // cheap, to see the count drop to zero.
            let most = if ports == 5 { 6 } else { 5 };
            for steps in 1..=most {
                for udp in [false, true] {
                    if udp && steps > 4 {
                        continue;
                    }
                    assert_eq!(
                        sequences(ports, steps, udp),
                        BigUint::from(brute_force(ports, steps, udp)),
                        "{ports} ports, {steps} steps, udp {udp}"
                    );
                }
            }
        }
    }

    #[test]
    fn default_three_steps_with_ssh_protected() {
        // 65534·65533·65532 − 2·C(65534, 3) = 2/3 of P(65534, 3).
        let count = sequences(PORTS - 1, 3, false);
        assert_eq!(count.to_string(), "187624215805936");
        assert_eq!(
            sequences(PORTS - 1, 3, true).to_string(),
            "1500993726447488"
        );
        assert!((log2(&count) - 47.414_839).abs() < 1e-5);
        let ms = expected_ms(&count, Duration::from_secs(3600));
        assert_eq!(
            describe_ms(&ms),
            "1.1e10 years, 78% of the age of the universe"
        );
    }

    #[test]
    fn eight_steps_go_past_u128_with_udp() {
        let tcp = sequences(PORTS - 1, 8, false);
        assert_eq!(tcp.to_string(), "340037103534687939260117087023699347822");
        let udp = sequences(PORTS - 1, 8, true);
        assert_eq!(udp.to_string(), "87049498504880112450589974278067033042432");
        assert!(u128::try_from(&udp).is_err());
        assert!((log2(&udp) - 135.998_959).abs() < 1e-5);
    }

    #[test]
    fn short_searches_read_in_small_units() {
        let ms = |n: u64| BigUint::from(n);
        assert_eq!(describe_ms(&ms(1500)), "1.5 seconds");
        assert_eq!(describe_ms(&ms(90_000)), "1.5 minutes");
        assert_eq!(describe_ms(&ms(32_767 * 3_600_000)), "3.7 years");
        assert_eq!(describe_ms(&ms(5 * 86_400_000)), "5.0 days");
        assert_eq!(describe_ms(&ms(7_200_000)), "2.0 hours");
    }
}
