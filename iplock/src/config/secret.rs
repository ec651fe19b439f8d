//! The shared secret of rotating knocks, in a file only its owner may read.
//!
//! What `iplock secret new` writes is version 1 of the file, TOML with
//! exactly these keys, so that a client needs the file and nothing else:
//!
//! ```toml
//! version = 1            # of this format; a later iplock may write 2
//! secret = "3f0c…"       # 32 random bytes as 64 hex digits
//! period = "30s"         # the rotation's period, whole seconds
//! steps = 3              # knocks in a sequence, 1 to 8
//! udp = false            # steps may be udp as well as tcp
//! exclude = [22]         # ports never drawn: the server's protected and trap ports
//! ```
//!
//! Earlier versions wrote the 64 hex digits alone (version 0); such a file
//! still works, with the parameters given elsewhere (flags, the server's
//! settings).

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::duration;
use crate::config::input_file;
use crate::config::rotate::Params;
use crate::error::{Context as _, Result, input, quote};

pub const SECRET_BYTES: usize = 32;
pub type Secret = [u8; SECRET_BYTES];

/// The version of the file format this iplock writes.
const VERSION: i64 = 1;

/// A secret file's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFile {
    pub secret: Secret,
    /// The rotation the secret was made for; none in a bare-hex file.
    pub params: Option<Params>,
}

/// Version 1 as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct V1 {
    version: i64,
    secret: String,
    period: String,
    steps: usize,
    udp: bool,
    exclude: Vec<u16>,
}

/// Only the version, read first: a later version may have other keys.
#[derive(Deserialize)]
struct Versioned {
    version: Option<toml::Value>,
}

/// Reads a secret file, refusing one that anyone but the user reading it
/// may read: a secret the whole machine can read is no secret, and one
/// that belongs to another user is that user's too.
pub fn read(path: &Path) -> Result<SecretFile> {
    let file = input_file::read(path, "the secret file")?;
    refuse_shared(path, &file.meta, "the secret file")?;
    parse(&file.text, path)
}

fn parse(text: &str, path: &Path) -> Result<SecretFile> {
    let name = quote(path.display());
    if let Some(secret) = parse_hex(text.trim()) {
        return Ok(SecretFile {
            secret,
            params: None,
        });
    }
    let not_hex = || {
        input(format!(
            "the secret file {name} does not hold {SECRET_BYTES} bytes in hex; make one with `iplock secret new`"
        ))
    };
    if !text.contains('=') {
        return not_hex();
    }
    let versioned: Versioned = input_file::parse_toml(text, path, "the secret file")?;
    match versioned.version {
        Some(toml::Value::Integer(VERSION)) => {}
        Some(v) => {
            return input(format!(
                "the secret file {name} is of version {}; this iplock reads version {VERSION} and bare hex, so upgrade it",
                quote(v)
            ));
        }
        None => return input(format!("the secret file {name} has no `version` key")),
    }
    let v1: V1 = input_file::parse_toml(text, path, "the secret file")?;
    let Some(secret) = parse_hex(&v1.secret) else {
        return not_hex();
    };
    let source = format!("the secret file {name}: ");
    let period = duration::parse(&v1.period, &format!("{source}period"))?;
    Ok(SecretFile {
        secret,
        params: Some(Params::new(period, v1.steps, v1.udp, &v1.exclude, &source)?),
    })
}

/// The text of a version 1 file.
fn format(secret: &Secret, params: &Params) -> String {
    let v1 = V1 {
        version: VERSION,
        secret: hex(secret),
        period: duration::format(params.period),
        steps: params.steps,
        udp: params.udp,
        exclude: params.exclude.clone(),
    };
    format!(
        "# iplock secret file (`iplock secret new`): the shared secret of rotating\n\
         # knocks and the rotation it is for. Keep it readable by its owner only.\n{}",
        toml::to_string(&v1).expect("a secret file serialises")
    )
}

fn hex(secret: &Secret) -> String {
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a file of secrets (`what` names it) that anyone but the user
/// running iplock may read: one whose mode lets its group or others in,
/// or one that belongs to another user (who can read it whatever its
/// mode). `meta` is of the descriptor it was read through, so the check
/// is of the file read.
pub fn refuse_shared(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if meta.permissions().mode() & 0o077 != 0 {
        return input(format!(
            "{what} {} is readable by others; make it readable by its owner only (chmod 600)",
            quote(path.display())
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return input(format!(
            "{what} {} belongs to uid {}, who can read it, not to uid {euid} running iplock; make it yours (chown)",
            quote(path.display()),
            meta.uid()
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

/// Writes a new secret file for `params` to standard output. When the
/// output is a file (`iplock secret new > F`), it is first made readable by
/// its owner only, before the secret is in it.
pub fn write_new(params: &Params) -> Result<()> {
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
    let text = format(&generate()?, params);
    write!(out.lock(), "{text}").context(|| "writing the secret".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    fn params() -> Params {
        Params::new(Duration::from_secs(20), 4, true, &[3389, 22], "--").unwrap()
    }

    #[test]
    fn hex_round_trip_and_bad_lengths() {
        let s = generate().unwrap();
        let hex = hex(&s);
        assert_eq!(parse_hex(&hex), Some(s));
        assert_eq!(parse_hex(&hex[2..]), None);
        assert_eq!(parse_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn a_file_records_its_parameters_and_a_bare_hex_file_none() {
        let path = Path::new("/etc/iplock/secret");
        let secret = generate().unwrap();
        let text = format(&secret, &params());
        assert!(text.contains("version = 1\n"), "{text}");
        assert_eq!(
            parse(&text, path).unwrap(),
            SecretFile {
                secret,
                params: Some(params())
            }
        );
        let bare = parse(&format!("{}\n", hex(&secret)), path).unwrap();
        assert_eq!(bare.params, None);
        assert_eq!(bare.secret, secret);
    }

    #[test]
    fn bad_files_are_one_sentence() {
        let path = Path::new("/etc/iplock/secret");
        let good = format(&[7; 32], &params());
        for (text, needle) in [
            ("abc".to_string(), "does not hold 32 bytes in hex"),
            (good.replace("version = 1", "version = 2"), "of version `2`"),
            (good.replace("version = 1\n", ""), "no `version` key"),
            (
                good.replace("steps = 4", "steps = 9"),
                "steps 9 is out of range",
            ),
            (
                good.replace("period = \"20s\"", "period = \"1500ms\""),
                "not a whole number",
            ),
            (
                good.replace("udp = true", "udp = true\nextra = 1"),
                "unknown field",
            ),
            (good.replace("steps = 4", "steps = \"x\""), "line "),
            (good.replace("0707", "zz07"), "does not hold 32 bytes"),
        ] {
            let err = parse(&text, path).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(msg.contains("/etc/iplock/secret"), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
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
        assert_eq!(read(&path).unwrap().secret, [0; 32]);
        // A file of another user is that user's to read too.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains("belongs to uid 65534"), "{err}");
        }
        std::fs::remove_file(path).unwrap();
    }
}
