//! The harness on its own, without the filter: namespaces come and go, the
//! echo server answers across the veth from each chosen source, and knocks
//! really leave the client as one bare SYN or one datagram.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use iplock_e2e::{
    CLIENT_V4, CLIENT_V6, EchoServer, NetnsPair, OTHER_V4, OTHER_V6, SERVER_V4, SERVER_V6,
    in_netns, require_root, run_bounded,
};
use socket2::{Domain, Protocol, Socket, Type};

fn netns_list() -> String {
    let out = run_bounded(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(5),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn namespaces_come_and_go_even_on_panic() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let names = (pair.server.clone(), pair.client.clone());
    let list = netns_list();
    assert!(list.contains(&names.0) && list.contains(&names.1), "{list}");
    assert!(pair.server_link_details().contains("veth"));
    assert!(!pair.server_has_xdp());
    drop(pair);
    let list = netns_list();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "{list}"
    );

    let names = std::thread::spawn(|| {
        let pair = NetnsPair::new();
        let names = (pair.server.clone(), pair.client.clone());
        std::panic::panic_any(names);
    })
    .join()
    .expect_err("the thread panics");
    let names = names.downcast::<(String, String)>().unwrap();
    let list = netns_list();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "{list}"
    );
}

#[test]
fn echo_across_the_veth_from_each_source() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    let server = EchoServer::start(&pair, &[22]);
    let flows = [
        (CLIENT_V4, SERVER_V4),
        (OTHER_V4, SERVER_V4),
        (CLIENT_V6, SERVER_V6),
        (OTHER_V6, SERVER_V6),
    ];
    let mut streams = Vec::new();
    for (src, dst) in flows {
        streams.push(pair.connect(src, dst, 22, "no filter is loaded"));
    }
    let peers: Vec<IpAddr> = server.peers().iter().map(|p| p.ip()).collect();
    for (src, _) in flows {
        assert!(peers.contains(&src), "{src} not among {peers:?}");
    }
    // The listener is only in the server namespace.
    assert!(in_netns(&pair.client, || std::net::TcpListener::bind((SERVER_V4, 0))).is_err());
}

/// Every TCP segment to `port` that reaches the server's stack within
/// `window`, as (source, TCP flags); IPv4 raw sockets include the IP header,
/// IPv6 ones do not.
fn tcp_segments_to(tap: &Socket, v4: bool, port: u16, window: Duration) -> Vec<(IpAddr, u8)> {
    let deadline = Instant::now() + window;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        tap.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        let Ok((n, from)) = tap.recv_from(&mut buf) else {
            break;
        };
        // SAFETY: recv_from initialised the first n bytes.
        let data: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let tcp = if v4 {
            &data[usize::from(data[0] & 0x0f) * 4..]
        } else {
            &data[..]
        };
        if u16::from_be_bytes([tcp[2], tcp[3]]) == port {
            seen.push((from.as_socket().unwrap().ip(), tcp[13]));
        }
    }
    seen
}

#[test]
fn knocks_leave_the_client() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::new();
    for (src, dst) in [(OTHER_V4, SERVER_V4), (OTHER_V6, SERVER_V6)] {
        let v4 = src.is_ipv4();
        let (tap, udp) = in_netns(&pair.server, || {
            let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
            let tap = Socket::new(domain, Type::RAW, Some(Protocol::TCP)).unwrap();
            (tap, UdpSocket::bind(SocketAddr::new(dst, 300)).unwrap())
        });
        pair.knock_tcp(src, dst, 100);
        // A bare SYN (flags 0x02) and nothing else from the client: closing
        // in SYN_SENT sends no RST, not even after the server's RST.
        let segments = tcp_segments_to(&tap, v4, 100, Duration::from_millis(500));
        assert_eq!(segments, vec![(src, 0x02)], "TCP knock from {src}");

        pair.knock_udp(src, dst, 300);
        udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = udp.recv_from(&mut buf).expect("UDP knock arrives");
        assert_eq!(from.ip(), src);
    }
}
