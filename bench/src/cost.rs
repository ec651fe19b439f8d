//! Part 1: cost per packet of each path through iplock, measured with
//! `BPF_PROG_TEST_RUN` (aya's `TestRun`) beside the empty XDP_PASS and
//! XDP_DROP programs in the same run.

use std::net::IpAddr;

use anyhow::{Context as _, Result, ensure};
use aya::Ebpf;
use aya::programs::{TestRun, TestRunOptions, Xdp};
use iplock_common::addr;
use iplock_common::counters::Counter;
use iplock_common::state::SourceState;
use serde::Serialize;

use crate::filter::{self, Unattached};
use crate::frames::{TCP_SYN, Tcp};
use crate::stats::Summary;
use crate::{XDP_DROP, XDP_PASS, deadline, netns, objects};

/// Program runs per measurement; the kernel reports their mean in whole ns.
pub const REPEAT: u32 = 1_000_000;
/// Measurements per path and program; figures are their median.
pub const RUNS: usize = 5;

/// The one configuration every path is measured with. Both ban triggers are
/// off: a repeated SYN to the protected port (or wrong knock) would ban its
/// source on the first run and take the ban path from then on, and the ban
/// path has its own row. See also [`STEP2_TIMEOUT_NS`].
pub const CONFIG: &str = r#"interfaces = ["lo"]
protect = [22]
knock = "tcp:100,tcp:300,tcp:200"
allow = ["198.51.100.128/25"]
knock_answer = "drop"
[ban]
closed_door = false
wrong_knock = false
"#;

/// The timeout of the second knock step in the kernel's copy of [`CONFIG`]
/// (set after validation: config files give whole milliseconds). TestRun
/// repeats one frame, and a repeated first knock is a retransmit that
/// changes nothing; with this timeout the progress it made has expired by
/// the next run, so every packet restarts the sequence and writes the
/// source's state, as the first knock of a real sequence does. No other
/// path reads a step timeout.
pub const STEP2_TIMEOUT_NS: u64 = 1;

const SERVER_V4: &str = "192.0.2.1";
const SERVER_V6: &str = "2001:db8::1";

/// State a path needs in the maps before it is measured.
#[derive(Clone, Copy, Debug)]
enum Prep {
    None,
    /// The source has completed the sequence; its door is open for an hour.
    Open,
    /// The source (its /64 for IPv6) is banned for an hour.
    Ban,
}

struct PathSpec {
    name: &'static str,
    what: &'static str,
    src: &'static str,
    dport: u16,
    prep: Prep,
    verdict: u32,
    counter: Counter,
    target_ns: f64,
}

const PATHS: [PathSpec; 10] = [
    PathSpec {
        name: "unrelated_v4",
        what: "SYN to an unprotected port (80): passed",
        src: "198.51.100.10",
        dport: 80,
        prep: Prep::None,
        verdict: XDP_PASS,
        counter: Counter::Unrelated,
        target_ns: 15.0,
    },
    PathSpec {
        name: "syn_drop_v4",
        what: "SYN to the protected port, no state: dropped",
        src: "198.51.100.11",
        dport: 22,
        prep: Prep::None,
        verdict: XDP_DROP,
        counter: Counter::DoorClosed,
        target_ns: 10.0,
    },
    PathSpec {
        name: "open_pass_v4",
        what: "SYN to the protected port from an open source: passed",
        src: "198.51.100.12",
        dport: 22,
        prep: Prep::Open,
        verdict: XDP_PASS,
        counter: Counter::DoorPassed,
        target_ns: 15.0,
    },
    PathSpec {
        name: "knock_step0_v4",
        what: "SYN to the first knock port: knock accepted, sequence (re)started, state written every packet",
        src: "198.51.100.13",
        dport: 100,
        prep: Prep::None,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        target_ns: 15.0,
    },
    PathSpec {
        name: "wrong_knock_v4",
        what: "SYN to the third knock port with no progress: wrong knock, dropped (no state to reset)",
        src: "198.51.100.14",
        dport: 200,
        prep: Prep::None,
        verdict: XDP_DROP,
        counter: Counter::WrongKnock,
        target_ns: 15.0,
    },
    PathSpec {
        name: "banned_v4",
        what: "SYN to the protected port from a banned source: dropped",
        src: "198.51.100.15",
        dport: 22,
        prep: Prep::Ban,
        verdict: XDP_DROP,
        counter: Counter::Banned,
        target_ns: 10.0,
    },
    PathSpec {
        name: "allowed_v4",
        what: "SYN to the protected port from the allow list: passed",
        src: "198.51.100.200",
        dport: 22,
        prep: Prep::None,
        verdict: XDP_PASS,
        counter: Counter::Allowed,
        target_ns: 15.0,
    },
    PathSpec {
        name: "syn_drop_v6",
        what: "IPv6 SYN to the protected port, no state: dropped",
        src: "2001:db8:f000::11",
        dport: 22,
        prep: Prep::None,
        verdict: XDP_DROP,
        counter: Counter::DoorClosed,
        target_ns: 10.0,
    },
    PathSpec {
        name: "banned_v6",
        what: "IPv6 SYN from a banned /64: dropped",
        src: "2001:db8:f000:1::15",
        dport: 22,
        prep: Prep::Ban,
        verdict: XDP_DROP,
        counter: Counter::Banned,
        target_ns: 10.0,
    },
    PathSpec {
        name: "knock_step0_v6",
        what: "IPv6 SYN to the first knock port: knock accepted, state written every packet",
        src: "2001:db8:f000::13",
        dport: 100,
        prep: Prep::None,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        target_ns: 15.0,
    },
];

