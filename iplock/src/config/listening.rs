//! Sockets of the current network namespace that a knock would reach.
//!
//! With `knock_answer = "stack"` every knock packet goes on to the host's
//! stack after the filter has counted it, so a service listening on a knock
//! port would receive the knocks (and answer them, telling a scanner which
//! ports are special). `load` and `reload` refuse such a port; `iplock run`
//! warns when one appears later. The kernel lists the sockets of the
//! reader's namespace in /proc/net/{tcp,tcp6,udp,udp6}: a TCP socket
//! counts when it listens, a UDP socket whenever it is bound to the port.

use std::collections::BTreeSet;

use iplock_common::packet::{PROTO_TCP, PROTO_UDP};

use crate::config::knock::{Step, proto_name};
use crate::config::rotate;
use crate::config::settings::{KnockAnswer, Settings};
use crate::error::{Result, input};

/// `st` of a listening TCP socket in /proc/net/tcp.
const TCP_LISTEN: u8 = 0x0A;

/// (protocol, port) of every listening TCP socket and every bound UDP
/// socket of the current network namespace. A table that cannot be read
/// (IPv6 disabled, say) lists nothing.
pub fn sockets() -> BTreeSet<(u8, u16)> {
    let mut out = BTreeSet::new();
    for (file, proto) in [
        ("/proc/net/tcp", PROTO_TCP),
        ("/proc/net/tcp6", PROTO_TCP),
        ("/proc/net/udp", PROTO_UDP),
        ("/proc/net/udp6", PROTO_UDP),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse(&text, proto).into_iter().map(|port| (proto, port)));
        }
    }
    out
}

/// Local ports of the sockets in one /proc/net table of `proto` that a
/// knock would reach: listening ones for TCP, all for UDP.
pub fn parse(text: &str, proto: u8) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // "sl local_address rem_address st ...", local as ADDR:PORT in hex.
            let mut fields = line.split_whitespace().skip(1);
            let local = fields.next()?;
            let _remote = fields.next()?;
            let state = u8::from_str_radix(fields.next()?, 16).ok()?;
            let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            let reaches = port != 0 && (proto == PROTO_UDP || state == TCP_LISTEN);
            reaches.then_some(port)
        })
        .collect()
}

/// The steps of `steps` on whose port and protocol a socket of `sockets`
/// listens.
pub fn taken<'a>(steps: &'a [Step], sockets: &BTreeSet<(u8, u16)>) -> Vec<&'a Step> {
    steps
        .iter()
        .filter(|s| sockets.contains(&(s.proto, s.port)))
        .collect()
}

/// Refuses a sequence with a step on which a socket of this namespace
/// listens (exit status 2, one sentence naming the first such step).
pub fn refuse_taken(steps: &[Step]) -> Result<()> {
    match taken(steps, &sockets()).first() {
        Some(s) => input(format!(
            "a socket listens on {} port {}, a knock port: with knock_answer = \"stack\" \
             the knocks would reach it, so stop it or choose another port",
            proto_name(s.proto),
            s.port
        )),
        None => Ok(()),
    }
}

/// Refuses an SPA port on which a UDP socket of this namespace is bound:
/// the datagrams go on to the stack, which would deliver them to it, and
/// the port would answer unlike the unused ones.
pub fn refuse_spa_taken(port: u16) -> Result<()> {
    if sockets().contains(&(PROTO_UDP, port)) {
        return input(format!(
            "a socket is bound to udp port {port}, the SPA port: with knock_answer = \"stack\" \
             the SPA packets would reach it (is fwknopd running?), so stop it or set spa.port to another port"
        ));
    }
    Ok(())
}

/// Warns, once per port and protocol for as long as the socket stays, of
/// each step of `steps` that a socket listens on; `warned` remembers them.
pub fn warn_taken(steps: &[Step], warned: &mut BTreeSet<(u8, u16)>) {
    let now = sockets();
    for s in taken(steps, &now) {
        if warned.insert((s.proto, s.port)) {
            log::warn!(
                "a socket listens on {} port {}, a knock port: knocks reach it",
                proto_name(s.proto),
                s.port
            );
        }
    }
    // A socket that went away may warn again if it comes back.
    warned.retain(|k| now.contains(k));
}

/// [`warn_taken`] for the steps the filter accepts now (the fixed
/// sequence, or the current period's of a rotating one), when knocks go
/// on to the stack.
pub fn warn_settings(settings: &Settings, warned: &mut BTreeSet<(u8, u16)>) {
    if settings.knock_answer != KnockAnswer::Stack {
        return;
    }
    let steps = match &settings.rotate {
        None => settings.knock.clone(),
        Some(r) => r.sequence(
            r.filter_period(rotate::unix_now()),
            &settings.excluded_ports(),
        ),
    };
    warn_taken(&steps, warned);
    if let Some(spa) = &settings.spa {
        let key = (PROTO_UDP, spa.port);
        if sockets().contains(&key) && warned.insert(key) {
            log::warn!(
                "a socket is bound to udp port {}, the SPA port: SPA packets reach it",
                spa.port
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:044C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1167 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1168 1 0000000000000000 100 0 0 10 0
   2: 020200C0:04B0 010200C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 1169 1 0000000000000000 20 4 30 10 -1
   3: 020200C0:9C40 010200C0:0016 06 00000000:00000000 03:00000F9B 00000000     0        0 0 3 0000000000000000
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:04B0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  771: 00000000000000000000000000000000:0514 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3001 2 0000000000000000 0
  772: 0000000000000000FFFF00000100007F:A3F2 0000000000000000FFFF00000100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3002 2 0000000000000000 0
";

    #[test]
    fn tcp_counts_listening_sockets_only() {
        // 1100 and 22 listen; 1200 is an established connection, 40000 in
        // TIME_WAIT: neither receives knocks.
        assert_eq!(parse(TCP, PROTO_TCP), [1100, 22]);
        assert_eq!(parse(TCP6, PROTO_TCP), [1200]);
    }

    #[test]
    fn udp_counts_every_bound_socket() {
        // Unconnected (07) and connected (01) sockets alike.
        assert_eq!(parse(UDP6, PROTO_UDP), [1300, 0xA3F2]);
    }

    #[test]
    fn headers_blank_lines_and_garbage_are_skipped() {
        assert_eq!(parse("", PROTO_TCP), Vec::<u16>::new());
        let text = "  sl  local_address\n\n   0: nonsense\n   1: 00000000:zz 00000000:0000 0A\n";
        assert_eq!(parse(text, PROTO_TCP), Vec::<u16>::new());
    }

    #[test]
    fn a_step_is_taken_by_a_socket_of_its_own_protocol() {
        let steps: Vec<Step> = ["tcp:1100", "udp:1300", "tcp:1200"]
            .iter()
            .map(|s| Step::parse(s).unwrap())
            .collect();
        let sockets: BTreeSet<(u8, u16)> =
            [(PROTO_UDP, 1100), (PROTO_UDP, 1300), (PROTO_TCP, 22)].into();
        let taken: Vec<String> = taken(&steps, &sockets)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(taken, ["udp:1300"]);
    }
}
