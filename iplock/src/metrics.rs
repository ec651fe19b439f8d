//! A Prometheus text endpoint for `iplock run --metrics`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Context as _, Result, input};
use crate::pin_dir::PinDir;
use crate::status::{self, Status};

/// Default port when only an address or nothing but a port is given.
pub const DEFAULT_PORT: u16 = 9477;

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
        "`{s}` is not a metrics address like 127.0.0.1:9477"
    ))
}

/// The metrics of a status, in the Prometheus text format.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    o.push_str("# HELP iplock_packets_total Packets the filter decided on, by verdict.\n");
    o.push_str("# TYPE iplock_packets_total counter\n");
    for (name, n) in &st.counters {
        if *name != "bans_added" {
            o.push_str(&format!("iplock_packets_total{{verdict=\"{name}\"}} {n}\n"));
        }
    }
    let one = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
        o.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    let count = |name: &str| st.counters.get(name).copied().unwrap_or(0);
    one(
        &mut o,
        "iplock_door_opens_total",
        "counter",
        "Knock sequences completed.",
        count("door_opened"),
    );
    one(
        &mut o,
        "iplock_bans_total",
        "counter",
        "Bans the filter imposed.",
        count("bans_added"),
    );
    one(
        &mut o,
        "iplock_sources",
        "gauge",
        "Sources knocking or with an open door.",
        st.sources.len() as u64,
    );
    one(
        &mut o,
        "iplock_bans_active",
        "gauge",
        "Bans in force.",
        st.bans.len() as u64,
    );
    o
}

fn answer(mut conn: TcpStream, dir: &PinDir) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (code, body) = if path == "/metrics" {
        match status::read(dir) {
            Ok(st) => ("200 OK", render(&st)),
            Err(e) => ("500 Internal Server Error", format!("{e}\n")),
        }
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves the endpoint on a thread until `stop` is set.
pub fn spawn(
    addr: SocketAddr,
    dir: PinDir,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let listener =
        TcpListener::bind(addr).context(|| format!("listening for metrics on {addr}"))?;
    listener
        .set_nonblocking(true)
        .context(|| "configuring the metrics listener".into())?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    answer(conn, &dir);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }))
}