/// The figures of one path, in ns per packet.
#[derive(Clone, Debug, Serialize)]
pub struct PathCost {
    pub name: String,
    pub what: String,
    pub verdict: &'static str,
    /// The iplock counter every measured packet was checked to land in.
    pub counter: &'static str,
    pub iplock_ns: Summary,
    pub empty_pass_ns: Summary,
    pub empty_drop_ns: Summary,
    /// iplock minus the empty program with the same verdict, paired run by run.
    pub over_empty_ns: Summary,
    /// iplock minus the empty XDP_PASS program, paired run by run.
    pub over_empty_pass_ns: Summary,
    pub target_ns: f64,
    /// The median of `over_empty_ns` is within the target.
    pub target_met: bool,
}

/// What one primitive costs on top of the empty program (bench-ebpf's
/// probe programs), for judging what a path can cost at least.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    pub name: &'static str,
    pub what: &'static str,
    pub ns: Summary,
    pub over_empty_ns: Summary,
}

#[derive(Clone, Debug, Serialize)]
pub struct Costs {
    pub repeat: u32,
    pub runs: usize,
    pub config: &'static str,
    pub step2_timeout_ns: u64,
    pub cpu: Option<usize>,
    pub paths: Vec<PathCost>,
    pub references: Vec<Reference>,
}

fn load_empty(object: &[u8], name: &str) -> Result<Ebpf> {
    let mut ebpf = Ebpf::load(object).with_context(|| format!("loading {name}"))?;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .context(name.to_string())?
        .try_into()?;
    prog.load()
        .with_context(|| format!("the kernel refused {name}"))?;
    Ok(ebpf)
}

struct RefSpec {
    name: &'static str,
    what: &'static str,
    prog: &'static str,
    /// Index of the path whose frame it runs on.
    frame: usize,
}

/// Run in this order: the lookup of frame 0's key misses (nothing inserts
/// it), the update inserts frame 1's key and the last lookup finds it.
const REFERENCES: [RefSpec; 4] = [
    RefSpec {
        name: "clock",
        what: "bpf_ktime_get_boot_ns()",
        prog: "probe_clock",
        frame: 0,
    },
    RefSpec {
        name: "lru_lookup_miss",
        what: "LRU hash lookup of a 16-byte key, not found (65,536 entries)",
        prog: "probe_lookup",
        frame: 0,
    },
    RefSpec {
        name: "lru_update",
        what: "LRU hash update of an existing 16-byte key",
        prog: "probe_update",
        frame: 1,
    },
    RefSpec {
        name: "lru_lookup_hit",
        what: "LRU hash lookup of a 16-byte key, found",
        prog: "probe_lookup",
        frame: 1,
    },
];

fn load_probes() -> Result<Ebpf> {
    let mut ebpf = Ebpf::load(objects::PROBE).context("loading the probe object")?;
    for r in &REFERENCES {
        let prog: &mut Xdp = ebpf.program_mut(r.prog).context(r.prog)?.try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("the kernel refused {}", r.prog))?;
        }
    }
    Ok(ebpf)
}

fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    Ok(ebpf.program(name).context(name.to_string())?.try_into()?)
}

/// One TestRun of `REPEAT` packets: the kernel's mean ns per run.
fn time(prog: &Xdp, frame: &[u8], verdict: u32) -> Result<f64> {
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat: REPEAT,
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "the program returned {} instead of {verdict}",
        r.return_value
    );
    Ok(r.duration.as_nanos() as f64)
}

fn frame(p: &PathSpec) -> Result<Vec<u8>> {
    let src: IpAddr = p.src.parse()?;
    let dst: IpAddr = if src.is_ipv4() { SERVER_V4 } else { SERVER_V6 }.parse()?;
    Ok(Tcp {
        src_mac: [0x02, 0, 0, 0, 0, 2],
        dst_mac: [0x02, 0, 0, 0, 0, 1],
        src,
        dst,
        sport: 40000,
        dport: p.dport,
        seq: 1,
        flags: TCP_SYN,
    }
    .frame())
}

