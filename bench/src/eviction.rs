//! Part 5: ban eviction (issue 10). How many spoofed packets, each from a
//! new IPv6 /64, it takes to push one attacker's ban out of its LRU map, run
//! through the unattached program with `BPF_PROG_TEST_RUN`.
//!
//! Wrong-knock bans live in IPLOCK_KNOCK_BANS, every other ban in
//! IPLOCK_BANS. A flood of wrong knocks therefore evicts only wrong-knock
//! bans; a flood of closed-door SYNs (the kind of ban that lands in
//! IPLOCK_BANS) still evicts a closed-door ban, which is what a wrong-knock
//! flood did before the two maps were split.

use std::net::{IpAddr, Ipv6Addr};

use anyhow::{Context as _, Result, ensure};
use aya::maps::{HashMap, MapData};
use aya::programs::{TestRun, TestRunOptions};
use iplock_common::addr::{self, AddrKey};
use iplock_common::counters::{COUNTERS, Counter};
use iplock_common::state::BanEntry;
use serde::Serialize;

use crate::filter::{self, Unattached};
use crate::frames::{TCP_SYN, Tcp};
use crate::stats::Summary;
use crate::{XDP_DROP, XDP_PASS, deadline, netns};

/// Entries of both ban maps for this part: small, so that a run is quick.
pub const BANS: u32 = 4096;
pub const KNOCK_BANS: u32 = 4096;
/// The flood stops when the ban is gone or after this many times the size
/// of the map the ban is in.
pub const BOUND_FACTOR: u64 = 20;
/// Frames sent between two looks at the attacker's ban.
pub const BATCH: u64 = 16;
pub const TRIALS: usize = 3;

const SERVER_V6: &str = "2001:db8::1";
/// The attacker; its ban covers 2001:db8:bad::/64.
const ATTACKER: &str = "2001:db8:bad::1";
/// Flood frame `i` comes from 2001:db8:f000::1 + i << 64: a new /64 each.
const FLOOD_BASE: &str = "2001:db8:f000::1";

const PROTECTED: u16 = 22;
const FIRST_KNOCK: u16 = 100;
/// The third step of the sequence, knocked first: a wrong knock.
const WRONG_KNOCK: u16 = 200;

pub fn config() -> String {
    format!(
        "interfaces = [\"lo\"]\nprotect = [{PROTECTED}]\nknock = \"tcp:{FIRST_KNOCK},tcp:300,tcp:{WRONG_KNOCK}\"\n\
         [ban]\nwrong_knock = true\nclosed_door = true\n[maps]\nbans = {BANS}\nknock_bans = {KNOCK_BANS}\n"
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Which {
    Bans,
    KnockBans,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Bans => "IPLOCK_BANS",
            Which::KnockBans => "IPLOCK_KNOCK_BANS",
        }
    }

    fn map(self, maps: &iplock::kernel::maps::Maps) -> &HashMap<MapData, AddrKey, BanEntry> {
        match self {
            Which::Bans => &maps.bans,
            Which::KnockBans => &maps.knock_bans,
        }
    }

    fn entries(self) -> u32 {
        match self {
            Which::Bans => BANS,
            Which::KnockBans => KNOCK_BANS,
        }
    }
}

/// One kind of packet: a SYN to `dport`, the program's verdict on it from
/// an unbanned source, the counter it lands in and the ban it makes.
#[derive(Clone, Copy)]
struct Kind {
    what: &'static str,
    dport: u16,
    verdict: u32,
    counter: Counter,
    reason: &'static str,
    map: Which,
}

const CLOSED_DOOR: Kind = Kind {
    what: "SYN to the protected port 22 (closed door)",
    dport: PROTECTED,
    verdict: XDP_DROP,
    counter: Counter::DoorClosed,
    reason: "closed_door",
    map: Which::Bans,
};

/// Wrong knocks are answered by the stack (the default knock answer).
const WRONG: Kind = Kind {
    what: "SYN to knock port 200, the third step, as a first knock (wrong knock)",
    dport: WRONG_KNOCK,
    verdict: XDP_PASS,
    counter: Counter::WrongKnock,
    reason: "wrong_knock",
    map: Which::KnockBans,
};

struct Spec {
    name: &'static str,
    /// What the row shows (issue 10's before and after).
    shows: &'static str,
    ban: Kind,
    flood: Kind,
    /// The attacker's next packet after the flood, and what it is for.
    probe_port: u16,
}

