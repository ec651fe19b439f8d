//! Part 1: cost per packet of each path through iplock, measured with
//! `BPF_PROG_TEST_RUN` (aya's `TestRun`) beside the empty XDP_PASS and
//! XDP_DROP programs in the same run.

use std::net::IpAddr;

use anyhow::{Context as _, Result, ensure};
use aya::Ebpf;
use aya::maps::{Array, ProgramArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use iplock::system::clock;
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
/// path has its own row. Knocks are dropped (`knock_answer = "drop"`, the
/// mode the knock-flood target is for); the map work is the same either way.
pub const CONFIG: &str = r#"interfaces = ["lo"]
protect = [22]
knock = "tcp:100,tcp:300,tcp:200"
knock_answer = "drop"
allow = ["198.51.100.128/25"]
[ban]
closed_door = false
wrong_knock = false
"#;

/// Runs (each from a source of its own) per chained measurement of a
/// knock path: see [`How::Chained`]. Fewer than the source map holds, so
/// no insert evicts.
pub const BATCH: usize = 16_384;

const SERVER_V4: &str = "192.0.2.1";
const SERVER_V6: &str = "2001:db8::1";

/// State a path needs in the maps before it is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prep {
    None,
    /// The source has completed the sequence; its door is open for an hour.
    Open,
    /// The source (its /64 for IPv6) is banned for an hour.
    Ban,
    /// The source has knocked the first step just now.
    Step1,
}

/// How a path is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// One frame run `REPEAT` times: the path changes nothing that the next
    /// run of the same frame would see.
    Repeated,
    /// `BATCH` runs of one TestRun, each from a new source: bench-ebpf's
    /// chain program writes source `n` of the path's range into the frame
    /// and tail-calls the program measured (see bench-ebpf/src/chain.rs).
    /// A knock changes its source's state, so a repeated frame from one
    /// source would measure a retransmit. The empty programs and the
    /// reference are chained the same way, so the chain cancels out.
    Chained,
}

struct PathSpec {
    name: &'static str,
    what: &'static str,
    src: &'static str,
    dport: u16,
    prep: Prep,
    how: How,
    verdict: u32,
    counter: Counter,
    /// The same-work reference program (bench-ebpf/src/refs.rs).
    reference: &'static str,
    /// The map operations the reference does.
    reference_does: &'static str,
}

/// The most iplock over the empty program may cost, as a multiple of its
/// reference over the empty program (issue 12).
pub const TARGET_RATIO: f64 = 1.2;

