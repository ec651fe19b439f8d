//! The kernel's SNMP counters of one network namespace, as `nstat` reads
//! them: /proc/net/snmp, /proc/net/netstat and /proc/net/snmp6.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context as _, Result, bail};

/// Counters by `Group.Name` (e.g. `Ip.InReceives`, `Tcp.OutRsts`,
/// `Ip6.InReceives`), read in the calling thread's namespace.
pub fn snmp() -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    // /proc/net follows the process's first thread; thread-self follows the
    // namespace this thread entered.
    for file in ["snmp", "netstat"] {
        let path = format!("/proc/thread-self/net/{file}");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_pairs(&text, &mut out).with_context(|| format!("parsing {path}"))?;
    }
    let path = "/proc/thread-self/net/snmp6";
    let text = fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(name), Some(value)) = (words.next(), words.next())
            && let (Some(rest), Ok(v)) = (name.strip_prefix("Ip6"), value.parse())
        {
            out.insert(format!("Ip6.{rest}"), v);
        }
    }
    Ok(out)
}

/// Header/value line pairs: `Tcp: InSegs OutRsts` then `Tcp: 5 2`.
fn parse_pairs(text: &str, out: &mut BTreeMap<String, u64>) -> Result<()> {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else {
            bail!("odd number of lines");
        };
        let (group, names) = names.split_once(':').context("no group name")?;
        let (_, values) = values.split_once(':').context("no group name")?;
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            // Some counters (Tcp MaxConn) are signed; they are not used here.
            if let Ok(v) = v.parse() {
                out.insert(format!("{group}.{n}"), v);
            }
        }
    }
    Ok(())
}

/// `after - before` for one counter (0 when absent).
pub fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, key: &str) -> u64 {
    after
        .get(key)
        .copied()
        .unwrap_or(0)
        .saturating_sub(before.get(key).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_matched_by_position() {
        let mut out = BTreeMap::new();
        parse_pairs(
            "Tcp: RtoAlgorithm MaxConn InSegs\nTcp: 1 -1 42\nUdp: InDatagrams\nUdp: 7\n",
            &mut out,
        )
        .unwrap();
        assert_eq!(out["Tcp.InSegs"], 42);
        assert_eq!(out["Udp.InDatagrams"], 7);
        assert!(!out.contains_key("Tcp.MaxConn"));
    }
}