const SPECS: [Spec; 3] = [
    Spec {
        name: "wrong_knocks_vs_closed_door_ban",
        shows: "after: a wrong-knock flood against a closed-door ban",
        ban: CLOSED_DOOR,
        flood: WRONG,
        probe_port: PROTECTED,
    },
    Spec {
        name: "closed_door_syns_vs_closed_door_ban",
        shows: "before: a flood of bans that land in the ban's own map (wrong-knock bans did, before the split); still so for closed-door floods",
        ban: CLOSED_DOOR,
        flood: CLOSED_DOOR,
        probe_port: PROTECTED,
    },
    Spec {
        name: "wrong_knocks_vs_wrong_knock_ban",
        shows: "a wrong-knock flood against a wrong-knock ban, in IPLOCK_KNOCK_BANS",
        ban: WRONG,
        flood: WRONG,
        probe_port: FIRST_KNOCK,
    },
];

#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// Flood packets sent when the ban was first seen gone (None: still
    /// there at the bound).
    pub evicted_after: Option<u64>,
    pub sent: u64,
    /// Entries in each ban map after the flood.
    pub bans_entries: u32,
    pub knock_bans_entries: u32,
    /// The counter the attacker's next packet landed in after the flood:
    /// `banned` while the ban holds.
    pub attacker_next_packet: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub shows: &'static str,
    pub ban: &'static str,
    pub ban_made_by: &'static str,
    pub ban_map: &'static str,
    pub ban_map_entries: u32,
    pub flood: &'static str,
    pub flood_bans_land_in: &'static str,
    /// The attacker's packet sent after the flood.
    pub probe: String,
    pub bound_packets: u64,
    pub trials: Vec<Trial>,
    pub evicted_trials: usize,
    /// Over the trials that evicted the ban.
    pub evicted_after_packets: Option<Summary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Eviction {
    /// When and where this part ran (it can be recorded on its own).
    pub run: String,
    pub config: String,
    pub bans_map_entries: u32,
    pub knock_bans_map_entries: u32,
    pub batch: u64,
    pub cpu: Option<usize>,
    pub scenarios: Vec<Scenario>,
}

fn frame(src: IpAddr, dport: u16) -> Result<Vec<u8>> {
    Ok(Tcp {
        src_mac: [0x02, 0, 0, 0, 0, 2],
        dst_mac: [0x02, 0, 0, 0, 0, 1],
        src,
        dst: SERVER_V6.parse()?,
        sport: 40000,
        dport,
        seq: 1,
        flags: TCP_SYN,
    }
    .frame())
}

fn flood_src(i: u64) -> Result<IpAddr> {
    let base: Ipv6Addr = FLOOD_BASE.parse()?;
    Ok(IpAddr::V6(Ipv6Addr::from(
        u128::from(base) + (u128::from(i) << 64),
    )))
}

/// Runs the program once on `frame`; returns its verdict.
fn send(iplock: &Unattached, frame: &[u8]) -> Result<u32> {
    let r = iplock.prog()?.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat: 1,
        ..TestRunOptions::new()
    })?;
    Ok(r.return_value)
}

/// The counters grew by exactly `n` in `counter` and in `bans_added`
/// (when `bans`), and nowhere else.
fn check_counters(
    before: &[u64; COUNTERS as usize],
    after: &[u64; COUNTERS as usize],
    counter: Counter,
    n: u64,
    bans: bool,
    what: &str,
) -> Result<()> {
    for c in Counter::ALL {
        let grew = after[c as usize] - before[c as usize];
        let want = if c == counter || (bans && c == Counter::BansAdded) {
            n
        } else {
            0
        };
        ensure!(
            grew == want,
            "{what}: counter {} grew by {grew}, expected {want}",
            c.name()
        );
    }
    Ok(())
}

fn count(map: &HashMap<MapData, AddrKey, BanEntry>) -> u32 {
    map.keys().filter(Result::is_ok).count() as u32
}

