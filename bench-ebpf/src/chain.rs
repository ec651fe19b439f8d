//! A new source for every run of a `BPF_PROG_TEST_RUN` with many repeats:
//! writes source `n` of a range into the frame, counts, and tail-calls the
//! program under test (`CHAIN_NEXT[0]`). The knock rows of the cost table
//! need this: a knock changes its source's state, so a repeated frame from
//! one source would measure a retransmit, and one run per frame measures
//! mostly the syscall and a cold cache. The bench subtracts the same chain
//! into an empty program, so what this program costs cancels out.
//!
//! Source `n` is `CHAIN_CONFIG[0] + n` in the frame's address word that
//! iplock-bench's `nth_source` changes: the whole IPv4 address, bytes 4..8
//! of an IPv6 one (a new /64 each). No checksum is fixed: nothing checks it.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action::XDP_ABORTED;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, ProgramArray};
use aya_ebpf::programs::XdpContext;

#[map]
static CHAIN_NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// `[0]`: the first source's address word, as a number.
#[map]
static CHAIN_CONFIG: Array<u32> = Array::with_max_entries(1, 0);

/// `[0]`: runs so far (`n`).
#[map]
static CHAIN_STATE: Array<u64> = Array::with_max_entries(1, 0);

const ETH: usize = 14;

#[xdp]
pub fn bench_chain(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + ETH + 16 > ctx.data_end() {
        return XDP_ABORTED;
    }
    let (Some(base), Some(n)) = (CHAIN_CONFIG.get(0), CHAIN_STATE.get_ptr_mut(0)) else {
        return XDP_ABORTED;
    };
    // SAFETY: the word written is inside the frame
    // (checked above); `n` is this map's only slot, and one CPU runs this.
    unsafe {
        // The same offset for both: the IPv4 source is at 12, and bytes
        // 4..8 of the IPv6 source (at 8) are at 12 too.
        let at = start + ETH + 12;
        let word = base.wrapping_add(*n as u32);
        (at as *mut [u8; 4]).write_unaligned(word.to_be_bytes());
        *n += 1;
        CHAIN_NEXT.tail_call(&ctx, 0);
    }
    XDP_ABORTED
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
