//! Errors of the `iplock` library. Bad input (exit status 2) is kept apart
//! from failures of the system (exit status 1).

use std::fmt;

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
    #[error("{what}: {source}")]
    Log {
        what: String,
        #[source]
        source: aya_log::Error,
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

/// How much of the administrator's own text an error quotes: enough to
/// recognise it, and never the whole of a value that may be megabytes long.
const QUOTE_CHARS: usize = 48;

/// `text` in backticks for an error message, cut after [`QUOTE_CHARS`]
/// characters and marked `…` when longer. Every piece of input an error
/// echoes goes through here or [`quote_within`].
pub fn quote(text: impl fmt::Display) -> String {
    format!("`{}`", clip(&text.to_string()))
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A message of another crate (toml, serde) that quotes the input in
/// backticks or double quotes, with each quoted piece cut as [`quote`]
/// cuts it; an unclosed quote is cut too.
pub fn quote_within(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let delim = &rest[open..=open];
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find(delim) {
            Some(close) => {
                out.push_str(&clip(&rest[..close]));
                out.push_str(delim);
                rest = &rest[close + 1..];
            }
            None => return out + &clip(rest),
        }
    }
    out + rest
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

/// The OS reason without the "(os error N)" tail, for one-sentence errors.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_short() {
        assert_eq!(quote("eth0"), "`eth0`");
        let long = "é".repeat(QUOTE_CHARS + 1);
        let q = quote(&long);
        assert_eq!(q, format!("`{}…`", &long[..long.len() - "é".len()]));
        let exact = "x".repeat(QUOTE_CHARS);
        assert_eq!(quote(&exact), format!("`{exact}`"));
    }

    #[test]
    fn quotes_within_a_foreign_message_are_cut_short() {
        let key = "k".repeat(10 * QUOTE_CHARS);
        let msg = format!("unknown field `{key}`, expected `mode` or `ban`");
        let cut = quote_within(&msg);
        assert_eq!(
            cut,
            format!(
                "unknown field `{}…`, expected `mode` or `ban`",
                &key[..QUOTE_CHARS]
            )
        );
        let msg = format!("invalid type: string \"{key}\", expected u32");
        assert!(quote_within(&msg).ends_with("…\", expected u32"));
        let unclosed = format!("bad `{key}");
        assert_eq!(
            quote_within(&unclosed),
            format!("bad `{}…", &key[..QUOTE_CHARS])
        );
        assert_eq!(quote_within("no quotes here"), "no quotes here");
    }
}
