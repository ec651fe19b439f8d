//! The filter's directory in bpffs: one pin per map and one per attached
//! interface's XDP link. Everything a loaded filter is lives here, so
//! status and unload need no other file and removing it removes the filter.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use iplock_common::names::{LINK_PIN_PREFIX, MAP_CONFIG};

use crate::error::{Context as _, Result, input, quote};

/// Where the per-filter lock files live (tmpfs: locks end with the boot, as pins do).
const LOCK_DIR: &str = "/run/iplock";

#[derive(Clone, Debug)]
pub struct PinDir(PathBuf);

impl PinDir {
    pub fn new(path: impl Into<PathBuf>) -> PinDir {
        PinDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn link(&self, iface: &str) -> PathBuf {
        self.0.join(format!("{LINK_PIN_PREFIX}{iface}"))
    }

    /// Checks what every command that touches bpffs needs: root, and the
    /// pin directory's parent on a mounted bpffs.
    pub fn preflight(&self) -> Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return input("iplock must run as root (it loads XDP programs and writes to bpffs)");
        }
        let parent = self.0.parent().unwrap_or(Path::new("/"));
        let c = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes()).map_err(|_| {
            crate::error::Error::Input("the pin directory contains a NUL byte".into())
        })?;
        // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is NUL-terminated and `st` is writable.
        let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        if rc != 0 || st.f_type != libc::BPF_FS_MAGIC {
            return input(format!(
                "{} is not on a mounted bpffs; mount it with `mount -t bpf bpf /sys/fs/bpf` or choose --pin-dir under it",
                quote(parent.display())
            ));
        }
        Ok(())
    }

    /// Takes the lock that serialises the commands changing this filter
    /// (load, reload, unload, run). It is an advisory lock on a file under
    /// /run/iplock named after the pin directory, which must exist before
    /// the filter does; a second command while one holds it is refused
    /// rather than left to interleave.
    pub fn lock(&self) -> Result<DirLock> {
        let dir = Path::new(LOCK_DIR);
        std::fs::create_dir_all(dir).context(|| format!("creating {LOCK_DIR}"))?;
        let name = self.0.to_string_lossy().replace('/', "_");
        let path = dir.join(format!("{name}.lock"));
        let file =
            std::fs::File::create(&path).context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            return input(format!(
                "another iplock command is changing the filter at {} right now; try again when it is done",
                self.0.display()
            ));
        }
        Ok(DirLock { _file: file, path })
    }

    /// Creates the directory for a new filter.
    pub fn create(&self) -> Result<()> {
        match std::fs::create_dir(&self.0) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => input(format!(
                "a filter is already loaded at {}; run `iplock unload --pin-dir {}` first",
                self.0.display(),
                self.0.display()
            )),
            Err(e) => Err(e).context(|| format!("creating {}", self.0.display())),
        }
    }

    /// Fails with an input error when no filter is loaded here.
    pub fn require_loaded(&self) -> Result<()> {
        if self.map(MAP_CONFIG).exists() {
            Ok(())
        } else {
            input(format!(
                "no iplock filter is loaded at {}",
                quote(self.0.display())
            ))
        }
    }

    /// Removes the links first (detaching the program from every
    /// interface), then the maps, then the directory.
    pub fn remove_all(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.0) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context(|| format!("reading {}", self.0.display())),
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .context(|| format!("reading {}", self.0.display()))?;
        paths.sort_by_key(|p| !is_link(p));
        for p in paths {
            std::fs::remove_file(&p).context(|| format!("removing {}", p.display()))?;
        }
        std::fs::remove_dir(&self.0).context(|| format!("removing {}", self.0.display()))
    }

    /// Names of the interfaces that have a pinned link here.
    pub fn linked_interfaces(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.0).context(|| format!("reading {}", self.0.display()))? {
            let e = e.context(|| format!("reading {}", self.0.display()))?;
            if let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(LINK_PIN_PREFIX))
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Held while a command changes a filter; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DirLock {
    /// Removes the lock file once the filter is gone, still holding the
    /// lock: a command that opened the file meanwhile fails to lock it and
    /// exits, so no two commands ever hold locks on different files.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn is_link(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(LINK_PIN_PREFIX))
}
