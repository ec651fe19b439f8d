//! Network namespaces joined by a veth pair, created and removed by the
//! bench; all of its traffic stays inside them.

use std::fs::{self, File};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::ethtool;

pub const SERVER_V4: &str = "192.0.2.1";
pub const CLIENT_V4: &str = "192.0.2.2";
/// Only the server has IPv6: the client's is switched off so that no
/// neighbour discovery or multicast report joins the counted traffic (IPv6
/// floods are generated frames, not the client's stack).
pub const SERVER_V6: &str = "2001:db8::1";
/// Flood sources: routed back through the client so that whatever the
/// server answers to them stays inside the pair.
pub const FLOOD_V4_NET: &str = "198.51.100.0/24";
pub const FLOOD_V6_NET: &str = "2001:db8:f000::/36";
/// The IPv6 next hop of FLOOD_V6_NET: a static neighbour with the client's
/// MAC address, since the client has no IPv6.
const V6_GATEWAY: &str = "fe80::1";

/// Every namespace and interface name the bench makes starts with this,
/// followed by the bench's pid, so a crashed run's leftovers can be found.
const PREFIX: &str = "ipb";

/// Names, indices and addresses of a veth pair between two namespaces.
#[derive(Clone, Debug)]
pub struct Veth {
    pub server: String,
    pub client: String,
    pub server_if: String,
    pub client_if: String,
    pub server_ifindex: u32,
    pub client_ifindex: u32,
    pub server_mac: [u8; 6],
    pub client_mac: [u8; 6],
}

/// A server and a client namespace joined by a veth pair; both are removed
/// when it is dropped.
pub struct Pair {
    pub veth: Veth,
    _guard: Guard,
}

/// Deletes the namespaces it names that exist, even after a half-made pair.
struct Guard([String; 2]);

impl Drop for Guard {
    fn drop(&mut self) {
        for ns in &self.0 {
            if path(ns).exists()
                && let Err(e) = cmd(Command::new("ip").args(["netns", "del", ns]))
            {
                eprintln!("cleanup: {e:#}");
            }
        }
    }
}

impl Pair {
    /// Creates the pair with addresses, routes for the flood sources and GRO
    /// on the server side, so that its veth runs NAPI and accepts frames
    /// transmitted by XDP even without an XDP program of its own.
    pub fn create() -> Result<Pair> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let (server, client) = (format!("{PREFIX}{pid}s{n}"), format!("{PREFIX}{pid}c{n}"));
        // Interface names live inside the new namespaces, within IFNAMSIZ.
        let tag = format!("ib{}", base36(pid));
        let mut pair = Pair {
            veth: Veth {
                server: server.clone(),
                client: client.clone(),
                server_if: format!("{tag}s{n:02}"),
                client_if: format!("{tag}c{n:02}"),
                server_ifindex: 0,
                client_ifindex: 0,
                server_mac: [0; 6],
                client_mac: [0; 6],
            },
            // From here on, whatever part was made is removed on failure.
            _guard: Guard([server, client]),
        };
        let v = &mut pair.veth;
        ip(&["netns", "add", &v.server])?;
        ip(&["netns", "add", &v.client])?;
        ip(&[
            "link",
            "add",
            &v.server_if,
            "netns",
            &v.server,
            "type",
            "veth",
            "peer",
            "name",
            &v.client_if,
            "netns",
            &v.client,
        ])?;
        for (ns, dev, v4) in [
            (&v.server, &v.server_if, SERVER_V4),
            (&v.client, &v.client_if, CLIENT_V4),
        ] {
            let keys: &[&str] = if ns == &v.client {
                &["all", "default", dev.as_str()]
            } else {
                &[]
            };
            for key in keys {
                cmd(Command::new("ip").args([
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                ]))?;
            }
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &v.server,
            "addr",
            "add",
            &format!("{SERVER_V6}/64"),
            "dev",
            &v.server_if,
            "nodad",
        ])?;
        ip(&[
            "-n",
            &v.server,
            "route",
            "add",
            FLOOD_V4_NET,
            "via",
            CLIENT_V4,
        ])?;
        v.server_ifindex = run_in(&v.server, || iface_index(&v.server_if))?;
        v.client_ifindex = run_in(&v.client, || iface_index(&v.client_if))?;
        v.server_mac = mac(&v.server, &v.server_if)?;
        v.client_mac = mac(&v.client, &v.client_if)?;
        // Static neighbours: no ARP or neighbour discovery in the middle of a run.
        for (ns, dev, addr, lladdr) in [
            (&v.server, &v.server_if, CLIENT_V4, v.client_mac),
            (&v.server, &v.server_if, V6_GATEWAY, v.client_mac),
            (&v.client, &v.client_if, SERVER_V4, v.server_mac),
        ] {
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                addr,
                "lladdr",
                &fmt_mac(lladdr),
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        ip(&[
            "-n",
            &v.server,
            "-6",
            "route",
            "add",
            FLOOD_V6_NET,
            "via",
            V6_GATEWAY,
            "dev",
            &v.server_if,
        ])?;
        run_in(&v.server, || ethtool::enable_gro(&v.server_if))?;
        Ok(pair)
    }
}

