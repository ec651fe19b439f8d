//! The kernel's boot-time clock, the one `bpf_ktime_get_boot_ns` reads, so
//! that expiry times in the maps compare with "now" in user space.

/// Nanoseconds since boot, suspend included.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_BOOTTIME always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whole seconds from `now` until `until_ns`, rounded up; 0 when past.
pub fn seconds_left(until_ns: u64, now: u64) -> u64 {
    until_ns.saturating_sub(now).div_ceil(1_000_000_000)
}

/// The clock every time in the maps is on: the one the XDP program reads.
pub fn now_ns() -> u64 {
    boot_ns()
}
