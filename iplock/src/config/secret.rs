//! The shared secret of rotating knocks: 32 random bytes, stored as hex in
//! a file only its owner may read.

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::config::input_file;
use crate::error::{Context as _, Result, input, quote};

pub const SECRET_BYTES: usize = 32;
pub type Secret = [u8; SECRET_BYTES];

/// Reads a secret file, refusing one that others may read: a secret the
/// whole machine can read is no secret.
pub fn read(path: &Path) -> Result<Secret> {
    let file = input_file::read(path, "the secret file")?;
    refuse_shared(path, &file.meta, "the secret file")?;
    parse_hex(file.text.trim()).ok_or_else(|| {
        crate::error::Error::Input(format!(
            "the secret file {} does not hold {SECRET_BYTES} bytes in hex; make one with `iplock secret new`",
            quote(path.display())
        ))
    })
}

/// Refuses a file of secrets (`what`, "the secret file") whose mode lets
/// anyone but its owner read or write it, checked on the descriptor it was
/// read from (`meta` of [`input_file::Text`]).
pub fn refuse_shared(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if meta.permissions().mode() & 0o077 != 0 {
        return input(format!(
            "{what} {} is readable by others; make it readable by its owner only (chmod 600)",
            quote(path.display())
        ));
    }
    Ok(())
}

fn parse_hex(s: &str) -> Option<Secret> {
    if s.len() != SECRET_BYTES * 2 {
        return None;
    }
    let mut out = [0u8; SECRET_BYTES];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new secret from the kernel's random source.
pub fn generate() -> Result<Secret> {
    let mut s = [0u8; SECRET_BYTES];
    let mut filled = 0;
    while filled < s.len() {
        // SAFETY: writes at most the remaining bytes of `s`.
        let n = unsafe { libc::getrandom(s[filled..].as_mut_ptr().cast(), s.len() - filled, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context(|| "getrandom".into());
        }
        filled += n as usize;
    }
    Ok(s)
}

/// Writes a new secret to standard output as hex. When the output is a
/// file (`iplock secret new > F`), it is first made readable by its owner
/// only, before the secret is in it.
pub fn write_new() -> Result<()> {
    let out = std::io::stdout();
    let fd = out.as_raw_fd();
    // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is our standard output and `st` is writable.
    if unsafe { libc::fstat(fd, &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        // SAFETY: fchmod on our own standard output.
        && unsafe { libc::fchmod(fd, 0o600) } != 0
    {
        return Err(std::io::Error::last_os_error())
            .context(|| "making the secret file readable by its owner only".into());
    }
    let hex: String = generate()?.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(out.lock(), "{hex}").context(|| "writing the secret".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_lengths() {
        let s = generate().unwrap();
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_hex(&hex), Some(s));
        assert_eq!(parse_hex(&hex[2..]), None);
        assert_eq!(parse_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn refuses_a_secret_others_can_read() {
        let path = std::env::temp_dir().join(format!("iplock-secret-{}", std::process::id()));
        std::fs::write(&path, "00".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&path).unwrap(), [0; 32]);
        std::fs::remove_file(path).unwrap();
    }
}