const PATHS: [PathSpec; 12] = [
    PathSpec {
        name: "unrelated_v4",
        what: "SYN to an unprotected port (80): passed",
        src: "198.51.100.10",
        dport: 80,
        prep: Prep::None,
        how: How::Repeated,
        verdict: XDP_PASS,
        counter: Counter::Unrelated,
        reference: "ref_unrelated",
        reference_does: "ban miss, source miss, counter",
    },
    PathSpec {
        name: "syn_drop_v4",
        what: "SYN to the protected port, no state: dropped",
        src: "198.51.100.11",
        dport: 22,
        prep: Prep::None,
        how: How::Repeated,
        verdict: XDP_DROP,
        counter: Counter::DoorClosed,
        reference: "ref_closed",
        reference_does: "ban miss, knock-ban miss, source miss, allow miss, counter",
    },
    PathSpec {
        name: "open_pass_v4",
        what: "SYN to the protected port from an open source: passed",
        src: "198.51.100.12",
        dport: 22,
        prep: Prep::Open,
        how: How::Repeated,
        verdict: XDP_PASS,
        counter: Counter::DoorPassed,
        reference: "ref_open",
        reference_does: "ban miss, knock-ban miss, source hit, counter",
    },
    PathSpec {
        name: "knock_step0_v4",
        what: "SYN to the first knock port from a new source: sequence started, entry inserted",
        src: "10.64.0.0",
        dport: 100,
        prep: Prep::None,
        how: How::Chained,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        reference: "ref_knock_new",
        reference_does: "ban miss, knock-ban miss, source miss, allow miss, source insert, counter",
    },
    PathSpec {
        name: "knock_next_step_v4",
        what: "SYN to the second knock port from a source at step 1: advanced, entry written",
        src: "10.96.0.0",
        dport: 300,
        prep: Prep::Step1,
        how: How::Chained,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        reference: "ref_knock_next",
        reference_does: "ban miss, knock-ban miss, source hit, allow miss, in-place write, counter",
    },
    PathSpec {
        name: "wrong_knock_v4",
        what: "SYN to the third knock port with no progress: wrong knock, dropped (no state to reset)",
        src: "198.51.100.14",
        dport: 200,
        prep: Prep::None,
        how: How::Repeated,
        verdict: XDP_DROP,
        counter: Counter::WrongKnock,
        reference: "ref_wrong_knock",
        reference_does: "ban miss, knock-ban miss, source miss, allow miss, event reserved and submitted, counter",
    },
    PathSpec {
        name: "banned_v4",
        what: "SYN to the protected port from a banned source: dropped",
        src: "198.51.100.15",
        dport: 22,
        prep: Prep::Ban,
        how: How::Repeated,
        verdict: XDP_DROP,
        counter: Counter::Banned,
        reference: "ref_banned",
        reference_does: "ban hit, allow miss, counter",
    },
    PathSpec {
        name: "allowed_v4",
        what: "SYN to the protected port from the allow list: passed",
        src: "198.51.100.200",
        dport: 22,
        prep: Prep::None,
        how: How::Repeated,
        verdict: XDP_PASS,
        counter: Counter::Allowed,
        reference: "ref_allowed",
        reference_does: "ban miss, knock-ban miss, source miss, allow hit, counter",
    },
    PathSpec {
        name: "syn_drop_v6",
        what: "IPv6 SYN to the protected port, no state: dropped",
        src: "2001:db8:f000::11",
        dport: 22,
        prep: Prep::None,
        how: How::Repeated,
        verdict: XDP_DROP,
        counter: Counter::DoorClosed,
        reference: "ref_closed",
        reference_does: "ban miss, knock-ban miss, source miss, allow miss, counter",
    },
    PathSpec {
        name: "banned_v6",
        what: "IPv6 SYN from a banned /64: dropped",
        src: "2001:db8:f000:1::15",
        dport: 22,
        prep: Prep::Ban,
        how: How::Repeated,
        verdict: XDP_DROP,
        counter: Counter::Banned,
        reference: "ref_banned",
        reference_does: "ban hit, allow miss, counter",
    },
    PathSpec {
        name: "knock_step0_v6",
        what: "IPv6 SYN to the first knock port from a new /64: sequence started, entry inserted",
        src: "2001:db8:e000::1",
        dport: 100,
        prep: Prep::None,
        how: How::Chained,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        reference: "ref_knock_new",
        reference_does: "ban miss, knock-ban miss, source miss, allow miss, source insert, counter",
    },
    PathSpec {
        name: "knock_next_step_v6",
        what: "IPv6 SYN to the second knock port from a source at step 1: advanced, entry written",
        src: "2001:db8:d000::1",
        dport: 300,
        prep: Prep::Step1,
        how: How::Chained,
        verdict: XDP_DROP,
        counter: Counter::KnockAdvanced,
        reference: "ref_knock_next",
        reference_does: "ban miss, knock-ban miss, source hit, allow miss, in-place write, counter",
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
    /// `repeated` (one frame, `repeat` runs) or `chained` (`batch` runs
    /// from new sources, one run each).
    pub timed: &'static str,
    pub iplock_ns: Summary,
    pub empty_pass_ns: Summary,
    pub empty_drop_ns: Summary,
    pub reference: &'static str,
    pub reference_does: &'static str,
    pub reference_ns: Summary,
    /// iplock minus the empty program with the same verdict, paired run by run.
    pub over_empty_ns: Summary,
    /// The reference minus the empty XDP_PASS program (it passes), paired.
    pub reference_over_empty_ns: Summary,
    /// `over_empty_ns` / `reference_over_empty_ns`, paired run by run.
    pub ratio: Summary,
    pub target_ratio: f64,
    /// The median ratio is within the target.
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
    pub batch: usize,
    pub runs: usize,
    pub config: &'static str,
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
const REFERENCES: [RefSpec; 6] = [
    RefSpec {
        name: "clock",
        what: "bpf_ktime_get_boot_ns()",
        prog: "probe_clock",
        frame: 0,
    },
    RefSpec {
        name: "clock_coarse",
        what: "bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE)",
        prog: "probe_clock_coarse",
        frame: 0,
    },
    RefSpec {
        name: "jiffies",
        what: "bpf_jiffies64() (the verifier inlines it: iplock reads the coarse clock once a tick per CPU)",
        prog: "probe_jiffies",
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

/// One TestRun of `repeat` packets: the kernel's mean ns per run.
fn time_n(prog: &Xdp, frame: &[u8], verdict: u32, repeat: u32) -> Result<f64> {
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "the program returned {} instead of {verdict}",
        r.return_value
    );
    Ok(r.duration.as_nanos() as f64)
}

fn time(prog: &Xdp, frame: &[u8], verdict: u32) -> Result<f64> {
    time_n(prog, frame, verdict, REPEAT)
}

fn tcp_frame(src: IpAddr, dport: u16) -> Result<Vec<u8>> {
    let dst: IpAddr = if src.is_ipv4() { SERVER_V4 } else { SERVER_V6 }.parse()?;
    Ok(Tcp {
        src_mac: [0x02, 0, 0, 0, 0, 2],
        dst_mac: [0x02, 0, 0, 0, 0, 1],
        src,
        dst,
        sport: 40000,
        dport,
        seq: 1,
        flags: TCP_SYN,
    }
    .frame())
}

fn frame(p: &PathSpec) -> Result<Vec<u8>> {
    tcp_frame(p.src.parse()?, p.dport)
}

/// The address word a chained path's sources count up in, which
/// bench-ebpf's chain program writes: the whole IPv4 address, bytes 4..8
/// of an IPv6 one (a new /64 each).
fn source_word(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            u32::from_be_bytes([o[4], o[5], o[6], o[7]])
        }
    }
}

/// Source `n` of a chained path's range: `base` with `n` added to its
/// [`source_word`].
fn nth_source(base: IpAddr, n: u32) -> IpAddr {
    let word = source_word(base) + n;
    match base {
        IpAddr::V4(_) => IpAddr::V4(word.into()),
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[4..8].copy_from_slice(&word.to_be_bytes());
            IpAddr::V6(o.into())
        }
    }
}

