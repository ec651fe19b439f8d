//! The two ethtool operations the bench needs, through the SIOCETHTOOL
//! ioctl so that no ethtool binary is required: reading a device's driver
//! statistics (`ethtool -S`) and switching GRO on (`ethtool -K DEV gro on`).
//! Both act on the network namespace of the calling thread.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result, bail};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for ethtool");
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs one ethtool command whose buffer starts with the command word.
fn ioctl(dev: &str, buf: *mut libc::c_void) -> Result<()> {
    let sock = socket()?;
    if dev.len() >= libc::IFNAMSIZ {
        bail!("interface name {dev} is too long");
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: buf,
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq whose data points at a buffer the caller
    // sized for the command.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("SIOCETHTOOL on {dev}"));
    }
    Ok(())
}

/// `ethtool -S DEV`: every driver statistic by name.
pub fn stats(dev: &str) -> Result<BTreeMap<String, u64>> {
    // struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[] }
    let mut info = [0u32; 6];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_STATS;
    ioctl(dev, info.as_mut_ptr().cast())?;
    let count = info[4] as usize;

    // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[] }
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_STATS;
    strings[2] = count as u32;
    ioctl(dev, strings.as_mut_ptr().cast())?;
    // SAFETY: viewing initialised u32s as bytes.
    let bytes: &[u8] = unsafe {
        std::slice::from_raw_parts(
            strings.as_ptr().cast::<u8>().add(12),
            count * ETH_GSTRING_LEN,
        )
    };
    let names = bytes.chunks(ETH_GSTRING_LEN).map(|c| {
        let end = c.iter().position(|b| *b == 0).unwrap_or(c.len());
        String::from_utf8_lossy(&c[..end]).into_owned()
    });

    // struct ethtool_stats { u32 cmd, n_stats; u64 data[] }
    let mut values = vec![0u64; 1 + count];
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
    head[4..].copy_from_slice(&(count as u32).to_ne_bytes());
    values[0] = u64::from_ne_bytes(head);
    ioctl(dev, values.as_mut_ptr().cast())?;
    Ok(names.zip(values[1..].iter().copied()).collect())
}

/// `ethtool -K DEV gro on`. A veth without an XDP program only runs NAPI
/// (and so only accepts frames redirected to it by XDP) when GRO is on.
pub fn enable_gro(dev: &str) -> Result<()> {
    // struct ethtool_value { u32 cmd, data }
    let mut value = [ETHTOOL_SGRO, 1u32];
    ioctl(dev, value.as_mut_ptr().cast())
}
