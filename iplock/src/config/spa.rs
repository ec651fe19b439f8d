//! The `[spa]` section: single packet authorization with fwknop's client
//! (fwknop 2.6.10, protocol 3.0.0). Keys are written in the config file as
//! base64, or read from a key file in fwknopd's access.conf syntax, so an
//! fwknopd stanza's `KEY_BASE64` and `HMAC_KEY_BASE64` lines (or the output
//! of `fwknop --key-gen`) work as they are.
//!
//! Of an access.conf stanza these keys are read: `SOURCE` (ANY or a list
//! of addresses and blocks the packets may come from), `KEY_BASE64` or
//! `KEY` (the encryption key, or a passphrase), `HMAC_KEY_BASE64` or
//! `HMAC_KEY`, `HMAC_DIGEST_TYPE` (sha256 or sha512), `ENCRYPTION_MODE`
//! (CBC only), `REQUIRE_SOURCE_ADDRESS` (and its synonym `REQUIRE_SOURCE`),
//! `REQUIRE_USERNAME` and `FW_ACCESS_TIMEOUT` (the default open window).
//! `%include`, `%include_folder` and `%include_keys` are refused (the keys
//! could be behind them); every other key (`OPEN_PORTS`, `RESTRICT_PORTS`,
//! `DESTINATION`, `GPG_*`, `ENABLE_CMD_EXEC` and the `CMD_*` family,
//! `FORCE_NAT` and the NAT family, `MAX_FW_TIMEOUT`, `ACCESS_EXPIRE*`) is
//! ignored and listed in [`SpaSettings::ignored`]: iplock opens only its
//! protected ports, never runs commands and never forwards.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::config::cidr::Cidr;
use crate::config::duration;
use crate::config::input_file;
use crate::config::secret;
use crate::error::{Result, input, quote};

/// fwknop's port (`FKO_DEFAULT_PORT`).
pub const DEFAULT_PORT: u16 = 62201;
/// fwknopd's `MAX_SPA_PACKET_AGE`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(120);
/// AES-256 keys: longer keys are refused by libfko (`RIJNDAEL_MAX_KEYSIZE`).
pub const MAX_KEY_BYTES: usize = 32;
/// libfko's `MAX_DIGEST_BLOCK_LEN` (SHA3-256's block).
pub const MAX_HMAC_KEY_BYTES: usize = 136;
/// Longest packet age accepted; beyond it a replay cache entry lives too long.
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);

/// The HMAC over the packet, configured per key (the packet does not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacType {
    #[default]
    Sha256,
    Sha512,
}

impl HmacType {
    /// Characters of the base64 HMAC at the end of a packet (`=` stripped).
    pub fn b64_len(self) -> usize {
        match self {
            HmacType::Sha256 => 43,
            HmacType::Sha512 => 86,
        }
    }

    fn parse_fwknop(s: &str) -> Option<HmacType> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" => Some(HmacType::Sha256),
            "sha512" => Some(HmacType::Sha512),
            _ => None,
        }
    }
}

/// Key bytes: never shown by `Debug` (only their length), zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(Vec<u8>);

impl KeyBytes {
    pub fn new(bytes: Vec<u8>) -> KeyBytes {
        KeyBytes(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into our own buffer;
            // a volatile write is not optimised away before the free.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// `[spa]` as written; every key optional but the key material.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaFile {
    port: Option<i64>,
    key_base64: Option<String>,
    hmac_key_base64: Option<String>,
    key_file: Option<PathBuf>,
    hmac: Option<HmacType>,
    max_age: Option<String>,
    open_window: Option<String>,
    allow_other_address: Option<bool>,
}

/// Validated SPA settings: what the verifier needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaSettings {
    /// UDP port the packets come to.
    pub port: u16,
    /// Encryption key (decoded `KEY_BASE64`, or a passphrase's bytes).
    pub key: KeyBytes,
    pub hmac_key: KeyBytes,
    pub hmac: HmacType,
    /// Packets whose timestamp is further than this from now are refused.
    pub max_age: Duration,
    /// How long the door opens; a client timeout may shorten it.
    pub open_window: Duration,
    /// May a packet ask for an address other than its source?
    pub allow_other_address: bool,
    /// Refuse packets asking for 0.0.0.0 (the packet's source), as
    /// fwknopd's `REQUIRE_SOURCE_ADDRESS`.
    pub require_source_address: bool,
    /// Only this user name is accepted (fwknopd's `REQUIRE_USERNAME`).
    pub require_username: Option<String>,
    /// Sources packets may come from (fwknopd's `SOURCE`); empty: any.
    pub sources: Vec<Cidr>,
    /// Keys of the key file that were read and ignored, for a warning.
    pub ignored: Vec<String>,
}

/// Ports the SPA port may not be: the filter's protected, knock and trap ports.
pub struct TakenPorts<'a> {
    pub protect: &'a [u16],
    pub knock: &'a [u16],
    pub traps: &'a [u16],
}

