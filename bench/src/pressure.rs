//! Part 3: state under pressure. A knock flood from more distinct sources
//! than iplock's source map holds, paced at increasing rates, while a
//! legitimate client knocks the sequence and connects.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use iplock_common::addr;
use iplock_common::names::{MAP_BANS, MAP_SOURCES};
use serde::Serialize;

use crate::deadline;
use crate::filter::{self, Pinned};
use crate::frames::{TCP_SYN, Tcp};
use crate::generator::{Generator, Sources};
use crate::netns::{self, Pair, Veth};
use crate::stats::Summary;

/// Entries of the source map for this part, far fewer than the flood's sources.
pub const MAX_SOURCES: u32 = 4096;
/// The legitimate client waits this long between its knocks and before it
/// connects, as a client across the Internet would wait for round trips.
pub const KNOCK_GAP: Duration = Duration::from_millis(100);
/// Flood rates tried, in distinct-source knocks per second; `None` is as
/// fast as the generator goes.
const RATES: [Option<u32>; 9] = [
    Some(1_000),
    Some(4_000),
    Some(16_000),
    Some(32_000),
    Some(48_000),
    Some(64_000),
    Some(256_000),
    Some(1_000_000),
    None,
];
const TRIALS: usize = 3;
/// Pacing: each tick sends its share of frames in one system call. A
/// live-frames run costs tens of ms of set-up and tear-down whatever its
/// size, so ticks are long; the knock gap spans two.
const TICK: Duration = Duration::from_millis(50);
/// Frames per system call when unpaced.
const UNPACED_CHUNK: u32 = 200_000;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(700);

/// The flood: IPv6 knocks (first knock port) from 2001:db8:f000::/64, a new
/// address for every frame.
const FLOOD_SRC: &str = "2001:db8:f000::";

pub fn config(iface: &str) -> String {
    format!(
        "interfaces = [\"{iface}\"]\nmode = \"native\"\nprotect = [22]\nknock = \"tcp:100,tcp:300,tcp:200\"\n[maps]\nsources = {MAX_SOURCES}\n"
    )
}

