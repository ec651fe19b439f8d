//! The knock client: resolve the server, send each step as the filter (or
//! knockd) expects it, and optionally try the protected port afterwards.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::thread::sleep;
use std::time::Duration;

use iplock_common::packet::PROTO_UDP;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::knock::{Step, proto_name};
use crate::error::io_reason;
use crate::error::{Context, Result, input, quote};

/// Address family chosen with -4 or -6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Resolves `host` (a name or an address, IPv6 also in brackets) to the
/// first address of the wanted family, in the resolver's order.
pub fn resolve(host: &str, family: Option<Family>) -> Result<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs = match (bare, 0).to_socket_addrs() {
        Ok(a) => a,
        Err(e) => {
            let reason = io_reason(&e);
            // getaddrinfo's message comes after std's generic prefix.
            let reason = reason
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&reason)
                .to_lowercase();
            return input(format!("cannot resolve host {}: {reason}", quote(host)));
        }
    };
    let mut addrs = addrs.map(|a| a.ip()).filter(|ip| match family {
        Some(Family::V4) => ip.is_ipv4(),
        Some(Family::V6) => ip.is_ipv6(),
        None => true,
    });
    match (addrs.next(), family) {
        (Some(ip), _) => Ok(ip),
        (None, Some(Family::V4)) => input(format!("host {} has no IPv4 address", quote(host))),
        (None, Some(Family::V6)) => input(format!("host {} has no IPv6 address", quote(host))),
        (None, None) => input(format!("host {} has no address", quote(host))),
    }
}

/// `proto:port` of a step, without the timeout that only the server uses.
pub fn step_name(step: &Step) -> String {
    format!("{}:{}", proto_name(step.proto), step.port)
}

/// Sends one knock. A tcp step is a bare SYN: a non-blocking connect sends
/// it, and closing the socket in SYN_SENT sends nothing more (no RST), so
/// the filter sees exactly one packet. A udp step is one small datagram.
pub fn send(dst: IpAddr, step: &Step) -> Result<()> {
    let to = SocketAddr::new(dst, step.port);
    let what = || format!("sending the knock {} to {dst}", step_name(step));
    if step.proto == PROTO_UDP {
        let any = match dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let sock = UdpSocket::bind((any, 0)).context(what)?;
        sock.send_to(b"knock", to).context(what)?;
        return Ok(());
    }
    let sock =
        Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)).context(what)?;
    sock.set_nonblocking(true).context(what)?;
    match sock.connect(&to.into()) {
        Ok(()) => Ok(()),
        // The SYN left; a refusal (a port on this host, or a router's
        // answer) also means it did.
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || e.kind() == ErrorKind::ConnectionRefused =>
        {
            Ok(())
        }
        Err(e) => Err(e).context(what),
    }
}

/// Sends `steps` to `dst` in order, `delay` apart.
pub fn knock(dst: IpAddr, steps: &[Step], delay: Duration) -> Result<()> {
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            sleep(delay);
        }
        send(dst, step)?;
    }
    Ok(())
}

/// Opens a TCP connection to `dst:port` within `timeout` and closes it.
pub fn try_connect(dst: IpAddr, port: u16, timeout: Duration) -> std::io::Result<()> {
    TcpStream::connect_timeout(&SocketAddr::new(dst, port), timeout).map(drop)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::config::knock::parse_sequence;

    #[test]
    fn resolves_literals_names_and_families() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(resolve("2001:db8::1", None).unwrap(), v6);
        assert_eq!(resolve("[2001:db8::1]", Some(Family::V6)).unwrap(), v6);
        assert_eq!(
            resolve("192.0.2.1", Some(Family::V4)).unwrap(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert!(
            resolve("localhost", Some(Family::V4))
                .unwrap()
                .is_loopback()
        );
        for (host, family) in [
            ("192.0.2.1", Some(Family::V6)),
            ("2001:db8::1", Some(Family::V4)),
            ("no such host.invalid", None),
        ] {
            let err = resolve(host, family).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{host}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    #[test]
    fn knocks_reach_local_ports() {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let (t, u) = (
            tcp.local_addr().unwrap().port(),
            udp.local_addr().unwrap().port(),
        );
        let steps = parse_sequence(&format!("udp:{u},tcp:{t}")).unwrap();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        knock(lo, &steps, Duration::from_millis(10)).unwrap();
        let mut buf = [0; 16];
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(udp.recv(&mut buf).unwrap(), 5);
        assert!(try_connect(lo, t, Duration::from_secs(2)).is_ok());
        drop(tcp);
        // Nothing listens any more: refused, not opened.
        assert!(try_connect(lo, t, Duration::from_secs(2)).is_err());
    }
}
