//! The XDP program's own diagnostics (aya-log): the level it is loaded
//! with, and the pinned ring buffer its records go to.
//!
//! The level is aya-log-ebpf's `AYA_LOG_LEVEL`, a read-only global the
//! loader writes before the verifier runs. The verifier reads it as a
//! constant, so below debug the program's debug statements are dead code
//! that costs nothing per packet. It is off unless `iplock run` set it from
//! its own log level ([`set_level`]); `load` and `reload` load the program
//! with it off, since nobody would read the records.
//!
//! The records go to `AYA_LOGS`, a ring buffer pinned with the other maps,
//! so each program that replaces another writes to the same ring. aya-log
//! 0.3 reads it only through a loaded program
//! (`EbpfLogger::init_from_id`), so [`open`] finds the program that uses
//! the pinned ring and hands its id to aya-log, which decodes the records
//! and passes them to the `log` crate.

use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use aya::EbpfLoader;
use aya::maps::MapInfo;
use aya_log::EbpfLogger;
use iplock_common::names::MAP_LOGS;
use log::LevelFilter;

use crate::error::{Context as _, Error, Result};
use crate::kernel::pin_dir::PinDir;

/// The level programs are loaded with, as `LevelFilter as usize`: 0 (off)
/// to 5 (trace), the numbering aya-log uses too.
static LEVEL: AtomicUsize = AtomicUsize::new(LevelFilter::Off as usize);

/// The value of `AYA_LOG_LEVEL` for each level: the loader keeps a
/// reference until it loads.
static LEVEL_BYTES: [u8; 6] = [0, 1, 2, 3, 4, 5];

/// Sets the level the program is loaded with from now on in this process.
pub fn set_level(level: LevelFilter) {
    LEVEL.store(level as usize, Ordering::Relaxed);
}

/// The level the program is loaded with.
pub fn level() -> LevelFilter {
    match LEVEL.load(Ordering::Relaxed) {
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        5 => LevelFilter::Trace,
        _ => LevelFilter::Off,
    }
}

/// Has `loader` load the program at `level`. Without this the program
/// would log at every level (aya-log-ebpf's default).
pub fn override_level(loader: &mut EbpfLoader<'_>, level: LevelFilter) {
    loader.override_global(aya_log::LEVEL, &LEVEL_BYTES[level as usize], true);
}

/// The program's log records, read from the ring pinned in a filter's
/// directory. Polling its fd tells when records wait.
pub struct KernelLog(EbpfLogger<&'static dyn log::Log>);

/// Opens the log ring of the filter loaded in `dir`.
pub fn open(dir: &PinDir) -> Result<KernelLog> {
    let path = dir.map(MAP_LOGS);
    let id = MapInfo::from_pin(&path)
        .context(|| format!("opening {}", path.display()))?
        .id();
    let uses_it = |p: &aya::programs::ProgramInfo| {
        p.map_ids()
            .ok()
            .flatten()
            .is_some_and(|ids| ids.contains(&id))
    };
    let prog = aya::programs::loaded_programs()
        .filter_map(std::result::Result::ok)
        .find(uses_it)
        .ok_or_else(|| Error::Input(format!("no loaded program writes to {}", path.display())))?;
    let logger =
        EbpfLogger::init_from_id_with_logger(prog.id(), log::logger()).map_err(|source| {
            Error::Log {
                what: format!("reading the XDP program's log from {}", path.display()),
                source,
            }
        })?;
    Ok(KernelLog(logger))
}

impl KernelLog {
    /// Passes the records waiting in the ring to the `log` crate.
    pub fn flush(&mut self) {
        self.0.flush();
    }
}

impl AsRawFd for KernelLog {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}
