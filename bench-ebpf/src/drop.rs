//! The empty dropping XDP program: the floor for iplock's drop paths, and
//! in the throughput runs the fastest a frame can die on the receiver.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action::XDP_DROP;
use aya_ebpf::macros::xdp;
use aya_ebpf::programs::XdpContext;

#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
