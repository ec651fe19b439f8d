//! Facts about this host the other layers ask for: interfaces, the boot
//! clock.

pub mod clock;
pub mod iface;
