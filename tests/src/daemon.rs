//! `iplock run`, the long-running form of iplock, as a child of the test:
//! its log is collected for waits and failure messages, and it is stopped
//! the way an operator stops it (SIGTERM, so it detaches) however the test
//! ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, Instant};

use crate::iplock::Iplock;

/// How long `iplock run` may take to start: a program load includes the
/// verifier, and other jobs share the machine.
const START: Duration = Duration::from_secs(30);
/// How long a dropped daemon gets to detach after SIGTERM before SIGKILL.
const STOP: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// `iplock run` in the server namespace with the pin dir of an [`Iplock`].
pub struct Daemon {
    child: Child,
    /// Each line with the time the reader took it from the pipe.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Starts `iplock run <args>` with `RUST_LOG=<log_filter>` (a filter
    /// from outside must not hide the lines a test waits for) and waits
    /// until it logs that it is running.
    pub fn start(iplock: &Iplock, args: &[&str], log_filter: &str) -> Daemon {
        let mut cmd = iplock.command("run", args);
        cmd.env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        // Ends by itself when the daemon exits and the pipe closes.
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        let mut daemon = Daemon {
            child,
            log,
            reader: Some(reader),
        };
        daemon.wait_for_log("running;", START);
        daemon
    }

    /// The daemon's process id, for reading its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().map(|(_, line)| format!("{line}\n")).collect()
    }

    /// When the first line containing `needle` was read, if one was.
    pub fn logged_at(&self, needle: &str) -> Option<Instant> {
        let log = self.log.lock().unwrap();
        log.iter()
            .find(|(_, line)| line.contains(needle))
            .map(|(at, _)| *at)
    }

    /// Panics with the log if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait for iplock run") {
            // Let the reader take the last lines.
            sleep(Duration::from_millis(100));
            panic!("iplock run exited ({status}):\n{}", self.log());
        }
    }

    /// Waits until the log contains `needle`; panics with the log if the
    /// daemon exits or `limit` passes first.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "iplock run logged no {needle:?} within {limit:?}:\n{}",
                self.log()
            );
            sleep(POLL);
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; `pid` is our unreaped child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
    }

    /// Waits up to `limit` for the daemon to exit (after a signal); panics
    /// with its log otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for iplock run") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "iplock run still running {limit:?} after the signal:\n{}",
                self.log()
            );
            sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = self.child.id() as libc::pid_t;
            // Not `signal`: a panic while unwinding would abort the tests.
            // SAFETY: kill has no memory effects; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + STOP;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(POLL);
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
