//! A Prometheus text endpoint for `iplock run --metrics`. A scrape reads
//! nothing whose size grows with the filter's state: the counters, the
//! interfaces, and the counts of sources and bans the sweep last made.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::daemon::{Stop, stopped};
use crate::error::{Context as _, Result, input, quote};
use crate::kernel::decisions::Decisions;
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::status::{self, InterfaceStatus};
use crate::kernel::sweep::Live;
use iplock_common::state::{CrowdsecStats, ORIGINS, origin_name};

/// Default port when only an address or nothing but a port is given.
pub const DEFAULT_PORT: u16 = 9477;

/// How long a client may take to send its request head: a scraper sends
/// it at once, a client trickling it holds a connection for no longer.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest request head buffered, hyper's smallest: a GET needs far less.
const MAX_HEAD_BYTES: usize = 8192;
/// Clients served at once; more wait in the listen backlog until one
/// finishes or times out, so the memory a flood of clients holds is bounded.
const MAX_CLIENTS: usize = 64;
/// Pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Parses `ADDR:PORT`, `ADDR` or `PORT`; the address defaults to loopback
/// because counters tell an attacker what the filter has seen.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    input(format!(
        "{} is not a metrics address like 127.0.0.1:9477",
        quote(s)
    ))
}

/// What a scrape shows. Each part has a size that does not grow with
/// the maps: the counters (a fixed array), the interfaces (at most
/// MAX_IFACES) and the counts of the last sweep.
pub struct Snapshot {
    pub counters: BTreeMap<&'static str, u64>,
    /// `iplock run`'s SPA verdicts (a fixed set of reasons).
    pub spa: crate::kernel::spa::SpaCounters,
    pub interfaces: Vec<InterfaceStatus>,
    pub live: Live,
    /// The daemon's CrowdSec record, when it runs with `[crowdsec]`.
    pub crowdsec: Option<CrowdsecStats>,
}

impl Snapshot {
    pub fn read(dir: &PinDir, live: Live) -> Result<Snapshot> {
        let maps = Maps::open(dir)?;
        Ok(Snapshot {
            counters: status::counters(&maps)?,
            spa: crate::kernel::spa::counters(&maps)?,
            interfaces: status::interfaces(&maps)?,
            live,
            crowdsec: Decisions::open(dir)
                .and_then(|d| d.stats())
                .ok()
                .filter(|s| s.started_unix != 0),
        })
    }
}

type Labels = Vec<(&'static str, String)>;

/// The metrics of a snapshot, in the Prometheus text format (0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("iplock");
    let packets = Family::<Labels, Counter>::default();
    for (name, n) in &s.counters {
        if *name != "bans_added" {
            packets
                .get_or_create(&vec![("verdict", name.to_string())])
                .inc_by(*n);
        }
    }
    r.register(
        "packets",
        "Packets the filter decided on, by verdict",
        packets,
    );
    let count = |name: &str| s.counters.get(name).copied().unwrap_or(0);
    r.register(
        "door_opens",
        "Knock sequences completed",
        ConstCounter::new(count("door_opened")),
    );
    r.register(
        "bans",
        "Bans the filter imposed",
        ConstCounter::new(count("bans_added")),
    );
    r.register(
        "spa_accepted",
        "SPA packets that verified and opened a door",
        ConstCounter::new(s.spa.accepted),
    );
    let refused = Family::<Labels, Counter>::default();
    for (reason, n) in &s.spa.refused {
        refused
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(*n);
    }
    r.register("spa_refused", "SPA packets refused, by reason", refused);
    r.register(
        "sources",
        "Sources knocking or with an open door, as counted at the last sweep",
        ConstGauge::new(s.live.sources as i64),
    );
    r.register(
        "bans_active",
        "Bans in force, as counted at the last sweep",
        ConstGauge::new(s.live.bans as i64),
    );
    r.register(
        "build",
        "The iplock that runs the filter",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
    );
    if let Some(c) = &s.crowdsec {
        let decisions = Family::<Labels, Gauge>::default();
        for (i, origin) in ORIGINS.iter().enumerate() {
            decisions
                .get_or_create(&vec![("origin", origin_name(*origin).to_string())])
                .set(s.live.decisions[i] as i64);
        }
        r.register(
            "crowdsec_decisions",
            "CrowdSec decisions in force, by origin, as counted at the last sweep",
            decisions,
        );
        r.register(
            "crowdsec_pulls",
            "Successful pulls of CrowdSec decisions",
            ConstCounter::new(c.pulls),
        );
        r.register(
            "crowdsec_pull_errors",
            "Failed pulls of CrowdSec decisions",
            ConstCounter::new(c.pull_errors),
        );
        r.register(
            "crowdsec_last_pull_timestamp_seconds",
            "Unix time of the last successful pull (0: none yet)",
            ConstGauge::new(c.last_pull_unix as i64),
        );
        r.register(
            "crowdsec_pushed",
            "Bans pushed to CrowdSec as alerts",
            ConstCounter::new(c.pushed),
        );
        r.register(
            "crowdsec_push_errors",
            "Failed pushes of bans to CrowdSec",
            ConstCounter::new(c.push_errors),
        );
    }
    let interfaces = Family::<Labels, Gauge>::default();
    for i in &s.interfaces {
        interfaces
            .get_or_create(&vec![
                ("name", i.name.clone()),
                ("mode", i.mode.to_string()),
            ])
            .set(1);
    }
    r.register(
        "interface_info",
        "An interface the filter is attached to, and its XDP mode (native or skb)",
        interfaces,
    );
    let mut text = String::new();
    prometheus_text::encode(&mut text, &r).expect("writing to a String does not fail");
    text
}