impl SpaFile {
    /// Validates `[spa]`. `config` is the config file and the mode it was
    /// read with (inline keys need it to be private); `filter_window` the
    /// filter's open window, the default.
    pub fn settings(
        &self,
        config: (&Path, &std::fs::Metadata),
        filter_window: Duration,
        taken: &TakenPorts<'_>,
    ) -> Result<SpaSettings> {
        let port = match self.port {
            None => DEFAULT_PORT,
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(p) => {
                return input(format!(
                    "spa.port = {p} is not a port number from 1 to 65535"
                ));
            }
        };
        for (ports, what) in [
            (taken.protect, "a protected port"),
            (taken.knock, "a knock port"),
            (taken.traps, "a trap port"),
        ] {
            if ports.contains(&port) {
                return input(format!("spa.port = {port} is also {what}; pick another"));
            }
        }
        let inline = self.key_base64.is_some() || self.hmac_key_base64.is_some();
        let from_file = match (&self.key_file, inline) {
            (Some(_), true) => {
                return input(
                    "the [spa] section sets both key_file and key_base64/hmac_key_base64; keep one",
                );
            }
            (Some(path), false) => read_key_file(path)?,
            (None, true) => {
                secret::refuse_shared(config.0, config.1, "the config file holding SPA keys")?;
                KeyFile {
                    key: Some(decode_key(self.key_base64.as_deref(), "spa.key_base64")?),
                    hmac_key: Some(decode_key(
                        self.hmac_key_base64.as_deref(),
                        "spa.hmac_key_base64",
                    )?),
                    ..KeyFile::default()
                }
            }
            (None, false) => {
                return input(
                    "the [spa] section has no key; set key_file, or key_base64 and hmac_key_base64 (make them with `fwknop --key-gen`)",
                );
            }
        };
        let Some(key) = from_file.key else {
            return input(
                "the SPA key file has no KEY_BASE64 or KEY line (make one with `fwknop --key-gen`)",
            );
        };
        let Some(hmac_key) = from_file.hmac_key else {
            return input(
                "SPA without an HMAC key is unauthenticated CBC and is refused; add HMAC_KEY_BASE64 (`fwknop --key-gen` makes one) and use the client's --use-hmac",
            );
        };
        check_key_lengths(&key, &hmac_key)?;
        let hmac = match (self.hmac, from_file.hmac) {
            (Some(a), Some(b)) if a != b => {
                return input("spa.hmac and the key file's HMAC_DIGEST_TYPE disagree; keep one");
            }
            (a, b) => a.or(b).unwrap_or_default(),
        };
        let max_age = match &self.max_age {
            None => DEFAULT_MAX_AGE,
            Some(s) => duration::parse(s, "spa.max_age")?,
        };
        if max_age.subsec_nanos() != 0 || max_age > MAX_MAX_AGE {
            return input(format!(
                "spa.max_age = {} is not a whole number of seconds up to 1h",
                duration::format(max_age)
            ));
        }
        let open_window = match (&self.open_window, from_file.access_timeout) {
            (Some(s), _) => duration::parse(s, "spa.open_window")?,
            (None, Some(d)) => d,
            (None, None) => filter_window,
        };
        Ok(SpaSettings {
            port,
            key,
            hmac_key,
            hmac,
            max_age,
            open_window,
            allow_other_address: self.allow_other_address.unwrap_or(false),
            require_source_address: from_file.require_source_address,
            require_username: from_file.require_username,
            sources: from_file.sources,
            ignored: from_file.ignored,
        })
    }
}

