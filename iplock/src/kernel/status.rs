//! What a loaded filter is doing, read from its pinned maps.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use iplock_common::addr;
use iplock_common::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_CROWDSEC, FLAG_KNOCK_CLEARS_BAN,
};
use iplock_common::counters::Counter;
use iplock_common::decide::{knock_deadline, live_progress};
use iplock_common::state::{
    BAN_CROWDSEC, BanEntry, MODE_NATIVE, ORIGINS, SourceState, origin_name,
};
use serde::Serialize;

use crate::config::cidr::Cidr;
use crate::config::duration;
use crate::config::knock::Step;
use crate::error::{Context as _, Result};
use crate::kernel::batch;
use crate::kernel::decisions::{ByOrigin, Decisions, by_origin_names};
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::spa::SpaCounters;
use crate::system::clock::{now_ns, seconds_left};
use crate::system::iface;

#[derive(Debug, Serialize)]
pub struct Status {
    pub pin_dir: String,
    pub interfaces: Vec<InterfaceStatus>,
    pub config: ConfigStatus,
    pub counters: BTreeMap<&'static str, u64>,
    /// What `iplock run` did with the SPA packets the program handed it.
    pub spa: SpaCounters,
    pub sources: Vec<SourceStatus>,
    pub bans: Vec<BanStatus>,
    pub allow: Vec<AllowStatus>,
    /// CrowdSec's decisions and the daemon's pulls, when a filter uses them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crowdsec: Option<CrowdsecStatus>,
}

#[derive(Debug, Serialize)]
pub struct CrowdsecStatus {
    /// Whether the program looks sources up in the decision map.
    pub enforcing: bool,
    /// Decisions in force.
    pub decisions: usize,
    pub by_origin: BTreeMap<&'static str, usize>,
    /// Unix seconds of the last successful pull; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pull_unix: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pull_s_ago: Option<u64>,
    pub pulls: u64,
    pub pull_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_unix: Option<u64>,
    pub pushed: u64,
    pub push_errors: u64,
    /// Decisions left out at the last write for want of room (`maps.decisions`).
    pub not_enforced_full: u64,
}

#[derive(Debug, Serialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    pub mode: &'static str,
    /// False when the interface has gone since the filter was loaded.
    pub present: bool,
}

#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    pub protect: Vec<u16>,
    pub knock: Vec<String>,
    /// Whether the sequence rotates; then `previous_knock` is also accepted.
    pub rotating: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_knock: Vec<String>,
    pub open_window: String,
    pub ban: BanConfigStatus,
}

#[derive(Debug, Serialize)]
pub struct BanConfigStatus {
    pub time: String,
    pub wrong_knock: bool,
    pub closed_door: bool,
    pub trap_ports: Vec<u16>,
    pub knock_clears_ban: bool,
    pub ipv6_prefix: u32,
}

#[derive(Debug, Serialize)]
pub struct SourceStatus {
    pub addr: String,
    /// `knocking` or `open`.
    pub state: &'static str,
    /// Steps completed.
    pub step: u32,
    /// Seconds until the door closes (open) or the progress expires (knocking).
    pub expires_in_s: u64,
}

#[derive(Debug, Serialize)]
pub struct BanStatus {
    /// An address, an IPv6 prefix of a ban, or a CrowdSec range.
    pub addr: String,
    /// `crowdsec` for a decision pulled from CrowdSec.
    pub reason: &'static str,
    /// Where a CrowdSec decision came from (`cscli`, `CAPI`, `iplock`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    pub expires_in_s: u64,
}

#[derive(Debug, Serialize)]
pub struct AllowStatus {
    pub cidr: String,
    /// Seconds until the entry stops matching; absent when permanent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
}

/// Steps as `iplock status` shows them, each with its timeout.
pub fn steps(steps: &[iplock_common::config::Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            Step {
                proto: s.proto,
                port: s.port,
                timeout: Some(Duration::from_nanos(s.timeout_ns)),
            }
            .to_string()
        })
        .collect()
}

