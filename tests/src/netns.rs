//! Two network namespaces joined by a veth pair, and running code inside one.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::net;
use crate::util::{run_bounded, run_ok, unique_id};

/// The server side of the veth, where the filter is attached.
pub const SERVER_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const SERVER_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
/// The client's primary addresses, which tools without a bind option use.
pub const CLIENT_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
pub const CLIENT_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
/// A second client source in the same namespace, to show that state is per
/// source. Same IPv6 /64 as [`CLIENT_V6`] on purpose (bans cover the /64).
pub const OTHER_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
pub const OTHER_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3));

/// Server and client namespaces with a veth pair between them; removing the
/// namespaces on drop also removes the veths and anything attached to them.
pub struct NetnsPair {
    pub server: String,
    pub client: String,
    /// The server's end of the veth (in `server`), the interface to filter.
    pub server_if: String,
    pub client_if: String,
}

impl NetnsPair {
    /// Creates the pair with server 192.0.2.1/24 + 2001:db8::1/64, client
    /// 192.0.2.2/24 + 2001:db8::2/64 (primary) and 192.0.2.3 + 2001:db8::3
    /// (secondary), every link up and every address usable at once.
    pub fn new() -> NetnsPair {
        let id = unique_id();
        let pair = NetnsPair {
            server: format!("ipl-s-{id}"),
            client: format!("ipl-c-{id}"),
            // IFNAMSIZ: at most 15 bytes; a pid has at most 7 digits.
            server_if: format!("is{id}"),
            client_if: format!("ic{id}"),
        };
        assert!(pair.server_if.len() <= 15, "interface name too long");
        // From here on, a failure drops `pair` and removes what exists so far.
        for ns in [&pair.server, &pair.client] {
            ip(&["netns", "add", ns]);
            // Addresses must work at once: no duplicate address detection,
            // also for the link-local ones the veths get when they come up.
            run_ok(Command::new("ip").args([
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]));
        }
        pair.create_veth();
        pair
    }

    /// The veth pair as [`NetnsPair::new`] makes it, again: for tests that
    /// delete it to see what the filter does when its interface comes back.
    pub fn recreate_veth(&self) {
        self.create_veth();
    }

    fn create_veth(&self) {
        // Create each end directly in its namespace: the names never appear
        // in the root namespace, where they could collide with anything.
        ip(&[
            "link",
            "add",
            &self.server_if,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &self.client_if,
            "netns",
            &self.client,
        ]);
        let ends = [
            (&self.server, &self.server_if, [SERVER_V4, SERVER_V6]),
            (&self.client, &self.client_if, [CLIENT_V4, CLIENT_V6]),
        ];
        for (ns, dev, addrs) in ends {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            for addr in addrs {
                self.add_addr(ns, dev, addr);
            }
        }
        // Added after the primaries, so they are secondary and never chosen as
        // a default source.
        self.add_client_addr(OTHER_V4);
        self.add_client_addr(OTHER_V6);
    }

    /// One more source address on the client veth (/24 or /64), for tests
    /// that need more sources than the two the pair has.
    pub fn add_client_addr(&self, addr: IpAddr) {
        self.add_addr(&self.client, &self.client_if, addr);
    }

