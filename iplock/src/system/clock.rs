//! The clock of every time in the maps: CLOCK_MONOTONIC_COARSE, the one
//! `bpf_ktime_get_coarse_ns` reads in the XDP program, so that expiry
//! times in the maps compare with "now" in user space. It advances once per
//! kernel tick (1–4 ms), and the program's reading may lag one tick more
//! (see its `Maps::now`), so timeouts are accurate to a few ms; it does not
//! count time suspended.

/// Nanoseconds of CLOCK_MONOTONIC_COARSE.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC_COARSE) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whole seconds from `now` until `until_ns`, rounded up; 0 when past.
pub fn seconds_left(until_ns: u64, now: u64) -> u64 {
    until_ns.saturating_sub(now).div_ceil(1_000_000_000)
}