fn config_status(c: &Config) -> ConfigStatus {
    let dur = |ns: u64| duration::format(Duration::from_nanos(ns));
    ConfigStatus {
        protect: c.protect[..c.protect_count as usize].to_vec(),
        knock: steps(&c.steps[..c.step_count as usize]),
        rotating: c.seq_id != 0,
        previous_knock: steps(&c.prev_steps[..c.prev_step_count as usize]),
        open_window: dur(c.open_window_ns),
        ban: BanConfigStatus {
            time: dur(c.ban_time_ns),
            wrong_knock: c.has_flag(FLAG_BAN_WRONG_KNOCK),
            closed_door: c.has_flag(FLAG_BAN_CLOSED_DOOR),
            trap_ports: c.traps[..c.trap_count as usize].to_vec(),
            knock_clears_ban: c.has_flag(FLAG_KNOCK_CLEARS_BAN),
            ipv6_prefix: c.ban_prefix_v6,
        },
    }
}

/// Reads the filter pinned in `dir`.
pub fn read(dir: &PinDir) -> Result<Status> {
    let maps = Maps::open(dir)?;
    let cfg = maps.config()?;
    let now = now_ns();

    Ok(Status {
        pin_dir: dir.path().display().to_string(),
        interfaces: interfaces(&maps)?,
        config: config_status(&cfg),
        counters: counters(&maps)?,
        spa: crate::kernel::spa::counters(&maps)?,
        sources: source_list(&maps, &cfg, now)?,
        bans: ban_list(&maps, now)?,
        allow: allow_list(&maps, now)?,
        crowdsec: crowdsec_status(dir, &cfg, now)?,
    })
}

/// The CrowdSec part of the status: None for a filter that never ran
/// with `[crowdsec]` and holds no decision (or was pinned by a build
/// without the decision map).
pub fn crowdsec_status(dir: &PinDir, cfg: &Config, now: u64) -> Result<Option<CrowdsecStatus>> {
    let Ok(d) = Decisions::open(dir) else {
        return Ok(None);
    };
    let stats = d.stats()?;
    let list = d.list(now)?;
    let enforcing = cfg.has_flag(FLAG_CROWDSEC);
    if !enforcing && stats.started_unix == 0 && list.is_empty() {
        return Ok(None);
    }
    let mut counts = ByOrigin::default();
    for (_, e) in &list {
        if let Some(i) = ORIGINS.iter().position(|o| *o == e.origin) {
            counts[i] += 1;
        }
    }
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let when = |t: u64| (t != 0).then_some(t);
    Ok(Some(CrowdsecStatus {
        enforcing,
        decisions: list.len(),
        by_origin: by_origin_names(&counts),
        last_pull_unix: when(stats.last_pull_unix),
        last_pull_s_ago: when(stats.last_pull_unix).map(|t| unix_now.saturating_sub(t)),
        pulls: stats.pulls,
        pull_errors: stats.pull_errors,
        last_error_unix: when(stats.last_error_unix),
        pushed: stats.pushed,
        push_errors: stats.push_errors,
        not_enforced_full: stats.refused_full,
    }))
}

/// CrowdSec decisions in force at `now`, as bans of reason `crowdsec`
/// with their origin; none where the filter has no decision map.
pub fn decision_bans(dir: &PinDir, now: u64) -> Result<Vec<BanStatus>> {
    let Ok(d) = Decisions::open(dir) else {
        return Ok(Vec::new());
    };
    Ok(d.list(now)?
        .into_iter()
        .map(|(c, e)| {
            let full = if c.ip.is_ipv4() { 32 } else { 128 };
            BanStatus {
                addr: if c.len == full {
                    c.ip.to_string()
                } else {
                    c.to_string()
                },
                reason: BanEntry {
                    reason: BAN_CROWDSEC,
                    ..Default::default()
                }
                .reason_name(),
                origin: Some(origin_name(e.origin)),
                expires_in_s: seconds_left(e.until_ns, now),
            }
        })
        .collect())
}

