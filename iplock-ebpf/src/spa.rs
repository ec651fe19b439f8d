//! UDP to the SPA port: copied (source, interface, payload) into the SPA
//! ring for `iplock run`, which verifies it and opens the door; then
//! answered as a knock port is, so a scan cannot tell it from an unused
//! port. Called before `decide`, which never sees these datagrams: they
//! neither advance nor reset knock progress.

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::helpers::generated::bpf_xdp_load_bytes;
use aya_ebpf::programs::XdpContext;
use iplock_common::addr::Words;
use iplock_common::config::{Config, FLAG_KNOCK_DROP};
use iplock_common::counters::Counter;
use iplock_common::decide::Lookup;
use iplock_common::spa::{RateWindow, SPA_PAYLOAD_MAX, SPA_PER_SOURCE, SpaHeader, SpaRecord};

use crate::{IPLOCK_SPA, IPLOCK_SPA_RATE, IPLOCK_SPA_SOURCES, Maps, count};

/// UDP header bytes before the payload.
const UDP_HEADER: usize = 8;

/// The verdict of a datagram to the SPA port from `src`, whose UDP header
/// starts at `l4` and whose datagram ends at `end` (both frame offsets).
/// A banned source's payload is still handed over (SPA is authenticated,
/// and an accepted packet lifts a guessing ban), but it gets the silence
/// the rest of its traffic gets.
#[inline(always)]
pub fn handle(ctx: &XdpContext, maps: &mut Maps<'_>, cfg: &Config, l4: usize, end: usize) -> u32 {
    // The record first, and the offsets written into it and read back
    // from it: memory whose content the verifier does not track. Every
    // parse path (VLAN tags, IPv4 header lengths, IPv6 extension headers)
    // then goes on in one state, and the verifier walks what follows once
    // rather than once per path (a million instructions otherwise).
    let mut entry = IPLOCK_SPA.reserve::<SpaRecord>(0);
    let place = entry.as_mut().map(|e| {
        let rec = e.as_mut_ptr();
        let from = l4 + UDP_HEADER;
        // SAFETY: the header is inside the reserved record.
        unsafe {
            (&raw mut (*rec).header._pad).write_volatile(from as u32);
            (&raw mut (*rec).header.wire_len).write_volatile(end.saturating_sub(from) as u32);
        }
        rec
    });
    let now = maps.now();
    let banned = matches!(maps.ban(), Some(b) if b.until_ns > now);
    let verdict = if banned || cfg.has_flag(FLAG_KNOCK_DROP) {
        XDP_DROP
    } else {
        XDP_PASS
    };
    match (entry, place) {
        (Some(entry), Some(rec)) if admit(maps.ban_key, now, cfg) => {
            copy(ctx, maps.src, rec);
            entry.submit(0);
            count(Counter::SpaSeen);
        }
        (Some(entry), _) => {
            entry.discard(0);
            count(Counter::SpaThrottled);
        }
        _ => count(Counter::SpaThrottled),
    }
    verdict
}

/// The rate limit: the source's window first (keyed by its ban key, so an
/// IPv6 /64 shares one), then this CPU's share of the budget. A source
/// over its limit costs nothing of the CPU's budget.
#[inline(always)]
fn admit(key: &Words, now: u64, cfg: &Config) -> bool {
    match IPLOCK_SPA_SOURCES.get_ptr_mut(key) {
        // SAFETY: a pointer into the map's value, valid while the program
        // runs; two CPUs updating one source's window at once may lose a
        // count, which the per-CPU budget below still bounds.
        Some(w) => {
            if !unsafe { &mut *w }.admit(now, SPA_PER_SOURCE) {
                return false;
            }
        }
        None => {
            let w = RateWindow {
                start_ns: now,
                count: 1,
                _pad: 0,
            };
            // A full LRU map evicts rather than fails.
            let _ = IPLOCK_SPA_SOURCES.insert(key, w, 0);
        }
    }
    match IPLOCK_SPA_RATE.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, written only by this CPU while this
        // program runs.
        Some(w) => unsafe { &mut *w }.admit(now, u32::from(cfg.spa_per_cpu)),
        None => false,
    }
}

/// Copies the payload (at most [`SPA_PAYLOAD_MAX`] bytes) into the
/// record, whose header holds its offset and length, with
/// bpf_xdp_load_bytes (Linux 5.18): one helper call of a length the
/// verifier sees bounded by the record. A loop over the packet would run
/// on older kernels, but costs the verifier a walk of its iterations for
/// every state that reaches it; the helper also reads multi-buffer frames.
#[inline(always)]
fn copy(ctx: &XdpContext, src: &Words, rec: *mut SpaRecord) {
    // SAFETY: the header is inside the reserved record.
    let (from, wire_len) = unsafe {
        (
            (&raw const (*rec).header._pad).read_volatile() as usize,
            (&raw const (*rec).header.wire_len).read_volatile() as usize,
        )
    };
    // The UDP length field says how long the payload is: shorter than the
    // IP datagram when it carries trailing bytes (which the kernel trims),
    // longer in the first fragment of a datagram that did not fit in one
    // frame, which the daemon then sees as cut and refuses as too long.
    let mut field = [0u8; 2];
    // SAFETY: two bytes into a local; the helper checks the packet's bounds.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            from.wrapping_sub(UDP_HEADER - 4) as u32,
            field.as_mut_ptr().cast(),
            2,
        )
    };
    let udp_len = if rc == 0 {
        usize::from(u16::from_be_bytes(field)).saturating_sub(UDP_HEADER)
    } else {
        wire_len
    };
    let in_frame = if udp_len < wire_len {
        udp_len
    } else {
        wire_len
    };
    let want = if in_frame > SPA_PAYLOAD_MAX {
        SPA_PAYLOAD_MAX
    } else {
        in_frame
    };
    // Opaque to the compiler, which would otherwise merge the check below
    // into the computation above, where the verifier cannot see it bound
    // the length away from 0.
    // SAFETY: a volatile read of a local.
    let want = unsafe { core::ptr::read_volatile(&want) };
    let mut len = 0;
    if want > 0 && want <= SPA_PAYLOAD_MAX {
        // SAFETY: the destination is the record's payload, `want` bytes at
        // most; the helper checks the packet's bounds itself.
        let rc = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                from as u32,
                (&raw mut (*rec).payload).cast(),
                want as u32,
            )
        };
        if rc == 0 {
            len = want;
        }
    }
    // SAFETY: the header is inside the reserved record; the kernel hands
    // XDP programs a valid xdp_md.
    unsafe {
        (&raw mut (*rec).header).write(SpaHeader {
            addr: src.bytes(),
            ifindex: (*ctx.ctx).ingress_ifindex,
            len: len as u32,
            wire_len: udp_len as u32,
            _pad: 0,
        })
    };
}