impl Veth {
    /// Runs `f` on a thread inside the server namespace and waits for it.
    pub fn in_server<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        run_in(&self.server, f)
    }

    /// Runs `f` on a thread inside the client namespace and waits for it.
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        run_in(&self.client, f)
    }
}

/// Removes namespaces left by earlier bench runs that died before cleaning up.
pub fn remove_stale() -> Result<()> {
    let Ok(dir) = fs::read_dir("/run/netns") else {
        return Ok(());
    };
    for entry in dir {
        let name = entry.context("listing /run/netns")?.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || Path::new("/proc").join(&pid).exists() {
            continue;
        }
        println!("cleanup: removing namespace {name} left by an earlier run");
        cmd(Command::new("ip").args(["netns", "del", &name]))?;
    }
    Ok(())
}

/// The file `ip netns` keeps for a namespace.
pub fn path(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

/// Moves the calling thread into namespace `ns`. Only that thread moves:
/// the network namespace is per thread, and processes it spawns start there.
/// Threads that call this are made for it and end with their task.
pub fn enter(ns: &str) -> Result<()> {
    let ns_path = path(ns);
    let file =
        File::open(&ns_path).with_context(|| format!("could not open {}", ns_path.display()))?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "setns({}, CLONE_NEWNET) failed: {}",
            ns_path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs `f` on a new thread inside namespace `ns` and waits for it.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("a thread inside namespace {ns} panicked"))?
    })
}

/// Restricts a task (process or thread id) to one CPU.
pub fn pin_to_cpu(tid: i32, cpu: usize) -> Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays in bounds
    // for any cpu below CPU_SETSIZE, which sched_setaffinity then checks.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .context(format!("pinning task {tid} to CPU {cpu}"));
        }
    }
    Ok(())
}

fn iface_index(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: c is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface {name} in this namespace");
    }
    Ok(index)
}

fn mac(ns: &str, dev: &str) -> Result<[u8; 6]> {
    let out = cmd(Command::new("ip").args(["-n", ns, "-j", "link", "show", "dev", dev]))?;
    let json: serde_json::Value = serde_json::from_str(&out).context("parsing `ip -j link`")?;
    let text = json[0]["address"]
        .as_str()
        .with_context(|| format!("`ip -j link show {dev}` has no address"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        bail!("{dev} has the odd MAC address {text}");
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("MAC address {text}"))?;
    }
    Ok(mac)
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(args: &[&str]) -> Result<()> {
    cmd(Command::new("ip").args(args)).map(drop)
}

/// Runs a command to completion; fails with its stderr unless it exits 0.
pub fn cmd(c: &mut Command) -> Result<String> {
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("could not start {c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