fn trial(spec: &Spec, cfg: &str) -> Result<Trial> {
    let settings = filter::settings(cfg)?;
    let iplock = Unattached::load(&settings, settings.to_kernel())?;
    let maps = &iplock.maps;
    let attacker: IpAddr = ATTACKER.parse()?;
    let key = addr::ban_key(&addr::from_ip(attacker), settings.ban.ipv6_prefix);

    // The attacker's own ban, made by the program.
    let before = filter::counters(maps)?;
    let v = send(&iplock, &frame(attacker, spec.ban.dport)?)?;
    ensure!(
        v == spec.ban.verdict,
        "{}: the attacker's packet got verdict {v}",
        spec.name
    );
    check_counters(
        &before,
        &filter::counters(maps)?,
        spec.ban.counter,
        1,
        true,
        spec.name,
    )?;
    let ban = spec
        .ban
        .map
        .map(maps)
        .get(&key, 0)
        .with_context(|| format!("{}: no ban in {}", spec.name, spec.ban.map.name()))?;
    ensure!(
        ban.reason_name() == spec.ban.reason,
        "{}: the ban's reason is {}",
        spec.name,
        ban.reason_name()
    );

    let bound = BOUND_FACTOR * u64::from(spec.ban.map.entries());
    let mut sent = 0u64;
    let mut evicted_after = None;
    while sent < bound {
        let before = filter::counters(maps)?;
        for _ in 0..BATCH {
            let v = send(&iplock, &frame(flood_src(sent)?, spec.flood.dport)?)?;
            ensure!(
                v == spec.flood.verdict,
                "{}: flood packet {sent} got verdict {v}",
                spec.name
            );
            sent += 1;
        }
        check_counters(
            &before,
            &filter::counters(maps)?,
            spec.flood.counter,
            BATCH,
            true,
            spec.name,
        )?;
        if spec.ban.map.map(maps).get(&key, 0).is_err() {
            evicted_after = Some(sent);
            break;
        }
    }
    let (bans_entries, knock_bans_entries) = (count(&maps.bans), count(&maps.knock_bans));
    // Last, since a lookup by the program marks the ban recently used.
    let before = filter::counters(maps)?;
    send(&iplock, &frame(attacker, spec.probe_port)?)?;
    let after = filter::counters(maps)?;
    let landed = Counter::ALL
        .iter()
        .find(|c| **c != Counter::BansAdded && after[**c as usize] > before[**c as usize])
        .map_or("none", |c| c.name());
    Ok(Trial {
        evicted_after,
        sent,
        bans_entries,
        knock_bans_entries,
        attacker_next_packet: landed,
    })
}

/// Runs part 5 on the calling thread, pinned to `cpu` when given (the
/// kernel's LRU keeps per-CPU lists; one CPU is the flood's worst case).
/// `machine` describes the machine for the run's stamp.
pub fn run(cpu: Option<usize>, machine: &str) -> Result<Eviction> {
    if let Some(cpu) = cpu {
        netns::pin_to_cpu(0, cpu)?;
    }
    let cfg = config();
    let mut scenarios = Vec::new();
    for spec in &SPECS {
        let mut trials = Vec::new();
        for _ in 0..TRIALS {
            deadline::check("the next eviction trial")?;
            trials.push(trial(spec, &cfg)?);
        }
        let evicted: Vec<f64> = trials
            .iter()
            .filter_map(|t| t.evicted_after.map(|n| n as f64))
            .collect();
        let s = Scenario {
            name: spec.name,
            shows: spec.shows,
            ban: spec.ban.reason,
            ban_made_by: spec.ban.what,
            ban_map: spec.ban.map.name(),
            ban_map_entries: spec.ban.map.entries(),
            flood: spec.flood.what,
            flood_bans_land_in: spec.flood.map.name(),
            probe: format!("SYN to port {}", spec.probe_port),
            bound_packets: BOUND_FACTOR * u64::from(spec.ban.map.entries()),
            evicted_trials: evicted.len(),
            evicted_after_packets: (!evicted.is_empty()).then(|| Summary::of(&evicted)),
            trials,
        };
        println!(
            "  {}: evicted in {}/{TRIALS} trials{}",
            s.name,
            s.evicted_trials,
            s.evicted_after_packets
                .as_ref()
                .map_or(String::new(), |e| format!(", after {} packets", e.show(0)))
        );
        scenarios.push(s);
    }
    Ok(Eviction {
        run: crate::report::run_stamp(machine),
        config: cfg,
        bans_map_entries: BANS,
        knock_bans_map_entries: KNOCK_BANS,
        batch: BATCH,
        cpu,
        scenarios,
    })
}
