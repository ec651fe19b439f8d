//! Single packet authorization with fwknop's client (fwknop 2.6.10, FKO
//! protocol 3.0.0): the verifier of one datagram's payload, and the cache
//! that refuses a payload seen before. The verifier is pure (no I/O, the
//! time is an argument); the daemon feeds it the datagrams the kernel
//! copies out and opens the door a [`Grant`] names.
//!
//! A layer of its own between `config` and `kernel`: it needs only the
//! validated [`SpaSettings`](crate::config::spa::SpaSettings), and every
//! layer above (the daemon, a future client or status command) may use it.

pub mod replay;
pub mod verify;

pub use replay::{ReplayCache, ReplayDigest};
pub use verify::{Access, Grant, MAX_PAYLOAD, MIN_PAYLOAD, Reason, Refusal, verify};

#[cfg(test)]
mod fixture_tests;
