//! Cleanup that runs on drop and also on SIGINT, SIGTERM or SIGHUP, so that
//! Ctrl-C in the middle of the demo leaves no namespace or pin behind.
use std::{
    mem::MaybeUninit,
    process,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use anyhow::{Result, ensure};

type Action = Box<dyn FnOnce() + Send>;

/// Registered actions, oldest first; each is taken out exactly once, by its
/// guard's drop or by the signal thread, whichever comes first.
static PENDING: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Runs its action when dropped, or at a caught signal.
pub struct Guard(u64);

impl Guard {
    pub fn new(action: impl FnOnce() + Send + 'static) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        lock().push((id, Box::new(action)));
        Guard(id)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let action = {
            let mut pending = lock();
            let index = pending.iter().position(|(id, _)| *id == self.0);
            index.map(|i| pending.remove(i).1)
        };
        if let Some(action) = action {
            action();
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(u64, Action)>> {
    // A panicking action must not stop the others from running.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocks the termination signals in this thread, and so in every thread
/// spawned after it, and waits for them in a dedicated thread that runs the
/// pending actions newest first and exits. Cleanup thus runs as ordinary code,
/// not inside a signal handler. Call before spawning any other thread.
/// Child processes start with an empty signal mask (std resets it).
pub fn catch_signals() -> Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set before sigaddset and
    // pthread_sigmask read it; all pointers are valid for the calls.
    let set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(set.as_mut_ptr(), sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
        ensure!(rc == 0, "pthread_sigmask failed: error {rc}");
        set.assume_init()
    };
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is an initialised signal set and `sig` a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            eprintln!("\ncaught signal {sig}, cleaning up");
            let actions: Vec<_> = lock().drain(..).rev().collect();
            for (_, action) in actions {
                action();
            }
            process::exit(128 + sig);
        })?;
    Ok(())
}
