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

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use iplock_common::names::DEFAULT_PIN_DIR;

use crate::error::Result;
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
