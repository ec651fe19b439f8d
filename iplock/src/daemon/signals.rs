//! The signals `iplock run` answers: SIGHUP reloads, SIGTERM and SIGINT stop.

use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Context as _, Result};

pub enum Signal {
    Reload,
    Stop,
}

pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; a signal that comes from now on waits for
    /// [`Signals::next`]. Needs the runtime.
    pub fn new() -> Result<Signals> {
        let install = |kind| signal(kind).context(|| "installing signal handlers".into());
        Ok(Signals {
            hup: install(SignalKind::hangup())?,
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
