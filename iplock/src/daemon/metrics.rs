//! A Prometheus text endpoint for `iplock run --metrics`.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::error::{Context as _, Result, input, quote};
use crate::kernel::pin_dir::PinDir;
use crate::kernel::status::{self, Status};

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

fn respond(dir: &PinDir, path: &str) -> Response<Full<Bytes>> {
    let (code, body) = if path == "/metrics" {
        match status::read(dir) {
            Ok(st) => (StatusCode::OK, render(&st)),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    } else {
        (StatusCode::NOT_FOUND, "try /metrics\n".to_string())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Answers one client: one request, then the connection closes. The
/// bounds keep a client from holding memory or the endpoint: a request
/// head larger than hyper's smallest buffer is refused, and one not
/// complete within the read timeout ends the connection.
async fn answer(stream: TcpStream, dir: PinDir) {
    let service = service_fn(move |req: Request<Incoming>| {
        let response = respond(&dir, req.uri().path());
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

/// Serves the endpoint on `listener` until `shutdown` completes, each
/// client in a task of its own so a slow one delays nobody; at shutdown
/// the clients still connected are dropped at once.
pub async fn serve(listener: TcpListener, dir: PinDir, shutdown: impl Future<Output = ()>) {
    let mut clients = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept(), if clients.len() < MAX_CLIENTS => match accepted {
                Ok((stream, _)) => {
                    clients.spawn(answer(stream, dir.clone()));
                }
                // Out of descriptors, say: retrying at once would spin.
                Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
            },
        }
    }
}

/// The endpoint running on a thread of its own.
pub struct Server {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Stops serving without waiting for the clients still connected.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Listens on `addr` and serves the endpoint on a thread until stopped.
pub fn spawn(addr: SocketAddr, dir: PinDir) -> Result<Server> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context(|| "starting the metrics runtime".into())?;
    let listener =
        std::net::TcpListener::bind(addr).context(|| format!("listening for metrics on {addr}"))?;
    listener
        .set_nonblocking(true)
        .context(|| "configuring the metrics listener".into())?;
    let listener = {
        let _in_runtime = runtime.enter();
        TcpListener::from_std(listener).context(|| "configuring the metrics listener".into())?
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::spawn(move || {
        runtime.block_on(serve(listener, dir, async {
            let _ = stopped.await;
        }));
    });
    Ok(Server { stop, thread })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_address_is_quoted_short() {
        let err = super::parse_addr(&"x".repeat(100_000)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().len() < 200, "{err}");
    }
}
