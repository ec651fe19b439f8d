//! Errors of the `iplock` library. Bad input (exit status 2) is kept apart
//! from failures of the system (exit status 1).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The administrator's input is wrong; the message is one sentence.
    #[error("{0}")]
    Input(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Map {
        what: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{what}: {source}")]
    Program {
        what: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("{what}: {source}")]
    Pin {
        what: String,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("loading the XDP program failed: {0}")]
    Ebpf(#[from] aya::EbpfError),
}

impl Error {
    /// Exit status: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an input error.
pub fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Input(msg.into()))
}

/// Attaches a description to system errors.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

macro_rules! context_for {
    ($err:ty, $variant:ident) => {
        impl<T> Context<T> for std::result::Result<T, $err> {
            fn context(self, what: impl FnOnce() -> String) -> Result<T> {
                self.map_err(|source| Error::$variant {
                    what: what(),
                    source,
                })
            }
        }
    };
}
context_for!(std::io::Error, Io);
context_for!(aya::maps::MapError, Map);
context_for!(aya::programs::ProgramError, Program);
context_for!(aya::pin::PinError, Pin);