/// Runs part 1 on the calling thread, pinned to `cpu` when given.
pub fn run(cpu: Option<usize>) -> Result<Costs> {
    if let Some(cpu) = cpu {
        netns::pin_to_cpu(0, cpu)?;
    }
    let settings = filter::settings(CONFIG)?;
    let mut config = settings.to_kernel();
    config.steps[1].timeout_ns = STEP2_TIMEOUT_NS;
    let mut iplock = Unattached::load(&settings, config)?;
    let pass = load_empty(objects::PASS, "bench_pass")?;
    let drop = load_empty(objects::DROP, "bench_drop")?;
    let probes = load_probes()?;
    let now = iplock::system::clock::boot_ns();
    let hour = 3_600_000_000_000u64;
    let frames: Vec<Vec<u8>> = PATHS.iter().map(frame).collect::<Result<_>>()?;
    for p in &PATHS {
        let ip: IpAddr = p.src.parse()?;
        match p.prep {
            Prep::None => {}
            Prep::Open => {
                let state = SourceState {
                    step: 3,
                    last_knock_ns: now,
                    open_until_ns: now + hour,
                    ..SourceState::default()
                };
                iplock.maps.sources.insert(addr::from_ip(ip), state, 0)?;
            }
            Prep::Ban => filter::ban(&mut iplock.maps, ip, settings.ban.ipv6_prefix, 3600)?,
        }
    }

    let n = PATHS.len();
    let (mut ipl, mut ep, mut ed) = (vec![vec![]; n], vec![vec![]; n], vec![vec![]; n]);
    let mut refs = vec![vec![]; REFERENCES.len()];
    let mut ref_empty = vec![];
    for _ in 0..RUNS {
        deadline::check("the next cost run")?;
        // A key never inserted (the first path's frame) misses; the second
        // path's key is inserted by probe_update just before it is looked up.
        ref_empty.push(time(xdp(&pass, "bench_pass")?, &frames[0], XDP_PASS)?);
        for (r, (prog, frame)) in refs
            .iter_mut()
            .zip(REFERENCES.iter().map(|r| (r.prog, r.frame)))
        {
            r.push(time(xdp(&probes, prog)?, &frames[frame], XDP_PASS)?);
        }
        for (i, p) in PATHS.iter().enumerate() {
            ep[i].push(time(xdp(&pass, "bench_pass")?, &frames[i], XDP_PASS)?);
            ed[i].push(time(xdp(&drop, "bench_drop")?, &frames[i], XDP_DROP)?);
            let before = filter::counters(&iplock.maps)?;
            ipl[i].push(
                time(iplock.prog()?, &frames[i], p.verdict)
                    .with_context(|| format!("path {}", p.name))?,
            );
            let after = filter::counters(&iplock.maps)?;
            check_counters(p, &before, &after)?;
        }
    }

    let paths = PATHS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let same = if p.verdict == XDP_PASS {
                &ep[i]
            } else {
                &ed[i]
            };
            let over: Vec<f64> = ipl[i].iter().zip(same).map(|(a, b)| a - b).collect();
            let over_pass: Vec<f64> = ipl[i].iter().zip(&ep[i]).map(|(a, b)| a - b).collect();
            let over_empty_ns = Summary::of(&over);
            PathCost {
                name: p.name.into(),
                what: p.what.into(),
                verdict: if p.verdict == XDP_PASS {
                    "pass"
                } else {
                    "drop"
                },
                counter: p.counter.name(),
                iplock_ns: Summary::of(&ipl[i]),
                empty_pass_ns: Summary::of(&ep[i]),
                empty_drop_ns: Summary::of(&ed[i]),
                target_met: over_empty_ns.median <= p.target_ns,
                over_empty_ns,
                over_empty_pass_ns: Summary::of(&over_pass),
                target_ns: p.target_ns,
            }
        })
        .collect();
    let references = REFERENCES
        .iter()
        .zip(&refs)
        .map(|(r, ns)| Reference {
            name: r.name,
            what: r.what,
            ns: Summary::of(ns),
            over_empty_ns: Summary::of(
                &ns.iter()
                    .zip(&ref_empty)
                    .map(|(a, b)| a - b)
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    Ok(Costs {
        repeat: REPEAT,
        runs: RUNS,
        config: CONFIG,
        step2_timeout_ns: STEP2_TIMEOUT_NS,
        cpu,
        paths,
        references,
    })
}

/// Every one of the `REPEAT` packets must have taken the path being named:
/// its verdict counter grew by exactly `REPEAT` and no other did.
fn check_counters(p: &PathSpec, before: &[u64], after: &[u64]) -> Result<()> {
    for c in Counter::ALL {
        let grew = after[c as usize] - before[c as usize];
        let want = if c == p.counter { u64::from(REPEAT) } else { 0 };
        ensure!(
            grew == want,
            "path {}: counter {} grew by {grew}, expected {want}: the packets did not all take the path",
            p.name,
            c.name()
        );
    }
    Ok(())
}
