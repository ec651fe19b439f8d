//! The knock clients a user would run, in the client namespace: iplock's
//! own `iplock knock` and Debian's `knock`. `ip netns exec` is fine for
//! them: a client needs no bpffs.
//!
//! The two spell a sequence differently: iplock writes
//! `tcp:1234,udp:4000,tcp:2000` (protocol first, comma-separated), Debian's
//! `knock` takes `1234:tcp 4000:udp 2000:tcp` (port first, one argument per
//! step) and knockd's config `1234:tcp,4000:udp,2000:tcp`.

use std::net::IpAddr;
use std::process::{Command, Output};
use std::time::Duration;

use crate::iplock::binary;
use crate::netns::NetnsPair;
use crate::util::run_bounded;

/// `iplock knock <args>` in the client namespace.
pub fn iplock_knock(pair: &NetnsPair, args: &[&str]) -> Output {
    run_bounded(
        Command::new("ip")
            .args(["netns", "exec", &pair.client])
            .arg(binary())
            .arg("knock")
            .args(args),
        Duration::from_secs(20),
    )
}

/// iplock's `proto:port` steps as Debian's tools write them, `port:proto`.
pub fn debian_steps(sequence: &str) -> Vec<String> {
    sequence
        .split(',')
        .map(|step| {
            let (proto, port) = step.split_once(':').expect("proto:port");
            format!("{port}:{proto}")
        })
        .collect()
}

/// Debian's `knock` sending `sequence` (iplock's syntax) to `host` from the
/// client namespace's primary address, 100 ms between knocks so that they
/// arrive in order.
pub fn debian_knock(pair: &NetnsPair, host: IpAddr, sequence: &str) -> Output {
    run_bounded(
        Command::new("ip")
            .args(["netns", "exec", &pair.client, "knock", "-d", "100"])
            .arg(host.to_string())
            .args(debian_steps(sequence)),
        Duration::from_secs(10),
    )
}
