//! Reference costs of the primitives an XDP filter is made of, measured
//! with TestRun beside iplock: what one call of the boot-time clock, one
//! LRU hash lookup and one LRU hash update cost on the machine at hand.
//! Each program does exactly that on top of the empty program and passes.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{LruHashMap, PerCpuArray};
use aya_ebpf::programs::XdpContext;

/// Keyed like iplock's source map: 16-byte addresses.
#[map]
static PROBE_LRU: LruHashMap<[u8; 16], u64> = LruHashMap::with_max_entries(65_536, 0);

/// Where results go, so that nothing is optimised away.
#[map]
static PROBE_SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const KEY_OFFSET: usize = 14 + 8;

#[inline(always)]
fn sink(v: u64) {
    if let Some(p) = PROBE_SINK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *p = v };
    }
}

/// The 16 bytes of the frame from the IP source address on (the source
/// address itself for IPv6), as iplock's address key would be.
#[inline(always)]
fn key(ctx: &XdpContext) -> Option<[u8; 16]> {
    let start = ctx.data() + KEY_OFFSET;
    if start + 16 > ctx.data_end() {
        return None;
    }
    // SAFETY: the 16 bytes are inside the frame (checked above).
    Some(unsafe { (start as *const [u8; 16]).read_unaligned() })
}

#[xdp]
pub fn probe_clock(_ctx: XdpContext) -> u32 {
    // SAFETY: a helper without arguments.
    sink(unsafe { bpf_ktime_get_boot_ns() });
    XDP_PASS
}

#[xdp]
pub fn probe_clock_coarse(_ctx: XdpContext) -> u32 {
    // SAFETY: a helper without arguments.
    sink(unsafe { bpf_ktime_get_coarse_ns() });
    XDP_PASS
}

#[xdp]
pub fn probe_jiffies(_ctx: XdpContext) -> u32 {
    // SAFETY: a helper without arguments.
    sink(unsafe { bpf_jiffies64() });
    XDP_PASS
}

#[xdp]
pub fn probe_lookup(ctx: XdpContext) -> u32 {
    if let Some(k) = key(&ctx) {
        // SAFETY: the value is copied out at once.
        sink(unsafe { PROBE_LRU.get(k) }.copied().unwrap_or(0));
    }
    XDP_PASS
}

#[xdp]
pub fn probe_update(ctx: XdpContext) -> u32 {
    if let Some(k) = key(&ctx) {
        let _ = PROBE_LRU.insert(k, 1, 0);
    }
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
