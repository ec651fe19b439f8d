//! The filter's directory in bpffs: one pin per map and one per attached
//! interface's XDP link. Everything a loaded filter is lives here, so
//! status and unload need no other file and removing it removes the filter.
//!
//! A filter is known by its canonical path (the parent resolved with
//! realpath, since the directory itself may not exist yet), worked out once
//! when a [`PinDir`] is made: `/sys/fs/bpf/./x`, `//x`, `x/` and a symlink
//! are one filter with one set of locks.
//!
//! Two advisory locks (flock) guard a filter, on files under /run/iplock
//! named after that canonical path:
//!
//! - The owner lock (`.owner`) says who may create or remove the filter:
//!   `iplock run` holds it for its whole life, with its pid in the file,
//!   and `load` and `unload` for as long as they take. A second `run`, or a
//!   `load` or `unload` while `run` runs, is refused with the running
//!   daemon's pid: the daemon would go on sweeping and logging a filter
//!   that someone else replaced, or remove it on SIGTERM.
//! - The change lock (`.lock`) serialises changes to the pins: load,
//!   reload, unload, and the daemon's own start, reload (SIGHUP), attaching
//!   again and shutdown. `reload` takes only this one, so it works against
//!   a running daemon, as do `allow`, `ban` and `status`, which take none
//!   (they write single map entries, which the kernel keeps consistent).
//!
//! Both are tried without waiting: a busy filter is an exit status 2, not
//! a hang. A lock file exists only while it is held (its holder removes it
//! before letting go), so a failed command leaves nothing behind, and a
//! crashed holder's lock dies with the process.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use iplock_common::names::{LINK_PIN_PREFIX, MAP_CONFIG, PINNED_MAPS};
use sha2::{Digest as _, Sha256};

use crate::error::{Context as _, Result, input, quote};

/// Where the per-filter lock files live (tmpfs: locks end with the boot, as pins do).
const LOCK_DIR: &str = "/run/iplock";
/// How much of the pin directory's name a lock file's name shows, so that
/// the hash and suffix after it stay within NAME_MAX.
const LOCK_NAME_SHOWN: usize = 200;

const NAME_MAX: usize = libc::NAME_MAX as usize;
/// The longest path the kernel takes, without its NUL.
const PATH_MAX: usize = libc::PATH_MAX as usize - 1;

#[derive(Clone, Debug)]
pub struct PinDir(PathBuf);

/// Who takes the owner lock (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `load` or `unload`, for as long as it takes.
    Command,
    /// `iplock run`, for its whole life; its pid goes into the lock file so
    /// that whoever is refused learns which process to stop.
    Daemon,
}

