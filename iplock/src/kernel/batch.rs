//! Reading a whole hash map with BPF_MAP_LOOKUP_BATCH, a few system calls
//! for the largest map. aya 0.14 walks a map with BPF_MAP_GET_NEXT_KEY and
//! BPF_MAP_LOOKUP_ELEM, two calls per entry (a second for `iplock status`
//! on 100,000 sources and as many bans), and has no batched lookup: this is
//! the one call it lacks, written against the kernel's UAPI
//! (include/uapi/linux/bpf.h; Linux 5.6, older than iplock needs).

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::{HashMap, IterableMap as _, MapData};

/// Entries asked for per call: a few dozen calls for the largest maps,
/// with buffers of a few hundred KiB.
const BATCH: usize = 4096;

/// `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

/// The `batch` member of `union bpf_attr`; the kernel reads the rest of
/// the union as zeros.
#[repr(C, align(8))]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of `map`, read [`BATCH`] at a time, bucket by bucket: an
/// entry the program adds or removes meanwhile may or may not be there,
/// none comes twice (a key stays in its bucket).
pub fn entries<K, V>(map: &HashMap<MapData, K, V>) -> io::Result<Vec<(K, V)>>
where
    K: aya::Pod + bytemuck::Pod,
    V: aya::Pod + bytemuck::Pod,
{
    entries_by(map, BATCH)
}

/// [`entries`], asking for `batch` entries per call at first. The kernel
/// copies whole buckets and refuses (ENOSPC) a call whose room is smaller
/// than the next bucket: the room then doubles.
pub fn entries_by<K, V>(map: &HashMap<MapData, K, V>, batch: usize) -> io::Result<Vec<(K, V)>>
where
    K: aya::Pod + bytemuck::Pod,
    V: aya::Pod + bytemuck::Pod,
{
    let data = map.map();
    let fd = data.fd().as_fd().as_raw_fd();
    let mut room = batch.clamp(1, u32::MAX as usize);
    let mut keys = vec![K::zeroed(); room];
    let mut values = vec![V::zeroed(); room];
    // Where the next call starts: a bucket index for hash maps (a u32),
    // which only the kernel reads and writes; null for the first call.
    let mut next = 0u64;
    let token = &raw mut next as u64;
    let mut started = false;
    let mut out = Vec::new();
    loop {
        let mut attr = BatchAttr {
            in_batch: if started { token } else { 0 },
            out_batch: token,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: room as u32,
            map_fd: fd as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` is a valid `batch` of `union bpf_attr` and its size
        // is passed along. The kernel writes at most `count` keys and values
        // of the map's sizes, which aya checked are those of K and V when it
        // typed the map (a HashMap is never per-CPU), into buffers of `room`
        // Ks and Vs, both Pod; and a bucket index into `next`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let last = rc < 0 && {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSPC) => {
                    let max = max_entries(data);
                    if room >= max {
                        return Err(e);
                    }
                    room = (room * 2).min(max);
                    keys.resize(room, K::zeroed());
                    values.resize(room, V::zeroed());
                    started = true;
                    continue;
                }
                // The last call says so with ENOENT, and returns what it read.
                Some(libc::ENOENT) => true,
                _ => return Err(e),
            }
        };
        let n = attr.count as usize;
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        if last {
            return Ok(out);
        }
        started = true;
    }
}

/// Past the map's size, no bucket can be larger: ENOSPC means something else.
fn max_entries(map: &MapData) -> usize {
    map.info().map_or(0, |i| i.max_entries() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_has_the_kernels_layout() {
        assert_eq!(size_of::<BatchAttr>(), 56);
        assert_eq!(align_of::<BatchAttr>(), 8);
        assert_eq!(std::mem::offset_of!(BatchAttr, in_batch), 0);
        assert_eq!(std::mem::offset_of!(BatchAttr, out_batch), 8);
        assert_eq!(std::mem::offset_of!(BatchAttr, keys), 16);
        assert_eq!(std::mem::offset_of!(BatchAttr, values), 24);
        assert_eq!(std::mem::offset_of!(BatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(BatchAttr, map_fd), 36);
        assert_eq!(std::mem::offset_of!(BatchAttr, elem_flags), 40);
        assert_eq!(std::mem::offset_of!(BatchAttr, flags), 48);
    }
}
