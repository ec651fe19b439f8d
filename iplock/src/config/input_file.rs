//! Files the administrator names for iplock to read (config files,
//! secrets). A path can name anything: a FIFO whose open or read never
//! returns, `/dev/zero` that never ends, a log file of gigabytes. Only a
//! regular file of a bounded size is read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::io_reason;
use crate::error::{Result, input, quote, quote_within};

/// Largest file read: a config or secret file is a few kilobytes.
pub const MAX_BYTES: u64 = 1 << 20;

/// A file's text, and the metadata of the very descriptor it was read
/// from, so that checks on it (a secret's mode) cannot race a rename.
pub struct Text {
    pub text: String,
    pub meta: Metadata,
}

/// Reads the text of `path`; `what` names it in errors ("the config file").
pub fn read(path: &Path, what: &str) -> Result<Text> {
    let name = || format!("{what} {}", quote(path.display()));
    let cannot = |e: std::io::Error| input(format!("cannot read {}: {}", name(), io_reason(&e)));
    // O_NONBLOCK: opening a FIFO with no writer must not wait for one
    // (std adds O_CLOEXEC itself).
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return cannot(e),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return cannot(e),
    };
    if let Some(kind) = not_regular(&meta) {
        return input(format!("{} is {kind}, not a regular file", name()));
    }
    let mut bytes = Vec::new();
    // One byte past the bound tells a file at the bound from a larger one.
    if let Err(e) = File::take(file, MAX_BYTES + 1).read_to_end(&mut bytes) {
        return cannot(e);
    }
    if bytes.len() as u64 > MAX_BYTES {
        return input(format!(
            "{} is larger than {} MiB; is it the right file?",
            name(),
            MAX_BYTES >> 20
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Text { text, meta }),
        Err(_) => input(format!("{} is not UTF-8 text", name())),
    }
}

/// Parses the TOML `text` of `path`; an error says the line and quotes
/// little of what was written. `what` names the file ("the config file").
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path, what: &str) -> Result<T> {
    toml::from_str(text).or_else(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .map_or(String::new(), |l| format!(" line {l}:"));
        input(format!(
            "{what} {} is invalid:{line} {}",
            quote(path.display()),
            quote_within(&e.message().trim().replace('\n', "; "))
        ))
    })
}

fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    let kinds = [
        (t.is_dir(), "a directory"),
        (t.is_fifo(), "a FIFO"),
        (t.is_char_device(), "a character device"),
        (t.is_block_device(), "a block device"),
        (t.is_socket(), "a socket"),
        (!t.is_file(), "a special file"),
    ];
    kinds.into_iter().find(|(is, _)| *is).map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("iplock-input-{}-{name}", std::process::id()))
    }

    fn refused(path: &Path, needle: &str) {
        let err = read(path, "the config file").err().expect("refused");
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "{msg:?}");
    }

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        refused(Path::new("/dev/zero"), "a character device");
        refused(&std::env::temp_dir(), "a directory");
        refused(Path::new("/nonexistent/iplock.toml"), "no such file");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let path = temp("fifo");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        refused(&path, "a FIFO");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_size_bound_is_exact() {
        let path = temp("size");
        std::fs::write(&path, "#".repeat(MAX_BYTES as usize)).unwrap();
        assert_eq!(
            read(&path, "the config file").ok().unwrap().text.len() as u64,
            MAX_BYTES
        );
        std::fs::write(&path, "#".repeat(MAX_BYTES as usize + 1)).unwrap();
        refused(&path, "larger than 1 MiB");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        refused(&path, "not UTF-8");
        std::fs::remove_file(path).unwrap();
    }
}