/// Prepares a path's state for the source `ip`.
fn prep(iplock: &mut Unattached, p: &PathSpec, ip: IpAddr, prefix_v6: u32) -> Result<()> {
    let now = clock::now_ns();
    let hour = 3_600_000_000_000u64;
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
        Prep::Step1 => {
            let state = SourceState {
                step: 1,
                last_knock_ns: now,
                ..SourceState::default()
            };
            iplock.maps.sources.insert(addr::from_ip(ip), state, 0)?;
        }
        Prep::Ban => filter::ban(&mut iplock.maps, ip, prefix_v6, 3600)?,
    }
    Ok(())
}

/// The four figures of one run of one path: empty pass, empty drop,
/// iplock, reference.
type Run = [f64; 4];

struct Programs<'a> {
    pass: &'a Xdp,
    drop: &'a Xdp,
    refs: &'a Ebpf,
}

fn run_repeated(
    iplock: &Unattached,
    progs: &Programs<'_>,
    p: &PathSpec,
    frame: &[u8],
) -> Result<Run> {
    let pass = time(progs.pass, frame, XDP_PASS)?;
    let drop = time(progs.drop, frame, XDP_DROP)?;
    let before = filter::counters(&iplock.maps)?;
    let ipl = time(iplock.prog()?, frame, p.verdict).with_context(|| format!("path {}", p.name))?;
    let after = filter::counters(&iplock.maps)?;
    check_counters(p, &before, &after, u64::from(REPEAT))?;
    let r = time(xdp(progs.refs, p.reference)?, frame, XDP_PASS)?;
    Ok([pass, drop, ipl, r])
}

/// The chain program and its maps, pointed at one program at a time.
struct Chain {
    ebpf: Ebpf,
}

