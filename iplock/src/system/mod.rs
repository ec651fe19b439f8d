//! Facts about this host the other layers ask for: interfaces, the boot
//! clock, the number of CPUs.

pub mod clock;
pub mod cpus;
pub mod iface;