fn check_key_lengths(key: &KeyBytes, hmac_key: &KeyBytes) -> Result<()> {
    if key.0.is_empty() || key.0.len() > MAX_KEY_BYTES {
        return input(format!(
            "the SPA encryption key has {} bytes; it must have 1 to {MAX_KEY_BYTES} (`fwknop --key-gen` makes 32)",
            key.0.len()
        ));
    }
    if hmac_key.0.is_empty() || hmac_key.0.len() > MAX_HMAC_KEY_BYTES {
        return input(format!(
            "the SPA HMAC key has {} bytes; it must have 1 to {MAX_HMAC_KEY_BYTES} (`fwknop --key-gen` makes 64)",
            hmac_key.0.len()
        ));
    }
    if key == hmac_key {
        return input("the SPA encryption key and HMAC key are identical; they must differ");
    }
    Ok(())
}

/// Base64 as fwknop writes it: standard alphabet, `=` optional.
fn b64_lenient() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Decodes a base64 key; the error names `what` and never quotes the value.
fn decode_key(value: Option<&str>, what: &str) -> Result<KeyBytes> {
    let Some(value) = value else {
        return input(format!(
            "{what} is missing; the [spa] section needs both key_base64 and hmac_key_base64"
        ));
    };
    match b64_lenient().decode(value.trim()) {
        Ok(bytes) => Ok(KeyBytes(bytes)),
        Err(_) => input(format!(
            "{what} is not base64 (`fwknop --key-gen` makes one)"
        )),
    }
}

/// What a key file holds.
#[derive(Default)]
struct KeyFile {
    key: Option<KeyBytes>,
    hmac_key: Option<KeyBytes>,
    hmac: Option<HmacType>,
    sources: Vec<Cidr>,
    require_source_address: bool,
    require_username: Option<String>,
    access_timeout: Option<Duration>,
    ignored: Vec<String>,
}

/// Reads a key file, refusing one that others may read.
fn read_key_file(path: &Path) -> Result<KeyFile> {
    let file = input_file::read(path, "the SPA key file")?;
    secret::refuse_shared(path, &file.meta, "the SPA key file")?;
    parse_key_file(&file.text, path)
}

