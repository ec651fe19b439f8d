//! Sockets: an echo server and client connects and knocks with an explicit
//! source address, so one client namespace can act as several sources.
//!
//! The free functions act in the calling thread's network namespace; run them
//! through [`crate::in_netns`] or the [`crate::NetnsPair`] wrappers.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns::{NetnsPair, SERVER_V4, SERVER_V6};

/// How often server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A TCP server on 192.0.2.1 and 2001:db8::1 in the server namespace that
/// echoes what it reads; it stops and closes every socket on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl EchoServer {
    pub fn start(pair: &NetnsPair, ports: &[u16]) -> EchoServer {
        let listeners = crate::in_netns(&pair.server, || {
            let mut listeners = Vec::new();
            for &port in ports {
                for ip in [SERVER_V4, SERVER_V6] {
                    let addr = SocketAddr::new(ip, port);
                    let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
                    l.set_nonblocking(true).unwrap();
                    listeners.push(l);
                }
            }
            listeners
        });
        let server = EchoServer {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::new(Mutex::new(Vec::new())),
            peers: Arc::new(Mutex::new(Vec::new())),
        };
        for listener in listeners {
            let (stop, threads, peers) = (
                server.stop.clone(),
                server.threads.clone(),
                server.peers.clone(),
            );
            let handle = thread::spawn(move || accept_loop(listener, stop, threads, peers));
            server.threads.lock().unwrap().push(handle);
        }
        server
    }

    /// Source addresses of every connection accepted so far.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Connection threads are added by accept threads, so drain until empty.
        loop {
            let Some(handle) = self.threads.lock().unwrap().pop() else {
                break;
            };
            let _ = handle.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                peers.lock().unwrap().push(peer);
                let stop = stop.clone();
                let handle = thread::spawn(move || echo_loop(stream, stop));
                threads.lock().unwrap().push(handle);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn echo_loop(mut stream: TcpStream, stop: Arc<AtomicBool>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(POLL)).unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Sends one line on an echo connection and panics unless the same line comes
/// back within 2 s.
pub fn echo(stream: &mut TcpStream, line: &str) {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("send {line:?}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = BufReader::new(&*stream);
    let mut got = String::new();
    reader
        .read_line(&mut got)
        .unwrap_or_else(|e| panic!("no echo of {line:?}: {e}"));
    assert_eq!(got.trim_end(), line, "echo mismatch");
}

fn socket(src: IpAddr, ty: Type, proto: Protocol) -> Socket {
    let sock = Socket::new(
        Domain::for_address(SocketAddr::new(src, 0)),
        ty,
        Some(proto),
    )
    .expect("socket");
    sock.bind(&SocketAddr::new(src, 0).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock
}

/// Connects from `src` to `dst:port`; `None` when the handshake times out
/// (what a dropped SYN looks like). Any other failure, such as a refusal,
/// means the SYN got through, and panics.
pub fn try_connect(src: IpAddr, dst: IpAddr, port: u16, timeout: Duration) -> Option<TcpStream> {
    let sock = socket(src, Type::STREAM, Protocol::TCP);
    match sock.connect_timeout(&SocketAddr::new(dst, port).into(), timeout) {
        Ok(()) => Some(sock.into()),
        Err(e) if e.kind() == ErrorKind::TimedOut => None,
        Err(e) => panic!("connect {src} -> {dst}:{port}: {e}"),
    }
}

/// A TCP knock: a non-blocking connect sends one SYN, then the socket is
/// closed, which in SYN_SENT sends nothing more (no RST).
pub fn knock_tcp(src: IpAddr, dst: IpAddr, port: u16) {
    let sock = socket(src, Type::STREAM, Protocol::TCP);
    sock.set_nonblocking(true).unwrap();
    match sock.connect(&SocketAddr::new(dst, port).into()) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        other => panic!("knock tcp {src} -> {dst}:{port}: expected EINPROGRESS, got {other:?}"),
    }
}

/// A UDP knock: one datagram.
pub fn knock_udp(src: IpAddr, dst: IpAddr, port: u16) {
    let sock =
        UdpSocket::bind(SocketAddr::new(src, 0)).unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock.send_to(b"knock", SocketAddr::new(dst, port))
        .unwrap_or_else(|e| panic!("knock udp {src} -> {dst}:{port}: {e}"));
}

/// Knocks `sequence` (`tcp:100,udp:300,...`, the `--knock` syntax without
/// timeouts), 50 ms apart so the knocks arrive in order even when the veth
/// spreads flows over several queues.
pub fn knock_sequence(src: IpAddr, dst: IpAddr, sequence: &str) {
    for (i, step) in sequence.split(',').enumerate() {
        if i > 0 {
            thread::sleep(Duration::from_millis(50));
        }
        let (proto, port) = step
            .split_once(':')
            .unwrap_or_else(|| panic!("bad knock step {step:?}"));
        let port: u16 = port
            .parse()
            .unwrap_or_else(|_| panic!("bad port in {step:?}"));
        match proto {
            "tcp" => knock_tcp(src, dst, port),
            "udp" => knock_udp(src, dst, port),
            _ => panic!("bad protocol in {step:?}"),
        }
    }
}
