//! Knock steps in the original iplock syntax, `[tcp:|udp:]PORT[/DURATION]`,
//! and the rules a sequence must obey.

use std::fmt;
use std::time::Duration;

use iplock_common::names::MAX_STEPS;
use iplock_common::packet::{PROTO_TCP, PROTO_UDP};

use crate::config::duration;
use crate::error::{Result, input, quote};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub proto: u8,
    pub port: u16,
    /// The step's own timeout; the default step timeout when `None`.
    pub timeout: Option<Duration>,
}

pub fn proto_name(proto: u8) -> &'static str {
    if proto == PROTO_UDP { "udp" } else { "tcp" }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", proto_name(self.proto), self.port)?;
        if let Some(t) = self.timeout {
            write!(f, "/{}", duration::format(t))?;
        }
        Ok(())
    }
}

/// Parses a port number 1..=65535; `what` names it in the error.
pub fn parse_port(s: &str, what: &str) -> Result<u16> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => input(format!(
            "{what} {} is not a port number from 1 to 65535",
            quote(s)
        )),
    }
}

impl Step {
    pub fn parse(s: &str) -> Result<Step> {
        let s = s.trim();
        let (body, timeout) = match s.split_once('/') {
            Some((body, t)) => (
                body,
                Some(duration::parse(
                    t,
                    &format!("the timeout of knock step {}", quote(s)),
                )?),
            ),
            None => (s, None),
        };
        let (proto, port) = match body.split_once(':') {
            Some(("tcp", port)) => (PROTO_TCP, port),
            Some(("udp", port)) => (PROTO_UDP, port),
            Some((p, _)) => {
                return input(format!(
                    "knock step {} has protocol {}; use tcp or udp",
                    quote(s),
                    quote(p)
                ));
            }
            None => (PROTO_TCP, body),
        };
        let port = parse_port(port, &format!("the port of knock step {}", quote(s)))?;
        Ok(Step {
            proto,
            port,
            timeout,
        })
    }
}

/// Parses a comma-separated sequence such as `tcp:100,udp:300/20s,tcp:200`.
pub fn parse_sequence(s: &str) -> Result<Vec<Step>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Step::parse)
        .collect()
}

/// The rules of the original iplock: 1 to 8 steps, no port twice, no
/// protected port, and from three steps on not sorted either way (sorted
/// sequences are the first an attacker tries).
pub fn validate(steps: &[Step], protect: &[u16]) -> Result<()> {
    let list = || {
        quote(
            steps
                .iter()
                .map(Step::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    if steps.is_empty() {
        return input(
            "no knock sequence is set; give one with --knock or `knock` in the config file",
        );
    }
    if steps.len() > MAX_STEPS {
        return input(format!(
            "the knock sequence {} has {} steps; at most {MAX_STEPS} are allowed",
            list(),
            steps.len()
        ));
    }
    for (i, a) in steps.iter().enumerate() {
        if protect.contains(&a.port) {
            return input(format!(
                "the knock sequence {} contains the protected port {}",
                list(),
                a.port
            ));
        }
        if steps[..i].iter().any(|b| b.port == a.port) {
            return input(format!(
                "the knock sequence {} uses port {} twice",
                list(),
                a.port
            ));
        }
    }
    if steps.len() >= 3 {
        let up = steps.windows(2).all(|w| w[0].port < w[1].port);
        let down = steps.windows(2).all(|w| w[0].port > w[1].port);
        if up || down {
            return input(format!(
                "the knock sequence {} is sorted {}, which attackers try first; shuffle it",
                list(),
                if up { "ascending" } else { "descending" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_syntax() {
        let seq = parse_sequence("100, udp:300/20s ,tcp:200").unwrap();
        assert_eq!(
            seq,
            vec![
                Step {
                    proto: PROTO_TCP,
                    port: 100,
                    timeout: None
                },
                Step {
                    proto: PROTO_UDP,
                    port: 300,
                    timeout: Some(Duration::from_secs(20))
                },
                Step {
                    proto: PROTO_TCP,
                    port: 200,
                    timeout: None
                },
            ]
        );
        assert_eq!(seq[1].to_string(), "udp:300/20s");
    }

    #[test]
    fn rejects_bad_steps() {
        for bad in [
            "icmp:1",
            "tcp:0",
            "tcp:65536",
            "tcp:x",
            "tcp:100/0s",
            "tcp:100/5",
        ] {
            assert_eq!(parse_sequence(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn validation_follows_the_original_rules() {
        let ok = |s: &str| validate(&parse_sequence(s).unwrap(), &[22]);
        assert!(ok("tcp:100,udp:300,tcp:200").is_ok());
        assert!(ok("100,200").is_ok(), "two steps may be sorted");
        assert!(ok("7").is_ok());
        for bad in [
            "",
            "100,200,300",
            "300,200,100",
            "100,22,300",
            "100,udp:100,300",
            "1,9,2,8,3,7,4,6,5",
        ] {
            let err = ok(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(!err.to_string().contains('\n'));
        }
    }
}
