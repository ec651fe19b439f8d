//! The original article's iptables `recent` rules, loaded into the server
//! namespace, and their per-rule counters.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::netns::cmd;

/// The two iptables backends Debian's iptables package installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    /// `iptables-legacy`, or `ip6tables-nft` for IPv6 with nft, and so on.
    pub fn binary(self, v6: bool) -> String {
        format!("ip{}tables-{}", if v6 { "6" } else { "" }, self.name())
    }

    fn save(self, v6: bool) -> String {
        format!("{}-save", self.binary(v6))
    }
}

/// Which text of the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rules {
    /// The article's rules with each rule's protocol, port and SYN matches
    /// moved before its `-m recent` matches, the order the original iplock's
    /// rule generator (tools/ipload/rule.cpp) emits; plus a `hacker` list
    /// that drops banned sources. This is what iplock is compared against.
    Ordered,
    /// The rules exactly as the article prints them (without `-s`). iptables
    /// evaluates matches left to right, so `-m recent --set` records every
    /// packet that reaches it, whatever its port.
    Article,
}

/// The knock sequence and port of the article, used by every flow.
pub const PROTECTED: u16 = 22;
pub const KNOCKS: [u16; 3] = [100, 300, 200];

/// The rules for the server interface `iface`, as arguments of `iptables`.
/// The INPUT policy is DROP in both sets: the article's knock ports must
/// answer nothing, like every other filtered port.
pub fn rules(set: Rules, iface: &str) -> Vec<String> {
    let [k1, k2, k3] = KNOCKS.map(|p| p.to_string());
    let p = PROTECTED.to_string();
    let lines: Vec<String> = match set {
        Rules::Ordered => vec![
            format!("-A INPUT -i {iface} -p tcp -m state --state ESTABLISHED,RELATED -m tcp ! --syn -j ACCEPT"),
            "-A INPUT -m recent --rcheck --seconds 10 --name knock3 -m recent --remove --name hacker".into(),
            "-A INPUT -m recent --rcheck --seconds 3600 --name hacker -j DROP".into(),
            format!("-A INPUT -i {iface} -p tcp -m tcp --dport {p} --syn -m recent --rcheck --seconds 10 --name knock3 -j ACCEPT"),
            format!("-A INPUT -p tcp -m tcp --dport {k3} --syn -m recent --rcheck --seconds 10 --name knock2 -m recent --set --name knock3"),
            "-A INPUT -m recent --remove --name knock2".into(),
            format!("-A INPUT -p tcp -m tcp --dport {k2} --syn -m recent --rcheck --seconds 10 --name knock1 -m recent --set --name knock2"),
            "-A INPUT -m recent --remove --name knock1".into(),
            format!("-A INPUT -p tcp -m tcp --dport {k1} --syn -m recent --set --name knock1"),
            format!("-A INPUT -p tcp --dport {p} -j DROP"),
        ],
        Rules::Article => vec![
            format!("-A INPUT -i {iface} -p tcp -m state --state ESTABLISHED,RELATED -m tcp ! --syn -j ACCEPT"),
            "-A INPUT -m recent --rcheck --seconds 10 --name knock3 -m recent --remove --name hacker".into(),
            format!("-A INPUT -m recent --rcheck --seconds 10 --name knock3 -i {iface} -p tcp --dport {p} -m tcp --syn -j ACCEPT"),
            format!("-A INPUT -m recent --rcheck --seconds 10 --name knock2 -m recent --set --name knock3 -p tcp --dport {k3} -m tcp --syn"),
            "-A INPUT -m recent --remove --name knock2".into(),
            format!("-A INPUT -m recent --rcheck --seconds 10 --name knock1 -m recent --set --name knock2 -p tcp --dport {k2} -m tcp --syn"),
            "-A INPUT -m recent --remove --name knock1".into(),
            format!("-A INPUT -m recent --set --name knock1 -p tcp --dport {k1} -m tcp --syn"),
            format!("-A INPUT -p tcp --dport {p} -j DROP"),
        ],
    };
    std::iter::once("-P INPUT DROP".to_string())
        .chain(lines)
        .collect()
}