/// Parses access.conf syntax: `VAR VALUE` per line (`VAR:` too, as
/// `fwknop --key-gen` prints), the value ending at `;` or the line's end,
/// `#` comments. One stanza: a second `SOURCE` is refused.
fn parse_key_file(text: &str, path: &Path) -> Result<KeyFile> {
    let name = || format!("the SPA key file {}", quote(path.display()));
    let mut out = KeyFile::default();
    let mut seen: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (var, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let var = var.strip_suffix(':').unwrap_or(var).to_ascii_uppercase();
        let value = rest.split(';').next().unwrap_or("").trim();
        if value.is_empty() {
            return input(format!("line {n} of {} has no value", name()));
        }
        if value.eq_ignore_ascii_case("__CHANGEME__") {
            return input(format!(
                "line {n} of {}: {var} is still __CHANGEME__",
                name()
            ));
        }
        let canonical = if var == "REQUIRE_SOURCE" {
            "REQUIRE_SOURCE_ADDRESS".to_string()
        } else {
            var.clone()
        };
        if seen.contains(&canonical) {
            return input(if canonical == "SOURCE" {
                format!(
                    "line {n} of {} starts a second stanza; iplock reads one, keep the one for this host",
                    name()
                )
            } else {
                format!("line {n} of {} sets {var} a second time", name())
            });
        }
        seen.push(canonical.clone());
        let bad = |what: &str| input(format!("line {n} of {}: {var} {what}", name()));
        match canonical.as_str() {
            "SOURCE" => {
                if !value.eq_ignore_ascii_case("ANY") {
                    for part in value.split(',') {
                        out.sources.push(Cidr::parse(part)?);
                    }
                }
            }
            "KEY_BASE64" | "HMAC_KEY_BASE64" => {
                let Ok(bytes) = b64_lenient().decode(value) else {
                    return bad("is not base64");
                };
                if canonical == "KEY_BASE64" {
                    out.key = Some(KeyBytes(bytes));
                } else {
                    out.hmac_key = Some(KeyBytes(bytes));
                }
            }
            "KEY" => out.key = Some(KeyBytes(value.as_bytes().to_vec())),
            "HMAC_KEY" => out.hmac_key = Some(KeyBytes(value.as_bytes().to_vec())),
            "HMAC_DIGEST_TYPE" => match HmacType::parse_fwknop(value) {
                Some(h) => out.hmac = Some(h),
                None => return bad(&format!("{} is not sha256 or sha512", quote(value))),
            },
            "ENCRYPTION_MODE" => {
                if !value.eq_ignore_ascii_case("CBC") {
                    return bad(&format!(
                        "{} is not supported; only CBC (fwknop's default) is",
                        quote(value)
                    ));
                }
            }
            "REQUIRE_SOURCE_ADDRESS" => out.require_source_address = yes(value),
            "REQUIRE_USERNAME" => out.require_username = Some(value.to_string()),
            "FW_ACCESS_TIMEOUT" => match value.parse::<u64>() {
                Ok(s) if (1..=86_400).contains(&s) => {
                    out.access_timeout = Some(Duration::from_secs(s));
                }
                _ => return bad(&format!("{} is not 1 to 86400 seconds", quote(value))),
            },
            v if v.starts_with('%') => {
                return bad("is not supported; put the keys in this file");
            }
            _ => out.ignored.push(var),
        }
    }
    if seen.iter().any(|v| v == "KEY") && seen.iter().any(|v| v == "KEY_BASE64") {
        return input(format!("{} sets both KEY and KEY_BASE64; keep one", name()));
    }
    if seen.iter().any(|v| v == "HMAC_KEY") && seen.iter().any(|v| v == "HMAC_KEY_BASE64") {
        return input(format!(
            "{} sets both HMAC_KEY and HMAC_KEY_BASE64; keep one",
            name()
        ));
    }
    Ok(out)
}