impl Chain {
    fn load() -> Result<Chain> {
        let mut ebpf = Ebpf::load(objects::CHAIN).context("loading the chain object")?;
        let prog: &mut Xdp = ebpf
            .program_mut("bench_chain")
            .context("bench_chain")?
            .try_into()?;
        prog.load().context("the kernel refused bench_chain")?;
        Ok(Chain { ebpf })
    }

    /// `BATCH` runs of `target` on `frame`, the sources from the one
    /// whose address word is `first` on: the kernel's mean ns per run.
    fn time(&mut self, target: &Xdp, frame: &[u8], verdict: u32, first: u32) -> Result<f64> {
        let fd = target.fd()?.try_clone()?;
        ProgramArray::try_from(self.ebpf.map_mut("CHAIN_NEXT").context("CHAIN_NEXT")?)?
            .set(0, &fd, 0)?;
        Array::<_, u32>::try_from(self.ebpf.map_mut("CHAIN_CONFIG").context("CHAIN_CONFIG")?)?
            .set(0, first, 0)?;
        Array::<_, u64>::try_from(self.ebpf.map_mut("CHAIN_STATE").context("CHAIN_STATE")?)?
            .set(0, 0, 0)?;
        time_n(
            xdp(&self.ebpf, "bench_chain")?,
            frame,
            verdict,
            BATCH as u32,
        )
    }
}

/// One chained measurement: `BATCH` new sources for iplock and as many for
/// the reference (prepared as the path says), the four programs one after
/// the other; the sources are removed again afterwards, so every run
/// starts from the same maps.
fn run_chained(
    iplock: &mut Unattached,
    progs: &Programs<'_>,
    chain: &mut Chain,
    p: &PathSpec,
    run: usize,
    prefix_v6: u32,
) -> Result<Run> {
    let base: IpAddr = p.src.parse()?;
    let first = (run * 2 * BATCH) as u32;
    let ipl_src: Vec<IpAddr> = (0..BATCH as u32)
        .map(|j| nth_source(base, first + j))
        .collect();
    let ref_src: Vec<IpAddr> = (0..BATCH as u32)
        .map(|j| nth_source(base, first + BATCH as u32 + j))
        .collect();
    for ip in ipl_src.iter().chain(&ref_src) {
        prep(iplock, p, *ip, prefix_v6)?;
    }
    let frame = tcp_frame(ipl_src[0], p.dport)?;
    let reference = xdp(progs.refs, p.reference)?;
    let (ipl_first, ref_first) = (source_word(ipl_src[0]), source_word(ref_src[0]));
    let pass = chain.time(progs.pass, &frame, XDP_PASS, ref_first)?;
    let drop = chain.time(progs.drop, &frame, XDP_DROP, ref_first)?;
    let before = filter::counters(&iplock.maps)?;
    let ipl = chain
        .time(iplock.prog()?, &frame, p.verdict, ipl_first)
        .with_context(|| format!("path {}", p.name))?;
    let after = filter::counters(&iplock.maps)?;
    check_counters(p, &before, &after, BATCH as u64)?;
    let r = chain.time(reference, &frame, XDP_PASS, ref_first)?;
    for ip in ipl_src.iter().chain(&ref_src) {
        let key = addr::from_ip(*ip);
        ensure!(
            iplock.maps.sources.get(&key, 0).is_ok(),
            "path {}: {ip} has no source entry after its knock",
            p.name
        );
        iplock.maps.sources.remove(&key)?;
    }
    Ok([pass, drop, ipl, r])
}

