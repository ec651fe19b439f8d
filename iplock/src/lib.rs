//! The `iplock` command as a library: settings, loading, pinning and
//! reading the XDP knock filter. `main.rs` only parses arguments.

pub mod calc;
pub mod cidr;
pub mod clock;
pub mod cmd;
pub mod duration;
pub mod error;
pub mod events;
pub mod filter;
pub mod iface;
pub mod input_file;
pub mod knock;
pub mod knock_client;
pub mod layout;
pub mod listening;
pub mod log_limit;
pub mod maps;
pub mod metrics;
pub mod object;
pub mod pin_dir;
pub mod rotate;
pub mod secret;
pub mod settings;
pub mod slots;
pub mod status;
pub mod sweep;