/// fwknopd's booleans: a value starting with Y (any case) is yes.
fn yes(value: &str) -> bool {
    value.starts_with(['y', 'Y'])
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const KEY: &str = "dio6af1Zhtldzx45PLsOogJ9Xks20Mc33FOWXhuH6+o=";
    const HMAC: &str =
        "L4cwglS93skiJdEHOHYyLNhrD2RmodXQsvoyS0ZXOBWQUzkClYtKnGpdasFt13EwAthagU02V5ctkm1PxtDLhw==";

    fn temp(name: &str, text: &str, mode: u32) -> PathBuf {
        let path = std::env::temp_dir().join(format!("iplock-spa-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn settings(toml_text: &str, mode: u32) -> Result<SpaSettings> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = temp(&format!("cfg{n}.toml"), "", mode);
        let meta = std::fs::metadata(&path).unwrap();
        let file: SpaFile = toml::from_str(toml_text).unwrap();
        let r = file.settings(
            (&path, &meta),
            Duration::from_secs(10),
            &TakenPorts {
                protect: &[22],
                knock: &[100, 300, 200],
                traps: &[23],
            },
        );
        std::fs::remove_file(path).unwrap();
        r
    }

    fn refused<T: fmt::Debug>(r: Result<T>, needle: &str) {
        let err = r.expect_err("refused");
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'), "{msg:?}");
        for secret in [KEY, HMAC, &KEY[..20], &HMAC[..20]] {
            assert!(!msg.contains(secret), "{msg} shows a key");
        }
    }

    #[test]
    fn inline_keys_and_defaults() {
        let s = settings(
            &format!("key_base64 = \"{KEY}\"\nhmac_key_base64 = \"{HMAC}\"\n"),
            0o600,
        )
        .unwrap();
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.key.bytes().len(), 32);
        assert_eq!(s.hmac_key.bytes().len(), 64);
        assert_eq!(s.hmac, HmacType::Sha256);
        assert_eq!(s.max_age, Duration::from_secs(120));
        assert_eq!(s.open_window, Duration::from_secs(10));
        assert!(!s.allow_other_address && !s.require_source_address);
        assert!(s.sources.is_empty() && s.ignored.is_empty());
        let debug = format!("{s:?}");
        assert!(debug.contains("<32 secret bytes>"), "{debug}");
        assert!(
            !debug.contains(&KEY[..8]) && !debug.contains("118, 42"),
            "{debug}"
        );
    }

    #[test]
    fn bad_sections_are_one_sentence_without_secrets() {
        let keys = format!("key_base64 = \"{KEY}\"\nhmac_key_base64 = \"{HMAC}\"\n");
        for (text, needle) in [
            (format!("{keys}port = 0\n"), "spa.port = 0"),
            (format!("{keys}port = 70000\n"), "spa.port = 70000"),
            (format!("{keys}port = 22\n"), "protected port"),
            (format!("{keys}port = 300\n"), "knock port"),
            (format!("{keys}port = 23\n"), "trap port"),
            (format!("{keys}max_age = \"0s\"\n"), "spa.max_age"),
            (format!("{keys}max_age = \"2h\"\n"), "up to 1h"),
            (format!("{keys}open_window = \"x\"\n"), "spa.open_window"),
            (
                format!("key_base64 = \"{KEY}\"\n"),
                "hmac_key_base64 is missing",
            ),
            (
                format!("key_base64 = \"{KEY}!\"\nhmac_key_base64 = \"{HMAC}\"\n"),
                "spa.key_base64 is not base64",
            ),
            (
                format!("key_base64 = \"{KEY}\"\nhmac_key_base64 = \"{KEY}\"\n"),
                "identical",
            ),
            (
                format!("key_base64 = \"{HMAC}\"\nhmac_key_base64 = \"{KEY}\"\n"),
                "64 bytes",
            ),
            (String::new(), "has no key"),
            (format!("{keys}key_file = \"/x\"\n"), "keep one"),
        ] {
            refused(settings(&text, 0o600), needle);
        }
        refused(settings(&keys, 0o644), "readable by others");
        let err = toml::from_str::<SpaFile>("hmac = \"md5\"\n").unwrap_err();
        assert!(err.to_string().contains("md5"), "{err}");
    }

    #[test]
    fn fwknopd_stanzas_and_key_gen_output_work_as_they_are() {
        let stanza = format!(
            "# fwknopd access.conf\nSOURCE    ANY\nKEY_BASE64      {KEY}\nHMAC_KEY_BASE64     {HMAC} ; comment\n\
             HMAC_DIGEST_TYPE sha512\nREQUIRE_SOURCE_ADDRESS Y\nREQUIRE_USERNAME alice\n\
             FW_ACCESS_TIMEOUT 30\nOPEN_PORTS tcp/22\nENABLE_CMD_EXEC N\n"
        );
        let path = temp("stanza", &stanza, 0o600);
        let s = settings(&format!("key_file = \"{}\"\n", path.display()), 0o644).unwrap();
        assert_eq!(s.key.bytes().len(), 32);
        assert_eq!(s.hmac_key.bytes().len(), 64);
        assert_eq!(s.hmac, HmacType::Sha512);
        assert!(s.require_source_address);
        assert_eq!(s.require_username.as_deref(), Some("alice"));
        assert_eq!(s.open_window, Duration::from_secs(30));
        assert_eq!(s.ignored, ["OPEN_PORTS", "ENABLE_CMD_EXEC"]);
        // [spa] wins over the file's timeout; agreeing HMAC types are fine.
        let s = settings(
            &format!(
                "key_file = \"{}\"\nopen_window = \"5s\"\nhmac = \"sha512\"\n",
                path.display()
            ),
            0o644,
        )
        .unwrap();
        assert_eq!(s.open_window, Duration::from_secs(5));
        refused(
            settings(
                &format!("key_file = \"{}\"\nhmac = \"sha256\"\n", path.display()),
                0o644,
            ),
            "disagree",
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        refused(
            settings(&format!("key_file = \"{}\"\n", path.display()), 0o644),
            "readable by others",
        );
        std::fs::remove_file(&path).unwrap();

        let keygen = format!("KEY_BASE64: {KEY}\nHMAC_KEY_BASE64: {HMAC}\n");
        let path = temp("keygen", &keygen, 0o600);
        let s = settings(&format!("key_file = \"{}\"\n", path.display()), 0o644).unwrap();
        assert_eq!(s.key.bytes().len(), 32);
        assert!(s.sources.is_empty());
        std::fs::remove_file(&path).unwrap();

        let pass =
            "SOURCE 198.51.100.0/24, 2001:db8::/32\nKEY test passphrase\nHMAC_KEY another one\n";
        let path = temp("pass", pass, 0o600);
        let s = settings(&format!("key_file = \"{}\"\n", path.display()), 0o644).unwrap();
        assert_eq!(s.key.bytes(), b"test passphrase");
        assert_eq!(s.hmac_key.bytes(), b"another one");
        assert_eq!(s.sources.len(), 2);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_spa_section_is_read_from_the_config_file() {
        use crate::config::settings::{Settings, SettingsArgs};
        let text = format!(
            "interfaces = [\"lo\"]\nknock = \"100,300,200\"\nopen_window = \"20s\"\n\
             [spa]\nkey_base64 = \"{KEY}\"\nhmac_key_base64 = \"{HMAC}\"\n"
        );
        let path = temp("full.toml", &text, 0o600);
        let args = SettingsArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let spa = Settings::from_args(&args).unwrap().spa.unwrap();
        assert_eq!(spa.open_window, Duration::from_secs(20));
        assert_eq!(spa.port, DEFAULT_PORT);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        refused(Settings::from_args(&args), "readable by others");
        std::fs::write(&path, format!("{text}port = 300\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        refused(Settings::from_args(&args), "knock port");
        std::fs::write(
            &path,
            "interfaces = [\"lo\"]\nknock = \"100,300,200\"\n[spa]\n",
        )
        .unwrap();
        refused(Settings::from_args(&args), "has no key");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_key_files_are_one_sentence_without_secrets() {
        for (text, needle) in [
            (format!("KEY_BASE64 {KEY}\n"), "without an HMAC key"),
            (format!("HMAC_KEY_BASE64 {HMAC}\n"), "no KEY_BASE64"),
            (
                format!("KEY_BASE64 {KEY}!\nHMAC_KEY_BASE64 {HMAC}\n"),
                "line 1",
            ),
            (format!("KEY_BASE64\nHMAC_KEY_BASE64 {HMAC}\n"), "no value"),
            ("KEY_BASE64 __CHANGEME__\n".to_string(), "__CHANGEME__"),
            (
                format!("SOURCE ANY\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nSOURCE 192.0.2.1\n"),
                "second stanza",
            ),
            (
                format!("KEY_BASE64 {KEY}\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n"),
                "second time",
            ),
            (
                format!("KEY_BASE64 {KEY}\nKEY pass\nHMAC_KEY_BASE64 {HMAC}\n"),
                "both KEY and KEY_BASE64",
            ),
            (
                format!("KEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nHMAC_DIGEST_TYPE md5\n"),
                "not sha256 or sha512",
            ),
            (
                format!("KEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nENCRYPTION_MODE legacy\n"),
                "only CBC",
            ),
            (
                format!("KEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nFW_ACCESS_TIMEOUT 0\n"),
                "FW_ACCESS_TIMEOUT",
            ),
            (
                format!("KEY_BASE64 {KEY}\n%include_keys /etc/fwknop/keys\n"),
                "not supported",
            ),
            (
                format!("SOURCE 192.0.2.1/24\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n"),
                "host bits",
            ),
            (
                format!("KEY {}\nHMAC_KEY_BASE64 {HMAC}\n", "p".repeat(33)),
                "33 bytes",
            ),
        ] {
            let path = temp("bad", &text, 0o600);
            refused(
                settings(&format!("key_file = \"{}\"\n", path.display()), 0o644),
                needle,
            );
            std::fs::remove_file(&path).unwrap();
        }
        refused(
            settings("key_file = \"/nonexistent/spa.keys\"\n", 0o644),
            "no such file",
        );
        refused(
            settings("key_file = \"/dev/zero\"\n", 0o644),
            "not a regular file",
        );
    }
}
