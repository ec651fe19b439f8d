//! Frame generator for `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`:
//! the kernel copies the template frame (`data_in`) into each page of a
//! page pool once, runs this program on every frame and transmits what it
//! returns `XDP_TX` for out of the interface named by `ctx_in`.
//!
//! Pages are recycled without being reset, so the program must not assume
//! it sees the template: it reads each field it changes from the frame and
//! adjusts the checksums incrementally (RFC 1624), which keeps the IPv4
//! header and TCP checksums valid whatever the page held before.
//!
//! Frame `n` gets source address `base + n % src_count` (low 32 bits),
//! source port `1024 + (n / src_count) % port_count` and sequence number `n`.
//! The template must be Ethernet + IPv4 (IHL 5) or IPv6 (no extension
//! headers) + TCP, as iplock-bench builds it.
#![no_std]
#![no_main]

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_TX};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::Array;
use aya_ebpf::programs::XdpContext;
use iplock_bench_ebpf::{
    CFG_LEN, CFG_PORT_COUNT, CFG_SRC_BASE, CFG_SRC_COUNT, STATE_BAD, STATE_FRAMES, STATE_LEN,
};

#[map]
static GEN_CONFIG: Array<u32> = Array::with_max_entries(CFG_LEN, 0);

#[map]
static GEN_STATE: Array<u64> = Array::with_max_entries(STATE_LEN, 0);

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Byte offsets of the fields the generator rewrites, per address family.
struct Layout {
    /// Frame length the template must have at least.
    len: usize,
    /// The low 32 bits of the source address.
    src_low: usize,
    /// IPv4 header checksum (IPv6 has none).
    ip_csum: Option<usize>,
    tcp: usize,
}

const TCP_SEQ: usize = 4;
const TCP_CSUM: usize = 16;

const V4: Layout = Layout {
    len: ETH_LEN + 20 + 20,
    src_low: ETH_LEN + 12,
    ip_csum: Some(ETH_LEN + 10),
    tcp: ETH_LEN + 20,
};

const V6: Layout = Layout {
    len: ETH_LEN + 40 + 20,
    src_low: ETH_LEN + 8 + 12,
    ip_csum: None,
    tcp: ETH_LEN + 40,
};

#[xdp]
pub fn bench_gen(ctx: XdpContext) -> u32 {
    // A frame that does not have the template's layout is a bench bug; it
    // is counted and dropped so that the bench sees it and fails.
    match fill(&ctx) {
        Ok(()) => XDP_TX,
        Err(()) => {
            bump(STATE_BAD);
            XDP_DROP
        }
    }
}

#[inline(always)]
fn fill(ctx: &XdpContext) -> Result<(), ()> {
    let data = ctx.data();
    let end = ctx.data_end();
    if data + ETH_LEN > end {
        return Err(());
    }
    // SAFETY: the 14-byte Ethernet header is inside the frame (checked above).
    let ethertype = u16::from_be(unsafe { ((data + 12) as *const u16).read_unaligned() });
    let layout = match ethertype {
        ETHERTYPE_IPV4 => &V4,
        ETHERTYPE_IPV6 => &V6,
        _ => return Err(()),
    };
    if data + layout.len > end {
        return Err(());
    }
    let n = bump(STATE_FRAMES);
    let src_count = u64::from(config(CFG_SRC_COUNT).max(1));
    let port_count = u64::from(config(CFG_PORT_COUNT).max(1));
    let src = config(CFG_SRC_BASE).wrapping_add((n % src_count) as u32);
    let sport = 1024u16.wrapping_add(((n / src_count) % port_count) as u16);
    let seq = n as u32;

    // SAFETY (every access below): `data + layout.len <= end` was checked,
    // and each offset plus its width is within layout.len.
    let mut ip_sum = Sum::new();
    let mut tcp_sum = Sum::new();
    let src_words = [(src >> 16) as u16, src as u16];
    for (i, word) in src_words.iter().enumerate() {
        let at = data + layout.src_low + 2 * i;
        let (old, new) = unsafe { replace(at, *word) };
        ip_sum.change(old, new);
        tcp_sum.change(old, new);
    }
    let (old, new) = unsafe { replace(data + layout.tcp, sport) };
    tcp_sum.change(old, new);
    let seq_words = [(seq >> 16) as u16, seq as u16];
    for (i, word) in seq_words.iter().enumerate() {
        let (old, new) = unsafe { replace(data + layout.tcp + TCP_SEQ + 2 * i, *word) };
        tcp_sum.change(old, new);
    }
    if let Some(at) = layout.ip_csum {
        unsafe { ip_sum.apply(data + at) };
    }
    unsafe { tcp_sum.apply(data + layout.tcp + TCP_CSUM) };
    Ok(())
}

/// Writes `value` (host order) as a big-endian word at `at`; returns the old
/// and new words exactly as stored, for the checksum update.
///
/// # Safety
/// `at..at + 2` must be inside the frame.
#[inline(always)]
unsafe fn replace(at: usize, value: u16) -> (u16, u16) {
    let p = at as *mut u16;
    // SAFETY: the caller guarantees the two bytes are in the frame.
    let old = unsafe { p.read_unaligned() };
    let new = value.to_be();
    unsafe { p.write_unaligned(new) };
    (old, new)
}

/// An incremental Internet checksum update, HC' = ~(~HC + ~m + m') (RFC 1624,
/// eqn. 3). One's complement sums do not depend on byte order, so words are
/// added as they are stored.
struct Sum(u32);

impl Sum {
    #[inline(always)]
    const fn new() -> Self {
        Sum(0)
    }

    #[inline(always)]
    fn change(&mut self, old: u16, new: u16) {
        self.0 += u32::from(!old) + u32::from(new);
    }

    /// # Safety
    /// `at..at + 2` must be inside the frame.
    #[inline(always)]
    unsafe fn apply(&self, at: usize) {
        let p = at as *mut u16;
        // SAFETY: the caller guarantees the two bytes are in the frame.
        let check = unsafe { p.read_unaligned() };
        let mut sum = self.0 + u32::from(!check);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        unsafe { p.write_unaligned(!(sum as u16)) };
    }
}

#[inline(always)]
fn config(index: u32) -> u32 {
    GEN_CONFIG.get(index).copied().unwrap_or(0)
}

/// Adds one to a state slot and returns its old value. Live-frame test runs
/// execute on the one CPU that made the syscall, so a plain add does not race.
#[inline(always)]
fn bump(index: u32) -> u64 {
    match GEN_STATE.get_ptr_mut(index) {
        // SAFETY: an array slot, valid for the map's lifetime.
        Some(p) => unsafe {
            let n = *p;
            *p = n + 1;
            n
        },
        None => 0,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
