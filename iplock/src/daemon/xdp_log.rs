//! The task that passes the XDP program's own diagnostics (at debug
//! level: why a frame was dropped as malformed, an event lost to a full
//! ring) to the log, as the program's log ring delivers them.

use ::log::LevelFilter;
use tokio::io::unix::AsyncFd;

use crate::daemon::{Stop, stopped, watch_ring};
use crate::kernel::log::{self, KernelLog};
use crate::kernel::pin_dir::PinDir;

/// Forwards records until `stop`; does nothing where the program was
/// loaded to log nothing, and says so once if the ring cannot be read.
pub async fn run(dir: PinDir, mut stop: Stop) {
    if log::level() == LevelFilter::Off {
        return;
    }
    let logs = match log::open(&dir) {
        Ok(logs) => logs,
        Err(e) => return ::log::warn!("the XDP program's diagnostics stay unread: {e}"),
    };
    let registered = watch_ring(logs);
    let mut ring: AsyncFd<KernelLog> = match registered {
        Ok(ring) => ring,
        Err(e) => return ::log::warn!("the XDP program's diagnostics stay unread: {e}"),
    };
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            ready = ring.readable_mut() => match ready {
                Ok(mut guard) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                Err(e) => return ::log::warn!("the XDP program's diagnostics are no longer read: {e}"),
            },
        }
    }
}
