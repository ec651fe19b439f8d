//! The filter's settings and what they are made of: knock sequences,
//! durations, address blocks, rotation and its secret, SPA keys, and the files
//! they are read from; with the checks of a configuration against the host.

pub mod cidr;
pub mod crowdsec;
pub mod duration;
pub mod input_file;
pub mod knock;
pub mod listening;
pub mod rotate;
pub mod secret;
pub mod settings;
pub mod spa;