#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    pub opened: bool,
    /// Flood frames the server's full receive ring refused meanwhile
    /// (client `tx_queue_0_xdp_xmit_errors`), and packets of the client's
    /// own stack it refused (server `rx_queue_0_drops`): a lost knock is
    /// not an eviction.
    pub ring_full: u64,
    pub stack_drops: u64,
    /// The legitimate source's progress read back after each knock (None:
    /// no entry: evicted, or the knock was lost).
    pub steps_seen: Vec<Option<u32>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RateResult {
    /// Asked-for rate (None: unpaced).
    pub target_pps: Option<u32>,
    /// Rate the flood reached, per trial.
    pub achieved_pps: Summary,
    pub trials: Vec<Trial>,
    pub opened: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pressure {
    pub config: String,
    pub knock_gap_ms: u64,
    pub sources_map_entries: u32,
    pub sources_map_memlock_bytes: u64,
    pub bans_map_memlock_bytes: u64,
    pub rates: Vec<RateResult>,
    /// Highest rate at which every trial opened the door.
    pub all_opened_up_to_pps: Option<f64>,
    /// Lowest rate at which no trial opened the door.
    pub none_opened_from_pps: Option<f64>,
}

pub fn run(generator: &mut Generator, cpu: Option<usize>) -> Result<Pressure> {
    let pair = Pair::create()?;
    let v = pair.veth.clone();
    let cfg = config(&v.server_if);
    let mut pinned = v.in_server(|| Pinned::load(&filter::settings(&cfg)?))?;
    let sources_mem = filter::memlock(&pinned.map_data(MAP_SOURCES)?)?;
    let bans_mem = filter::memlock(&pinned.map_data(MAP_BANS)?)?;

    let stop_listener = AtomicBool::new(false);
    let listener = v.in_server(|| {
        TcpListener::bind((netns::SERVER_V4, 22)).context("listening on the protected port")
    })?;
    listener.set_nonblocking(true)?;
    let template = Tcp {
        src_mac: v.client_mac,
        dst_mac: v.server_mac,
        src: FLOOD_SRC.parse()?,
        dst: netns::SERVER_V6.parse()?,
        sport: 1024,
        dport: 100,
        seq: 0,
        flags: TCP_SYN,
    }
    .frame();
    let flood = Sources {
        base: 0,
        count: u32::MAX,
        ports: 1,
    };
    generator.self_check(&template, flood, 300)?;
    generator.set_sources(flood)?;
    let generator = &*generator;

    let rates = thread::scope(|s| -> Result<Vec<RateResult>> {
        s.spawn(|| accept_until(&listener, &stop_listener));
        let mut rates = Vec::new();
        for target in RATES {
            deadline::check("the next flood rate")?;
            let mut achieved = Vec::new();
            let mut trials = Vec::new();
            for _ in 0..TRIALS {
                forget(&mut pinned, netns::CLIENT_V4.parse()?)?;
                // Fill the map first: the door must survive a full map churning.
                v.in_client(|| {
                    pin(cpu)?;
                    generator.send(&template, v.client_ifindex, 2 * MAX_SOURCES)
                })?;
                let (trial, pps) = trial(generator, &v, &template, &pinned, target, cpu)?;
                achieved.push(pps);
                trials.push(trial);
            }
            let opened = trials.iter().filter(|t| t.opened).count();
            println!(
                "  flood {:>9} knocks/s: door opened {opened}/{TRIALS}",
                target.map_or("max".into(), |r| r.to_string())
            );
            rates.push(RateResult {
                target_pps: target,
                achieved_pps: Summary::of(&achieved),
                trials,
                opened,
            });
        }
        stop_listener.store(true, Ordering::Relaxed);
        Ok(rates)
    })?;
    let all_opened_up_to_pps = rates
        .iter()
        .take_while(|r| r.opened == TRIALS)
        .last()
        .map(|r| r.achieved_pps.median);
    let none_opened_from_pps = rates
        .iter()
        .find(|r| r.opened == 0)
        .map(|r| r.achieved_pps.median);
    Ok(Pressure {
        config: cfg,
        knock_gap_ms: KNOCK_GAP.as_millis() as u64,
        sources_map_entries: MAX_SOURCES,
        sources_map_memlock_bytes: sources_mem,
        bans_map_memlock_bytes: bans_mem,
        rates,
        all_opened_up_to_pps,
        none_opened_from_pps,
    })
}

fn pin(cpu: Option<usize>) -> Result<()> {
    match cpu {
        Some(c) => netns::pin_to_cpu(0, c),
        None => Ok(()),
    }
}

/// Removes the legitimate client's state and ban from an earlier trial.
fn forget(pinned: &mut Pinned, ip: IpAddr) -> Result<()> {
    let key = addr::from_ip(ip);
    let _ = pinned.maps.sources.remove(&key);
    let _ = pinned.maps.bans.remove(&key);
    Ok(())
}

fn accept_until(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => drop(conn),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One legitimate knock sequence and connect in the middle of a flood at
/// `target` knocks per second. Returns the trial and the flood's rate.
fn trial(
    generator: &Generator,
    v: &Veth,
    template: &[u8],
    pinned: &Pinned,
    target: Option<u32>,
    cpu: Option<usize>,
) -> Result<(Trial, f64)> {
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let before = ring_counters(v)?;
    let result = thread::scope(|s| {
        let flood = s.spawn(|| -> Result<f64> {
            netns::enter(&v.client)?;
            pin(cpu)?;
            let start = Instant::now();
            let mut next = start;
            while !stop.load(Ordering::Relaxed) {
                let chunk = match target {
                    Some(r) => (u64::from(r) * TICK.as_micros() as u64 / 1_000_000).max(1) as u32,
                    None => UNPACED_CHUNK,
                };
                generator.send(template, v.client_ifindex, chunk)?;
                sent.fetch_add(u64::from(chunk), Ordering::Relaxed);
                if target.is_some() {
                    next += TICK;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                }
            }
            Ok(sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
        });
        let legit = s.spawn(|| -> Result<(bool, Vec<Option<u32>>)> {
            netns::enter(&v.client)?;
            // On the flood's CPU, so that the server handles its packets
            // there too: its state then competes with the flood's in that
            // CPU's share of the LRU lists (the worst case; on another CPU
            // a source's new entry waits in that CPU's local list, out of
            // the flood's reach).
            pin(cpu)?;
            // Let the flood reach its rate before the first knock.
            thread::sleep(KNOCK_GAP);
            let server: IpAddr = netns::SERVER_V4.parse()?;
            let me = addr::from_ip(netns::CLIENT_V4.parse()?);
            let mut steps_seen = Vec::new();
            for port in crate::iptables::KNOCKS {
                knock(SocketAddr::new(server, port));
                thread::sleep(KNOCK_GAP);
                steps_seen.push(pinned.maps.sources.get(&me, 0).ok().map(|s| s.step));
            }
            let opened =
                TcpStream::connect_timeout(&SocketAddr::new(server, 22), CONNECT_TIMEOUT).is_ok();
            Ok((opened, steps_seen))
        });
        let legit = legit
            .join()
            .map_err(|_| anyhow::anyhow!("the knocking thread panicked"));
        stop.store(true, Ordering::Relaxed);
        let pps = flood
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
        Ok::<_, anyhow::Error>((legit??, pps?))
    });
    let ((opened, steps_seen), pps) = result?;
    let after = ring_counters(v)?;
    Ok((
        Trial {
            opened,
            ring_full: after.0 - before.0,
            stack_drops: after.1 - before.1,
            steps_seen,
        },
        pps,
    ))
}

/// (client tx_queue_0_xdp_xmit_errors, server rx_queue_0_drops).
fn ring_counters(v: &Veth) -> Result<(u64, u64)> {
    let client = v.in_client(|| crate::ethtool::stats(&v.client_if))?;
    let server = v.in_server(|| crate::ethtool::stats(&v.server_if))?;
    let get = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    Ok((
        get(&client, "tx_queue_0_xdp_xmit_errors"),
        get(&server, "rx_queue_0_drops"),
    ))
}

/// Sends one SYN to `to` and gives up at once: a knock.
fn knock(to: SocketAddr) {
    // The SYN leaves with the connect call; the 1 ms timeout closes the
    // socket before any retransmit.
    let _ = TcpStream::connect_timeout(&to, Duration::from_millis(1));
}
