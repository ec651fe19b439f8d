//! One module per subcommand: its arguments and what it does.

pub mod allow;
pub mod ban;
pub mod calc;
pub mod check;
pub mod generate_docs;
pub mod knock;
pub mod load;
pub mod reload;
pub mod run;
pub mod secret;
pub mod status;
pub mod unload;

use std::io::{self, Write as _};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use iplock_common::names::DEFAULT_PIN_DIR;
use serde::Serialize;

use crate::error::{Context as _, Result};
use crate::kernel::pin_dir::PinDir;

/// A level of `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Where the filter lives in bpffs.
#[derive(Args, Debug, Clone)]
pub struct PinDirArg {
    /// Directory under bpffs holding the filter's pinned maps and links.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR, global = true)]
    pub pin_dir: PathBuf,
}

impl PinDirArg {
    pub fn dir(&self) -> Result<PinDir> {
        PinDir::new(&self.pin_dir)
    }
}

/// Prints `value` as pretty JSON and a newline. Written straight to a
/// buffered stdout: a status of 200,000 entries is 20 MB, which a string
/// would first grow and copy.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .context(|| "writing to stdout".into())
}
