//! `cargo xtask demo`: a knock opening the door, in a namespace pair that is
//! created for the demo and removed afterwards (also on failure or Ctrl-C).
use std::{
    fs,
    io::{self, BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{self, Command},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use crate::{
    cleanup::{self, Guard},
    cmd,
    netns::{self, CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6},
    setup,
};

const PORT: u16 = 22;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KNOCK: &str = "tcp:100,udp:300,tcp:200";
const OPEN_WINDOW: &str = "5s";
const BAN_TIME: &str = "30s";

pub fn run(root: &Path) -> Result<()> {
    ensure!(
        crate::is_root(),
        "cargo xtask demo must run as root: it creates network namespaces and loads an XDP program"
    );
    cleanup::catch_signals()?;
    setup::run(root)?;

    step("building iplock");
    cmd::run(
        Command::new("cargo")
            .current_dir(root)
            .args(["build", "-p", "iplock"]),
    )?;
    let iplock = crate::target_dir(root).join("debug").join("iplock");

    let pid = process::id();
    let pair = netns::Pair::create(
        &format!("iplock-demo-srv-{pid}"),
        &format!("iplock-demo-cli-{pid}"),
        &format!("ipd-srv{pid}"),
        &format!("ipd-cli{pid}"),
    )?;
    step(&format!(
        "created namespaces {} ({SERVER_V4}, {SERVER_V6}) and {} ({CLIENT_V4}, {CLIENT_V6}), joined by a veth pair",
        pair.server, pair.client
    ));

    let _listener = Listener::start(&pair.server)?;
    step(&format!(
        "a TCP server listens on port {PORT} in {} and greets whoever connects",
        pair.server
    ));

    let server_v4 = SocketAddr::new(SERVER_V4.parse()?, PORT);
    let server_v6 = SocketAddr::new(SERVER_V6.parse()?, PORT);
    step(&format!(
        "without iplock, the client connects to {server_v4}"
    ));
    let banner = connect(&pair.client, server_v4)?
        .context("the client cannot reach the server even without iplock")?;
    println!("    reply: {banner}");

    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/iplock-demo-{pid}"));
    let iplock_in = |args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", netns::path(&pair.server).display()))
            .arg(&iplock)
            .args(args)
            .arg("--pin-dir")
            .arg(&pin_dir);
        c
    };
    // Registered before loading: a load that fails half-way may have pinned something.
    let _loaded = {
        let mut unload = iplock_in(&["unload"]);
        let pin_dir = pin_dir.clone();
        Guard::new(move || {
            if !pin_dir.exists() {
                return;
            }
            println!("cleanup: unloading iplock");
            if let Err(e) = cmd::output(&mut unload) {
                eprintln!("cleanup: {e:#}");
            }
            if pin_dir.exists()
                && let Err(e) = fs::remove_dir_all(&pin_dir)
            {
                eprintln!("cleanup: could not remove {}: {e}", pin_dir.display());
            }
        })
    };
    step(&format!(
        "loading iplock on {}: knock {KNOCK} opens port {PORT} for {OPEN_WINDOW} to the knocking address; \
         a SYN to a closed door bans for {BAN_TIME}",
        pair.server_if
    ));
    let mut load = iplock_in(&[
        "load",
        "--iface",
        &pair.server_if,
        "--knock",
        KNOCK,
        "--open-window",
        OPEN_WINDOW,
        "--ban-time",
        BAN_TIME,
    ]);
    show_and_run(&mut load)?;

    // IPv6 here, because this unknocked SYN bans its source (the client's /64):
    // the IPv4 address stays clean for the knock.
    step(&format!(
        "without knocking, the client connects to {server_v6}"
    ));
    if let Some(banner) = connect(&pair.client, server_v6)? {
        bail!(
            "connected to {server_v6} without knocking (got \"{banner}\"): iplock is not filtering"
        );
    }
    println!(
        "    timed out after {}s: the door is closed, and that SYN banned 2001:db8::/64",
        CONNECT_TIMEOUT.as_secs()
    );

    step(&format!(
        "the client knocks on {SERVER_V4} with Debian's knock client"
    ));
    show_and_run(Command::new("ip").args([
        "netns",
        "exec",
        &pair.client,
        "knock",
        "-d",
        "200",
        SERVER_V4,
        "100:tcp",
        "300:udp",
        "200:tcp",
    ]))?;

    step(&format!(
        "after knocking, the client connects to {server_v4}"
    ));
    let banner = connect(&pair.client, server_v4)?
        .with_context(|| format!("connect to {server_v4} still times out after knocking"))?;
    println!("    reply: {banner}");

    step("iplock status");
    show_and_run(&mut iplock_in(&["status"]))?;

    step("unloading iplock");
    show_and_run(&mut iplock_in(&["unload"]))?;
    ensure!(
        !pin_dir.exists(),
        "iplock unload left {}",
        pin_dir.display()
    );
    let link = cmd::output(Command::new("ip").args([
        "-n",
        &pair.server,
        "link",
        "show",
        "dev",
        &pair.server_if,
    ]))?;
    ensure!(
        !link.contains("xdp"),
        "iplock unload left an XDP program on {}:\n{link}",
        pair.server_if
    );
    step(&format!(
        "no pins left in {} and no XDP program on {}",
        pin_dir.display(),
        pair.server_if
    ));
    Ok(())
}

fn step(what: &str) {
    println!("==> {what}");
}

fn show_and_run(cmd: &mut Command) -> Result<()> {
    println!("    $ {}", cmd::describe(cmd));
    cmd::run(cmd)
}

/// Connects from namespace `ns` and reads one line; None when the connect
/// times out (a dropped SYN). A refused connect is an error: nothing in the
/// demo should answer with a reset.
fn connect(ns: &str, addr: SocketAddr) -> Result<Option<String>> {
    let ns_name = ns.to_owned();
    netns::join(netns::spawn_in(ns, move || {
        let stream = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("connect to {addr} from {ns_name}")),
        };
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .with_context(|| format!("reading the greeting from {addr}"))?;
        Ok(Some(line.trim_end().to_owned()))
    }))
}

/// The demo's stand-in for sshd: accepts on [::]:22 (IPv4 too) in its
/// namespace and writes one greeting line naming the peer.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Listener {
    fn start(ns: &str) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (bound_tx, bound_rx) = mpsc::channel();
        let ns_name = ns.to_owned();
        let stopping = stop.clone();
        let thread = netns::spawn_in(ns, move || {
            let listener = TcpListener::bind(("::", PORT))
                .with_context(|| format!("bind [::]:{PORT} in {ns_name}"))?;
            // Polled rather than blocking, so that dropping the Listener ends the thread.
            listener.set_nonblocking(true)?;
            bound_tx.send(()).ok();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        stream.set_nonblocking(false)?;
                        // A client that hangs up early is not the server's problem.
                        writeln!(
                            stream,
                            "hello {}, this is port {PORT} in {ns_name}",
                            peer.ip().to_canonical()
                        )
                        .ok();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(e).context("accept"),
                }
            }
            Ok(())
        });
        if bound_rx.recv().is_err() {
            // The thread ended before binding: its result says why.
            return Err(netns::join(thread)
                .err()
                .unwrap_or_else(|| anyhow!("the listener thread ended without binding")));
        }
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && let Err(e) = netns::join(thread)
        {
            eprintln!("listener: {e:#}");
        }
    }
}
