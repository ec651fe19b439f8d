//! A pair of network namespaces joined by a veth pair, and running code inside one.
use std::{fs::File, os::fd::AsRawFd as _, path::Path, process::Command, thread};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{cleanup::Guard, cmd};

pub const SERVER_V4: &str = "192.0.2.1";
pub const CLIENT_V4: &str = "192.0.2.2";
pub const SERVER_V6: &str = "2001:db8::1";
pub const CLIENT_V6: &str = "2001:db8::2";

/// Namespaces `server` and `client`, each with one end of a veth pair
/// (`server_if`, `client_if`) carrying SERVER_*/CLIENT_* addresses.
/// Removed on drop or at a caught signal.
pub struct Pair {
    pub server: String,
    pub client: String,
    pub server_if: String,
    _guard: Guard,
}

impl Pair {
    pub fn create(server: &str, client: &str, server_if: &str, client_if: &str) -> Result<Self> {
        let names = [server.to_owned(), client.to_owned()];
        // Registered first so that a half-built pair is removed too.
        let guard = Guard::new(move || {
            for ns in names.iter().filter(|ns| path(ns).exists()) {
                println!("cleanup: removing namespace {ns}");
                if let Err(e) = cmd::output(Command::new("ip").args(["netns", "del", ns])) {
                    eprintln!("cleanup: {e:#}");
                }
            }
        });
        ip(&["netns", "add", server])?;
        ip(&["netns", "add", client])?;
        ip(&[
            "link", "add", server_if, "netns", server, "type", "veth", "peer", "name", client_if,
            "netns", client,
        ])?;
        for (ns, dev, v4, v6) in [
            (server, server_if, SERVER_V4, SERVER_V6),
            (client, client_if, CLIENT_V4, CLIENT_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            // nodad: usable at once instead of after duplicate address detection.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(Pair {
            server: server.to_owned(),
            client: client.to_owned(),
            server_if: server_if.to_owned(),
            _guard: guard,
        })
    }
}

/// The file `ip netns` keeps for a namespace; `nsenter --net=` takes it.
pub fn path(ns: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(ns)
}

/// Runs `f` on a new thread that has joined namespace `ns`. Only that thread
/// moves: the network namespace is per thread.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> thread::JoinHandle<Result<T>> {
    let ns_path = path(ns);
    thread::spawn(move || {
        let file = File::open(&ns_path)
            .with_context(|| format!("could not open {}", ns_path.display()))?;
        // SAFETY: setns only reads the descriptor, which `file` keeps open.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!(
                "setns({}, CLONE_NEWNET) failed: {}",
                ns_path.display(),
                std::io::Error::last_os_error()
            );
        }
        f()
    })
}

/// Waits for a `spawn_in` thread.
pub fn join<T>(handle: thread::JoinHandle<Result<T>>) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow!("a thread inside a network namespace panicked"))?
}

fn ip(args: &[&str]) -> Result<()> {
    cmd::output(Command::new("ip").args(args)).map(drop)
}
