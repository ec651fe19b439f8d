//! iplock's lock files, named as iplock names them, for tests that hold a
//! filter's lock themselves or check what is left in the lock directory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where iplock keeps its per-filter lock files.
pub const LOCK_DIR: &str = "/run/iplock";
/// The sentence a command gets while another one holds the filter's change lock.
pub const BUSY: &str = "another iplock command is changing the filter at";

/// The lock file of `kind` (`lock`, the change lock, or `owner`) for the
/// canonical pin dir `pin_dir`: `<name>.<first 8 bytes of its path's
/// SHA-256 in hex>.<kind>`.
pub fn lock_path(pin_dir: &Path, kind: &str) -> PathBuf {
    let hash = Sha256::digest(pin_dir.as_os_str().as_encoded_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = pin_dir.file_name().expect("a pin dir has a name");
    Path::new(LOCK_DIR).join(format!("{}.{hex}.{kind}", name.to_string_lossy()))
}

/// Entries of the lock directory that belong to `pin_dir`, whatever their
/// naming: every one that contains the directory's name and a dot after it.
pub fn lock_files_of(pin_dir: &Path) -> Vec<String> {
    let name = format!(
        "{}.",
        pin_dir
            .file_name()
            .expect("a pin dir has a name")
            .to_string_lossy()
    );
    let Ok(entries) = std::fs::read_dir(LOCK_DIR) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&name))
        .collect()
}

/// The change lock of the filter in `pin_dir`, held by the test as another
/// iplock command would hold it; removed and released on drop, as iplock
/// does.
pub struct HeldLock {
    _file: File,
    path: PathBuf,
}

impl HeldLock {
    pub fn take(pin_dir: &Path) -> HeldLock {
        std::fs::create_dir_all(LOCK_DIR).expect("create the lock dir");
        let path = lock_path(pin_dir, "lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(
            rc,
            0,
            "flock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        HeldLock { _file: file, path }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