    fn add_addr(&self, ns: &str, dev: &str, addr: IpAddr) {
        let cidr = match addr {
            IpAddr::V4(_) => format!("{addr}/24"),
            IpAddr::V6(_) => format!("{addr}/64"),
        };
        let mut args = vec!["-n", ns, "addr", "add", &cidr, "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        ip(&args);
    }

    /// Routes `block` (a CIDR of addresses added with
    /// [`NetnsPair::add_client_addr`] outside the pair's own subnets) from
    /// the server to the client veth, so the server's answers reach them.
    pub fn route_to_client(&self, block: &str) {
        ip(&[
            "-n",
            &self.server,
            "route",
            "add",
            block,
            "dev",
            &self.server_if,
        ]);
    }

    /// A second veth between this pair's server and `other`'s, with
    /// 10.99.0.1/24 here and 10.99.0.2/24 there (no filter on it): a
    /// service of one server (a CrowdSec Local API) reaches the other.
    /// Removed with the namespaces. Returns both addresses.
    pub fn link_servers(&self, other: &NetnsPair) -> (IpAddr, IpAddr) {
        let id = unique_id();
        let (here, there) = (format!("la{id}"), format!("lb{id}"));
        ip(&[
            "link",
            "add",
            &here,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &there,
            "netns",
            &other.server,
        ]);
        let a = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));
        for (ns, dev, addr) in [(&self.server, &here, a), (&other.server, &there, b)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
        }
        (a, b)
    }

    /// Lifts the server namespace's ICMP rate limits: by default the kernel
    /// sends about one port unreachable a second to a peer, and a test that
    /// counts the answers to UDP datagrams would see silence instead.
    pub fn lift_icmp_rate_limits(&self) {
        run_ok(Command::new("ip").args([
            "netns",
            "exec",
            &self.server,
            "sysctl",
            "-qw",
            "net.ipv4.icmp_ratelimit=0",
            "net.ipv4.icmp_msgs_per_sec=1000000",
            "net.ipv4.icmp_msgs_burst=1000000",
            "net.ipv6.icmp.ratelimit=0",
        ]));
    }

    /// `ip -d link show dev <server veth>` run in the server namespace.
    pub fn server_link_details(&self) -> String {
        let out = run_ok(Command::new("ip").args([
            "-n",
            &self.server,
            "-d",
            "link",
            "show",
            "dev",
            &self.server_if,
        ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether any XDP program (native or generic) is on the server veth.
    pub fn server_has_xdp(&self) -> bool {
        self.server_link_details().contains("xdp")
    }

    /// [`net::try_connect`] in the client namespace.
    pub fn try_connect(
        &self,
        src: IpAddr,
        dst: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Option<TcpStream> {
        in_netns(&self.client, || net::try_connect(src, dst, port, timeout))
    }

    /// Connects from `src` to `dst:port` in the client namespace and checks
    /// that the echo server answers; panics with `why` otherwise.
    pub fn connect(&self, src: IpAddr, dst: IpAddr, port: u16, why: &str) -> TcpStream {
        let mut stream = self
            .try_connect(src, dst, port, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{src} -> {dst}:{port} timed out: {why}"));
        net::echo(&mut stream, "hello");
        stream
    }

    /// Panics unless a connect from `src` to `dst:port` times out (1 s).
    pub fn assert_dropped(&self, src: IpAddr, dst: IpAddr, port: u16, why: &str) {
        if self
            .try_connect(src, dst, port, Duration::from_secs(1))
            .is_some()
        {
            panic!("{src} -> {dst}:{port} connected: {why}");
        }
    }

    /// [`net::knock_tcp`] in the client namespace.
    pub fn knock_tcp(&self, src: IpAddr, dst: IpAddr, port: u16) {
        in_netns(&self.client, || net::knock_tcp(src, dst, port));
    }

    /// [`net::knock_udp`] in the client namespace.
    pub fn knock_udp(&self, src: IpAddr, dst: IpAddr, port: u16) {
        in_netns(&self.client, || net::knock_udp(src, dst, port));
    }

    /// Sends a knock sequence written like `--knock` (`tcp:100,udp:300`),
    /// one knock every 50 ms.
    pub fn knock(&self, src: IpAddr, dst: IpAddr, sequence: &str) {
        in_netns(&self.client, || net::knock_sequence(src, dst, sequence));
    }
}

impl Default for NetnsPair {
    fn default() -> Self {
        NetnsPair::new()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            // Not run_ok: a namespace that was never made is fine here, and a
            // panic while unwinding would abort the test binary.
            let _ = run_bounded(
                Command::new("ip").args(["netns", "del", ns]),
                Duration::from_secs(10),
            );
        }
    }
}

/// `ip -j -d link show dev <dev>` in the namespace `ns`, parsed: the
/// details include the XDP programs on the link.
pub fn link_json(ns: &str, dev: &str) -> Value {
    let out = run_ok(Command::new("ip").args(["-n", ns, "-j", "-d", "link", "show", "dev", dev]));
    serde_json::from_slice(&out.stdout).expect("ip -j prints JSON")
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// Runs `f` on a thread that joined the network namespace `name` (as made by
/// `ip netns add`) and returns its result; a panic in `f` goes on in the
/// caller. Sockets `f` creates belong to that namespace for their lifetime,
/// wherever they are used afterwards.
pub fn in_netns<T, F>(name: &str, f: F) -> T
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        let joined = scope
            .spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: a valid namespace fd; setns changes only this
                // thread, which ends when `f` returns.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!("setns {path}: {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join();
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
