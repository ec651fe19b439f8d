//! The `iplock` command as a library, in layers that import only the ones
//! below them: `system` (facts about this host), `config` (settings and
//! what they are made of), `spa` (the verifier of fwknop's single packet
//! authorization and its replay cache, pure but for the cache's file),
//! `kernel` (the loaded filter: object, pins, maps), `client` (knocking,
//! counting sequences), `crowdsec` (CrowdSec's Local API: pulling its
//! decisions, pushing iplock's bans), `daemon` (`iplock run`), and `cli`
//! (one module per subcommand). `main.rs` only parses arguments.

pub mod error;

pub mod system;

pub mod config;

pub mod spa;

pub mod kernel;

pub mod client;

pub mod crowdsec;

pub mod daemon;

pub mod cli;