fn respond(dir: &PinDir, live: Live, path: &str) -> Response<Full<Bytes>> {
    let (code, body) = if path == "/metrics" {
        match Snapshot::read(dir, live) {
            Ok(s) => (StatusCode::OK, render(&s)),
            Err(e) => {
                log::error!("a scrape failed: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
            }
        }
    } else {
        (StatusCode::NOT_FOUND, "try /metrics\n".to_string())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    response
}

/// Answers one client: one request, then the connection closes. The
/// bounds keep a client from holding memory or the endpoint: a request
/// head larger than hyper's smallest buffer is refused, and one not
/// complete within the read timeout ends the connection.
async fn answer(stream: TcpStream, dir: PinDir, live: watch::Receiver<Live>) {
    let service = service_fn(move |req: Request<Incoming>| {
        let response = respond(&dir, *live.borrow(), req.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false)
        // Header names as the endpoint always wrote them (Content-Type).
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Listens on `addr`; needs the runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener =
        std::net::TcpListener::bind(addr).context(|| format!("listening for metrics on {addr}"))?;
    listener
        .set_nonblocking(true)
        .context(|| "configuring the metrics listener".into())?;
    TcpListener::from_std(listener).context(|| "configuring the metrics listener".into())
}

/// Serves the endpoint on `listener` until `stop`, each client in a task
/// of its own so a slow one delays nobody; at the stop the clients still
/// connected are dropped at once.
pub async fn serve(
    listener: TcpListener,
    dir: PinDir,
    live: watch::Receiver<Live>,
    mut stop: Stop,
) {
    if let Ok(addr) = listener.local_addr() {
        log::info!("serving metrics on http://{addr}/metrics");
    }
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept(), if clients.len() < MAX_CLIENTS => match accepted {
                Ok((stream, _)) => {
                    clients.spawn(answer(stream, dir.clone(), live.clone()));
                }
                // Out of descriptors, say: retrying at once would spin.
                Err(e) => {
                    log::warn!("accepting a metrics client failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_metric_names_of_before_with_build_and_interfaces() {
        let snapshot = Snapshot {
            counters: [("door_passed", 3), ("door_opened", 2), ("bans_added", 1)]
                .into_iter()
                .collect(),
            spa: crate::kernel::spa::SpaCounters {
                accepted: 6,
                refused: [("replay", 7)].into_iter().collect(),
            },
            interfaces: vec![InterfaceStatus {
                name: "eth0".into(),
                ifindex: 2,
                mode: "native",
                present: true,
            }],
            live: Live {
                sources: 5,
                bans: 4,
                ..Live::default()
            },
            crowdsec: None,
        };
        let text = render(&snapshot);
        // A family's samples come in no particular order.
        let mut samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        samples.sort_unstable();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            samples,
            [
                "iplock_bans_active 4",
                "iplock_bans_total 1",
                &format!("iplock_build_info{{version=\"{version}\"}} 1"),
                "iplock_door_opens_total 2",
                "iplock_interface_info{name=\"eth0\",mode=\"native\"} 1",
                "iplock_packets_total{verdict=\"door_opened\"} 2",
                "iplock_packets_total{verdict=\"door_passed\"} 3",
                "iplock_sources 5",
                "iplock_spa_accepted_total 6",
                "iplock_spa_refused_total{reason=\"replay\"} 7",
            ],
            "{text}"
        );
        assert!(
            text.contains("# TYPE iplock_packets_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE iplock_sources gauge\n"), "{text}");
    }

    #[test]
    fn a_huge_address_is_quoted_short() {
        let err = parse_addr(&"x".repeat(100_000)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().len() < 200, "{err}");
    }
}
