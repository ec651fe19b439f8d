//! Types shared by the XDP program and the `iplock` command, and the knock
//! decision logic as pure functions.
//!
//! Everything the kernel decides is decided by [`decide::decide`]; the eBPF
//! crate only parses packets, looks up maps and writes back what this crate
//! returns, so the behaviour is unit-tested here on the host.
#![no_std]

pub mod addr;
pub mod config;
pub mod counters;
pub mod decide;
pub mod events;
pub mod names;
pub mod packet;
pub mod spa;
pub mod state;

/// Implements `aya::Pod` for the map types when built for user space.
macro_rules! user_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: every type listed derives bytemuck::Pod, which proves it has
            // no padding and accepts any bit pattern.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use user_pod;