impl PinDir {
    /// The filter directory `path` names, by its canonical path. Checks what
    /// every command that touches bpffs needs first: root, a name the
    /// kernel takes with the pins iplock makes inside it, and a parent on a
    /// mounted bpffs.
    pub fn new(path: &Path) -> Result<PinDir> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return input("iplock must run as root (it loads XDP programs and writes to bpffs)");
        }
        check_length(path)?;
        let dir = PinDir(canonical(path)?);
        check_length(&dir.0)?;
        let parent = dir.0.parent().unwrap_or(Path::new("/"));
        let c = std::ffi::CString::new(parent.as_os_str().as_bytes())
            .expect("canonicalize has refused any path with a NUL byte");
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
        Ok(dir)
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

    /// Takes the change lock (see the module comment); a second command
    /// while one holds it is refused rather than left to interleave.
    pub fn lock(&self) -> Result<Lock> {
        match Lock::take(self.lock_path("lock"))? {
            Some(lock) => Ok(lock),
            None => self.busy(),
        }
    }

    /// Takes the owner lock (see the module comment) for `owner`.
    pub fn own(&self, owner: Owner) -> Result<Lock> {
        let path = self.lock_path("owner");
        let Some(mut lock) = Lock::take(path.clone())? else {
            // Empty while a load or unload holds it, or a daemon has not
            // written its pid yet.
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            return match pid.trim().parse::<u32>() {
                Ok(pid) => input(format!(
                    "the filter at {} is run by `iplock run` (pid {pid}); stop it first",
                    self.0.display()
                )),
                Err(_) => self.busy(),
            };
        };
        // A daemon that crashed left its pid behind.
        lock.file
            .set_len(0)
            .context(|| format!("emptying {}", path.display()))?;
        if owner == Owner::Daemon {
            writeln!(lock.file, "{}", std::process::id())
                .context(|| format!("writing {}", path.display()))?;
        }
        Ok(lock)
    }

    fn busy<T>(&self) -> Result<T> {
        input(format!(
            "another iplock command is changing the filter at {} right now; try again when it is done",
            self.0.display()
        ))
    }

    /// `/run/iplock/<name>.<hash>.<kind>`: the directory's own name for
    /// whoever lists the locks, a hash of the whole canonical path so
    /// that no two filters share a lock.
    fn lock_path(&self, kind: &str) -> PathBuf {
        let bytes = self.0.as_os_str().as_bytes();
        let hash = Sha256::digest(bytes);
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        let name = self.0.file_name().map_or(&[][..], OsStr::as_bytes);
        let mut file = name[..name.len().min(LOCK_NAME_SHOWN)].to_vec();
        file.extend_from_slice(format!(".{hex}.{kind}").as_bytes());
        Path::new(LOCK_DIR).join(OsStr::from_bytes(&file))
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

/// A held lock file; dropping it removes the file and lets go.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock on `path`, or `None` while another process holds it.
    fn take(path: PathBuf) -> Result<Option<Lock>> {
        std::fs::create_dir_all(LOCK_DIR).context(|| format!("creating {LOCK_DIR}"))?;
        loop {
            let file = File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .context(|| format!("opening {}", path.display()))?;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Ok(None);
                }
                return Err(e).context(|| format!("locking {}", path.display()));
            }
            // The holder before us may have removed the file after we
            // opened it: a lock on a removed file guards nothing, so lock
            // the one at the path now instead.
            let held = file
                .metadata()
                .context(|| format!("reading {}", path.display()))?;
            match std::fs::metadata(&path) {
                Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => {
                    return Ok(Some(Lock { file, path }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, so whoever opened the file meanwhile
        // finds it gone once it has the lock, and starts again.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `path` with every symlink, `.`, `..` and doubled or trailing slash
/// resolved: the whole of it when it exists, else its parent, plus its
/// last component, which must then be a plain name.
fn canonical(path: &Path) -> Result<PathBuf> {
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return input(format!(
            "--pin-dir {:?} does not end in a directory name",
            path.as_os_str()
        ));
    };
    match std::fs::canonicalize(path) {
        Ok(p) => return Ok(p),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).context(|| format!("resolving {}", path.display())),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = match std::fs::canonicalize(parent) {
        Ok(p) => p.join(name),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return input(format!(
                "{} is not a directory; choose --pin-dir in a directory on a mounted bpffs, such as /sys/fs/bpf",
                parent.display()
            ));
        }
        Err(e) => return Err(e).context(|| format!("resolving {}", parent.display())),
    };
    if std::fs::symlink_metadata(&dir).is_ok() {
        return input(format!(
            "--pin-dir {} is a symlink to nothing; point it at an existing directory or name the filter's directory itself",
            path.display()
        ));
    }
    Ok(dir)
}

/// Refuses a path the kernel would refuse (ENAMETOOLONG), itself or with
/// the longest name iplock pins inside it.
fn check_length(path: &Path) -> Result<()> {
    let longest = path.components().map(|c| c.as_os_str().len()).max();
    if let Some(n) = longest.filter(|&n| n > NAME_MAX) {
        return input(format!(
            "a name in the pin directory's path is {n} bytes long, and the kernel takes at most {NAME_MAX}"
        ));
    }
    let most = PATH_MAX - 1 - longest_pin_name();
    let n = path.as_os_str().len();
    if n > most {
        return input(format!(
            "the pin directory's path is {n} bytes long, and with the pins iplock makes inside it the kernel takes at most {most}"
        ));
    }
    Ok(())
}

/// A link pin for an interface of the longest name the kernel allows, or
/// the longest map name.
fn longest_pin_name() -> usize {
    PINNED_MAPS
        .iter()
        .map(|m| m.len())
        .chain([LINK_PIN_PREFIX.len() + libc::IFNAMSIZ - 1])
        .max()
        .expect("there are pinned maps")
}

fn is_link(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(LINK_PIN_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn lock_names_tell_filters_apart_and_fit_a_directory_entry() {
        let a = PinDir(PathBuf::from("/sys/fs/bpf/a_b")).lock_path("lock");
        let b = PinDir(PathBuf::from("/sys/fs/bpf/a/b")).lock_path("lock");
        assert_ne!(a, b);
        assert!(a.starts_with(LOCK_DIR));
        let long = PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/{}",
            "x".repeat(NAME_MAX)
        )));
        let name = long.lock_path("owner");
        assert!(name.file_name().unwrap().len() <= NAME_MAX, "{name:?}");
    }

    #[test]
    fn lengths_the_kernel_refuses_are_bad_input() {
        let one = |n: usize| PathBuf::from(format!("/sys/fs/bpf/{}", "x".repeat(n)));
        assert!(check_length(&one(NAME_MAX)).is_ok());
        assert!(matches!(
            check_length(&one(NAME_MAX + 1)),
            Err(Error::Input(_))
        ));
        let deep = |depth: usize| {
            let mut p = PathBuf::from("/sys/fs/bpf");
            for _ in 0..depth {
                p.push("y".repeat(199));
            }
            p
        };
        // 11 + 20·200 = 4011 bytes leave room for `/link_<15 bytes>`; 21·200 do not.
        assert!(check_length(&deep(20)).is_ok());
        assert!(matches!(check_length(&deep(21)), Err(Error::Input(_))));
    }
}