/// Whether a source is `open` or `knocking` at `now`, and until when;
/// None when neither (its progress expired with the door closed).
pub fn source_state(s: &SourceState, cfg: &Config, now: u64) -> Option<(&'static str, u64)> {
    if s.open_until_ns > now {
        return Some(("open", s.open_until_ns));
    }
    let progress = live_progress(s, cfg, now);
    match cfg.sequence(s.seq) {
        Some(seq) if progress > 0 && progress < seq.count => {
            Some(("knocking", knock_deadline(s, &seq)))
        }
        _ => None,
    }
}

/// The interfaces the filter is attached to, and whether each is still there.
pub fn interfaces(maps: &Maps) -> Result<Vec<InterfaceStatus>> {
    let mut interfaces = Vec::new();
    for e in maps.interfaces()? {
        let name = iface::from_fixed(&e.name);
        interfaces.push(InterfaceStatus {
            present: iface::index(&name) == Some(e.ifindex),
            mode: if e.mode == MODE_NATIVE {
                "native"
            } else {
                "skb"
            },
            ifindex: e.ifindex,
            name,
        });
    }
    Ok(interfaces)
}

/// Every counter, summed over the CPUs.
pub fn counters(maps: &Maps) -> Result<BTreeMap<&'static str, u64>> {
    let mut counters = BTreeMap::new();
    for c in Counter::ALL {
        let per_cpu = maps
            .counters
            .get(&(c as u32), 0)
            .context(|| "reading the counters".into())?;
        counters.insert(c.name(), per_cpu.iter().sum());
    }
    Ok(counters)
}

/// Sources knocking or open at `now`, sorted by address.
pub fn source_list(maps: &Maps, cfg: &Config, now: u64) -> Result<Vec<SourceStatus>> {
    let mut sources = Vec::new();
    let entries = batch::entries(&maps.sources).context(|| "reading the source map".into())?;
    for (key, s) in entries {
        let Some((state, until)) = source_state(&s, cfg, now) else {
            continue;
        };
        sources.push(SourceStatus {
            addr: addr::to_ip(&key).to_string(),
            state,
            step: s.step,
            expires_in_s: seconds_left(until, now),
        });
    }
    sources.sort_by(|a, b| a.addr.cmp(&b.addr));
    Ok(sources)
}

/// Bans in force at `now`, sorted by address.
pub fn ban_list(maps: &Maps, now: u64) -> Result<Vec<BanStatus>> {
    let mut bans = Vec::new();
    for map in maps.ban_maps() {
        let entries = batch::entries(map).context(|| "reading the ban map".into())?;
        for (key, b) in entries.into_iter().filter(|(_, b)| b.until_ns > now) {
            bans.push(BanStatus {
                addr: addr::to_ip(&key).to_string(),
                reason: b.reason_name(),
                origin: None,
                expires_in_s: seconds_left(b.until_ns, now),
            });
        }
    }
    bans.sort_by(|a, b| a.addr.cmp(&b.addr));
    Ok(bans)
}

/// Allow-list entries that match at `now`.
pub fn allow_list(maps: &Maps, now: u64) -> Result<Vec<AllowStatus>> {
    let mut allow = Vec::new();
    for kv in maps.active_allow()?.iter() {
        let (key, a) = kv.context(|| "reading the allow list".into())?;
        if a.until_ns != 0 && a.until_ns <= now {
            continue;
        }
        allow.push(AllowStatus {
            cidr: Cidr::from_key(&key).to_string(),
            expires_in_s: (a.until_ns != 0).then(|| seconds_left(a.until_ns, now)),
        });
    }
    Ok(allow)
}

impl fmt::Display for SourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<40} {:<9} step {}  {}s left",
            self.addr, self.state, self.step, self.expires_in_s
        )
    }
}

