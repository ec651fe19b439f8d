//! The `iplock` command as a library, in layers that import only the ones
//! below them: `system` (facts about this host), `config` (settings and
//! what they are made of), `kernel` (the loaded filter: object, pins, maps),
//! `client` (knocking, counting sequences), `crowdsec` (CrowdSec's Local
//! API: pulling its decisions, pushing iplock's bans), `daemon` (`iplock
//! run`), and `cli` (one module per subcommand). `main.rs` only parses
//! arguments.

pub mod error;

pub mod system;

pub mod config;

pub mod kernel;

pub mod client;

pub mod crowdsec;

pub mod daemon;

pub mod cli;