/// Runs part 1 on the calling thread, pinned to `cpu` when given.
pub fn run(cpu: Option<usize>) -> Result<Costs> {
    if let Some(cpu) = cpu {
        netns::pin_to_cpu(0, cpu)?;
    }
    let settings = filter::settings(CONFIG)?;
    let config = settings.to_kernel();
    let mut iplock = Unattached::load_pinned(&settings, config)?;
    let names: Vec<&str> = PATHS.iter().map(|p| p.reference).collect();
    let refs = filter::load_refs(
        iplock.pin_dir().context("iplock's maps are not pinned")?,
        XDP_PASS,
        &names,
    )?;
    let pass = load_empty(objects::PASS, "bench_pass")?;
    let drop = load_empty(objects::DROP, "bench_drop")?;
    let probes = load_probes()?;
    let mut chain = Chain::load()?;
    let prefix_v6 = settings.ban.ipv6_prefix;
    let frames: Vec<Vec<u8>> = PATHS.iter().map(frame).collect::<Result<_>>()?;
    for p in PATHS.iter().filter(|p| p.how == How::Repeated) {
        prep(&mut iplock, p, p.src.parse()?, prefix_v6)?;
    }
    let progs = Programs {
        pass: xdp(&pass, "bench_pass")?,
        drop: xdp(&drop, "bench_drop")?,
        refs: &refs,
    };

    let n = PATHS.len();
    let mut runs: Vec<Vec<Run>> = vec![vec![]; n];
    let mut prims = vec![vec![]; REFERENCES.len()];
    let mut prim_empty = vec![];
    for run in 0..RUNS {
        deadline::check("the next cost run")?;
        // A key never inserted (the first path's frame) misses; the second
        // path's key is inserted by probe_update just before it is looked up.
        prim_empty.push(time(progs.pass, &frames[0], XDP_PASS)?);
        for (r, spec) in prims.iter_mut().zip(&REFERENCES) {
            r.push(time(
                xdp(&probes, spec.prog)?,
                &frames[spec.frame],
                XDP_PASS,
            )?);
        }
        for (i, p) in PATHS.iter().enumerate() {
            let r = match p.how {
                How::Repeated => run_repeated(&iplock, &progs, p, &frames[i])?,
                How::Chained => run_chained(&mut iplock, &progs, &mut chain, p, run, prefix_v6)?,
            };
            runs[i].push(r);
        }
    }

    let paths = PATHS
        .iter()
        .zip(&runs)
        .map(|(p, rs)| {
            let col = |k: usize| rs.iter().map(|r| r[k]).collect::<Vec<_>>();
            let same = if p.verdict == XDP_PASS { 0 } else { 1 };
            let over: Vec<f64> = rs.iter().map(|r| r[2] - r[same]).collect();
            let ref_over: Vec<f64> = rs.iter().map(|r| r[3] - r[0]).collect();
            let ratio: Vec<f64> = over
                .iter()
                .zip(&ref_over)
                .map(|(a, b)| a / b.max(1.0))
                .collect();
            let ratio = Summary::of(&ratio);
            PathCost {
                name: p.name.into(),
                what: p.what.into(),
                verdict: if p.verdict == XDP_PASS {
                    "pass"
                } else {
                    "drop"
                },
                counter: p.counter.name(),
                timed: match p.how {
                    How::Repeated => "repeated",
                    How::Chained => "chained",
                },
                iplock_ns: Summary::of(&col(2)),
                empty_pass_ns: Summary::of(&col(0)),
                empty_drop_ns: Summary::of(&col(1)),
                reference: p.reference,
                reference_does: p.reference_does,
                reference_ns: Summary::of(&col(3)),
                over_empty_ns: Summary::of(&over),
                reference_over_empty_ns: Summary::of(&ref_over),
                target_met: ratio.median <= TARGET_RATIO,
                ratio,
                target_ratio: TARGET_RATIO,
            }
        })
        .collect();
    let references = REFERENCES
        .iter()
        .zip(&prims)
        .map(|(r, ns)| Reference {
            name: r.name,
            what: r.what,
            ns: Summary::of(ns),
            over_empty_ns: Summary::of(
                &ns.iter()
                    .zip(&prim_empty)
                    .map(|(a, b)| a - b)
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    Ok(Costs {
        repeat: REPEAT,
        batch: BATCH,
        runs: RUNS,
        config: CONFIG,
        cpu,
        paths,
        references,
    })
}

/// Every one of the `n` packets must have taken the path being named:
/// its verdict counter grew by exactly `n` and no other did.
fn check_counters(p: &PathSpec, before: &[u64], after: &[u64], n: u64) -> Result<()> {
    for c in Counter::ALL {
        let grew = after[c as usize] - before[c as usize];
        let want = if c == p.counter { n } else { 0 };
        ensure!(
            grew == want,
            "path {}: counter {} grew by {grew}, expected {want}: the packets did not all take the path",
            p.name,
            c.name()
        );
    }
    Ok(())
}