impl fmt::Display for BanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<40} {:<12} {}s left",
            self.addr, self.reason, self.expires_in_s
        )?;
        match self.origin {
            Some(o) => write!(f, "  (origin {o})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for AllowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expires_in_s {
            Some(s) => write!(f, "{}  {s}s left", self.cidr),
            None => write!(f, "{}", self.cidr),
        }
    }
}

impl Status {
    /// The status as a page of text for a terminal.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let c = &self.config;
        let _ = writeln!(o, "iplock filter pinned at {}", self.pin_dir);
        for i in &self.interfaces {
            let gone = if i.present {
                ""
            } else {
                "  MISSING: the interface is gone"
            };
            let _ = writeln!(o, "  interface {} ({} mode){gone}", i.name, i.mode);
        }
        let ports = |v: &[u16]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
            }
        };
        let _ = writeln!(o, "  protected tcp ports: {}", ports(&c.protect));
        if c.rotating {
            let _ = writeln!(
                o,
                "  knock sequence: {} (rotating; the previous period's {} is accepted too)",
                c.knock.join(","),
                c.previous_knock.join(",")
            );
        } else {
            let _ = writeln!(o, "  knock sequence: {}", c.knock.join(","));
        }
        let _ = writeln!(o, "  open window: {}", c.open_window);
        let b = &c.ban;
        let on = |x: bool| if x { "yes" } else { "no" };
        let _ = writeln!(
            o,
            "  ban: {} (wrong knock: {}, closed door: {}, trap ports: {}, knock clears ban: {}, IPv6 /{})",
            b.time,
            on(b.wrong_knock),
            on(b.closed_door),
            ports(&b.trap_ports),
            on(b.knock_clears_ban),
            b.ipv6_prefix
        );
        let _ = writeln!(o, "counters:");
        for c in Counter::ALL {
            let n = self.counters.get(c.name()).copied().unwrap_or(0);
            let _ = writeln!(o, "  {:<16} {n}", c.name());
        }
        let refused: u64 = self.spa.refused.values().sum();
        let _ = writeln!(o, "  {:<16} {}", "spa_accepted", self.spa.accepted);
        let _ = writeln!(o, "  {:<16} {refused}", "spa_refused");
        for (reason, n) in self.spa.refused.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(o, "    {reason:<22} {n}");
        }
        let _ = writeln!(o, "sources ({}):", self.sources.len());
        for s in &self.sources {
            let _ = writeln!(o, "  {s}");
        }
        let _ = writeln!(o, "bans ({}):", self.bans.len());
        for b in &self.bans {
            let _ = writeln!(o, "  {b}");
        }
        let _ = writeln!(o, "allow ({}):", self.allow.len());
        for a in &self.allow {
            let _ = writeln!(o, "  {a}");
        }
        if let Some(c) = &self.crowdsec {
            let origins = c
                .by_origin
                .iter()
                .map(|(o, n)| format!("{o} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                o,
                "crowdsec ({} decisions{}{}):",
                c.decisions,
                if origins.is_empty() { "" } else { ": " },
                origins
            );
            if !c.enforcing {
                let _ = writeln!(
                    o,
                    "  not enforced: the filter's configuration has no [crowdsec] bouncer key"
                );
            }
            match c.last_pull_s_ago {
                Some(s) => {
                    let _ = writeln!(
                        o,
                        "  last pull {s}s ago; {} pulls, {} failed",
                        c.pulls, c.pull_errors
                    );
                }
                None => {
                    let _ = writeln!(o, "  no pull yet; {} failed", c.pull_errors);
                }
            }
            let _ = writeln!(
                o,
                "  pushed {} ban(s), {} push(es) failed",
                c.pushed, c.push_errors
            );
            if c.not_enforced_full > 0 {
                let _ = writeln!(
                    o,
                    "  {} decision(s) not enforced: the decision map is full (maps.decisions)",
                    c.not_enforced_full
                );
            }
        }
        o
    }
}