/// Loads `set` into namespace `ns` with `backend`, into ip6tables for `v6`
/// (the same rules: `recent` and `state` work for both families).
pub fn load(ns: &str, backend: Backend, v6: bool, set: Rules, iface: &str) -> Result<()> {
    for rule in rules(set, iface) {
        cmd(Command::new("ip")
            .args(["netns", "exec", ns, &backend.binary(v6)])
            .args(rule.split_whitespace()))
        .with_context(|| format!("loading `{rule}`"))?;
    }
    Ok(())
}

/// Adds `addrs` to the `hacker` list of namespace `ns`, as a ban would.
pub fn ban(ns: &str, addrs: &[String]) -> Result<()> {
    let script: String = addrs
        .iter()
        .map(|a| format!("echo +{a} > /proc/net/xt_recent/hacker\n"))
        .collect();
    cmd(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &script])).map(drop)
}

/// Packet counters of the INPUT chain.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Packets that met the chain's DROP policy.
    pub policy_drops: u64,
    /// (rule as `iptables-save` prints it, packets) in chain order.
    pub rules: Vec<(String, u64)>,
}

impl Counters {
    pub fn read(ns: &str, backend: Backend, v6: bool) -> Result<Counters> {
        let text = cmd(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            &backend.save(v6),
            "-c",
            "-t",
            "filter",
        ]))?;
        parse_save(&text)
    }

    /// Packets dropped by a rule or by the policy.
    pub fn dropped(&self) -> u64 {
        self.policy_drops
            + self
                .rules
                .iter()
                .filter(|(r, _)| r.ends_with("-j DROP"))
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// Packets a rule accepted.
    pub fn accepted(&self) -> u64 {
        self.rules
            .iter()
            .filter(|(r, _)| r.ends_with("-j ACCEPT"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Counters that grew from `before` to `self`.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            policy_drops: self.policy_drops - before.policy_drops,
            rules: self
                .rules
                .iter()
                .zip(&before.rules)
                .map(|((r, a), (_, b))| (r.clone(), a - b))
                .collect(),
        }
    }
}

/// Parses the filter table of `iptables-save -c`.
fn parse_save(text: &str) -> Result<Counters> {
    let mut c = Counters::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(":INPUT ") {
            let (policy, counts) = rest.split_once(' ').context("policy line")?;
            if policy == "DROP" {
                c.policy_drops = packets(counts)?;
            }
        } else if let Some(rest) = line.strip_prefix('[') {
            let (counts, rule) = rest.split_once("] ").context("rule line")?;
            if rule.starts_with("-A INPUT ") {
                c.rules
                    .push((rule.to_string(), packets(&format!("[{counts}]"))?));
            }
        }
    }
    if c.rules.is_empty() {
        bail!("iptables-save printed no INPUT rule:\n{text}");
    }
    Ok(c)
}

/// `[packets:bytes]` -> packets.
fn packets(counts: &str) -> Result<u64> {
    counts
        .trim()
        .trim_start_matches('[')
        .split(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("bad counters {counts}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_output_is_parsed() {
        let c = parse_save(
            "*filter\n:INPUT DROP [5:200]\n:FORWARD ACCEPT [0:0]\n\
             [3:120] -A INPUT -p tcp -m tcp --dport 22 -j DROP\n\
             [2:80] -A INPUT -i x -p tcp -j ACCEPT\n[9:1] -A INPUT -m recent --remove --name knock1\nCOMMIT\n",
        )
        .unwrap();
        assert_eq!(c.policy_drops, 5);
        assert_eq!(c.dropped(), 8);
        assert_eq!(c.accepted(), 2);
        assert_eq!(c.rules.len(), 3);
    }

    #[test]
    fn both_rule_sets_drop_by_policy_and_protect_port_22() {
        for set in [Rules::Ordered, Rules::Article] {
            let r = rules(set, "eth0");
            assert_eq!(r[0], "-P INPUT DROP");
            assert_eq!(r.last().unwrap(), "-A INPUT -p tcp --dport 22 -j DROP");
        }
    }
}
