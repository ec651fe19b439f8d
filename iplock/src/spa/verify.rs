//! The verifier of one SPA payload, in fwknopd's order: length bounds,
//! base64 (without the cut prefix), `SOURCE`, the replay cache (digest of
//! the whole payload), the HMAC in constant time, decryption, the inner
//! digest, the fields; then the checks: age, message type, address, user,
//! ports.
//!
//! The wire format (libfko `fko_encode_spa_data`, `fko_spa_data_final`):
//! plaintext `rand16:b64(user):timestamp:version:type:b64(access)`
//! `[:b64(nat)][:b64(server_auth)][:client_timeout]:b64(digest)`, the digest
//! (SHA-256 by default, its type told by its length) over everything before
//! the last `:`. It is encrypted with AES-256-CBC and PKCS#7, key and IV from
//! EVP_BytesToKey (MD5, one round) over the key and an 8-byte salt, written
//! as base64 of `Salted__` + salt + ciphertext; the HMAC of that text is
//! appended in base64, and the first 10 characters (`U2FsdGVkX1`, the base64
//! of `Salted__`) are cut off. Every `=` of base64 padding is stripped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _, block_padding::Pkcs7};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use sha2::{Sha256, Sha384, Sha512};

use crate::config::spa::{HmacType, SpaSettings};
use crate::spa::replay::{ReplayCache, ReplayDigest};

/// fwknopd ignores shorter payloads (`MIN_SPA_DATA_SIZE`).
pub const MIN_PAYLOAD: usize = 140;
/// fwknopd ignores longer payloads (`MAX_SPA_PACKET_LEN`).
pub const MAX_PAYLOAD: usize = 1500;

/// The base64 of `Salted__`, cut from the wire.
const SALTED_B64: &[u8] = b"U2FsdGVkX1";
const SALTED: &[u8] = b"Salted__";
const RAND_DIGITS: usize = 16;
const MAX_USER: usize = 64;
const MAX_MESSAGE: usize = 256;

/// Why a packet was refused; [`Reason::name`] is stable, for logs and the
/// `spa_refused{reason}` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Under [`MIN_PAYLOAD`] bytes.
    TooShort,
    /// Over [`MAX_PAYLOAD`] bytes.
    TooLong,
    /// The source is not in the key file's `SOURCE` list.
    SourceNotAllowed,
    /// Not base64 text.
    NotBase64,
    /// Starts with `U2FsdGVkX1`, which the client cuts: a captured packet
    /// with the prefix put back, to get past the replay cache.
    Prefixed,
    /// This very payload verified before.
    Replay,
    /// The HMAC does not match: another key, another HMAC type, no HMAC,
    /// or a packet changed on the way.
    BadHmac,
    /// The HMAC matched but the packet does not decrypt with the key.
    BadDecrypt,
    /// The digest inside the packet does not match its fields.
    BadDigest,
    /// The fields do not parse.
    Malformed,
    /// The timestamp is further than `max_age` in the past.
    Stale,
    /// The timestamp is further than `max_age` in the future.
    Future,
    /// A command message (type 0): iplock runs no commands.
    CommandMessage,
    /// A NAT access message (types 2, 4, 5, 6): iplock forwards nothing.
    NatMessage,
    /// The packet asks for 0.0.0.0 and the key file says `REQUIRE_SOURCE_ADDRESS Y`.
    NoSourceAddress,
    /// The packet asks for an address other than its source.
    OtherAddress,
    /// The user is not the key file's `REQUIRE_USERNAME`.
    WrongUser,
    /// A protocol and port that is not a protected TCP port.
    PortNotProtected,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::TooShort,
        Reason::TooLong,
        Reason::SourceNotAllowed,
        Reason::NotBase64,
        Reason::Prefixed,
        Reason::Replay,
        Reason::BadHmac,
        Reason::BadDecrypt,
        Reason::BadDigest,
        Reason::Malformed,
        Reason::Stale,
        Reason::Future,
        Reason::CommandMessage,
        Reason::NatMessage,
        Reason::NoSourceAddress,
        Reason::OtherAddress,
        Reason::WrongUser,
        Reason::PortNotProtected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::TooShort => "too_short",
            Reason::TooLong => "too_long",
            Reason::SourceNotAllowed => "source_not_allowed",
            Reason::NotBase64 => "not_base64",
            Reason::Prefixed => "prefixed",
            Reason::Replay => "replay",
            Reason::BadHmac => "bad_hmac",
            Reason::BadDecrypt => "bad_decrypt",
            Reason::BadDigest => "bad_digest",
            Reason::Malformed => "malformed",
            Reason::Stale => "stale",
            Reason::Future => "future",
            Reason::CommandMessage => "command_message",
            Reason::NatMessage => "nat_message",
            Reason::NoSourceAddress => "no_source_address",
            Reason::OtherAddress => "other_address",
            Reason::WrongUser => "wrong_user",
            Reason::PortNotProtected => "port_not_protected",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refused packet: the reason, and the user it named when it got as far
/// as decryption (a user name is checked as fwknop's client writes them:
/// printable ASCII without `"/\[]:;|=,+*?<>`, so it is safe to log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub user: Option<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(u) => write!(f, "{} (user {u})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Refusal {
        Refusal { reason, user: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    None,
}

/// One `proto/port` of an access message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub proto: Proto,
    pub port: u16,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::None => "none",
        };
        write!(f, "{p}/{}", self.port)
    }
}

/// A packet that verified: open the door for `address` for `window`, then
/// remember `digest` in the replay cache (see [`ReplayCache::insert`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The address to open for: the packet's own, or the one it asked for
    /// when `allow_other_address` lets it.
    pub address: IpAddr,
    /// What it asked for; every entry a protected TCP port.
    pub access: Vec<Access>,
    pub user: String,
    /// The configured window, or the client's timeout if shorter.
    pub window: Duration,
    /// The client's timestamp (unix seconds).
    pub timestamp: u64,
    pub digest: ReplayDigest,
}

/// Verifies one payload that came from `source` at `now_unix`.
/// `protected` are the filter's protected TCP ports; `replay` holds the
/// payloads that verified before. Pure: the caller inserts
/// [`Grant::digest`] into the cache once it acts on the grant.
pub fn verify(
    payload: &[u8],
    source: IpAddr,
    now_unix: u64,
    spa: &SpaSettings,
    protected: &[u16],
    replay: &ReplayCache,
) -> Result<Grant, Refusal> {
    let source = source.to_canonical();
    if payload.len() < MIN_PAYLOAD {
        return Err(Reason::TooShort.into());
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(Reason::TooLong.into());
    }
    if !payload
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    {
        return Err(Reason::NotBase64.into());
    }
    if payload.starts_with(SALTED_B64) {
        return Err(Reason::Prefixed.into());
    }
    if !spa.sources.is_empty() && !spa.sources.iter().any(|c| c.contains(source)) {
        return Err(Reason::SourceNotAllowed.into());
    }
    let digest = ReplayDigest::of(payload);
    if replay.contains(&digest, now_unix) {
        return Err(Reason::Replay.into());
    }
    let data = check_hmac(payload, spa)?;
    let plain = decrypt(data, spa.key.bytes())?;
    let msg = decode(&plain)?;
    let refuse = |reason| Refusal {
        reason,
        user: Some(msg.user.clone()),
    };

    let max_age = spa.max_age.as_secs();
    if now_unix.saturating_sub(msg.timestamp) > max_age {
        return Err(refuse(Reason::Stale));
    }
    if msg.timestamp.saturating_sub(now_unix) > max_age {
        return Err(refuse(Reason::Future));
    }
    match msg.kind {
        Kind::Command => return Err(refuse(Reason::CommandMessage)),
        Kind::Nat => return Err(refuse(Reason::NatMessage)),
        Kind::Access { .. } => {}
    }
    // The access message: `a.b.c.d,proto/port[,proto/port...]`.
    let mut parts = msg.message.split(',');
    let ip: Ipv4Addr = match parts.next().map(str::parse) {
        Some(Ok(ip)) => ip,
        _ => return Err(refuse(Reason::Malformed)),
    };
    let address = if ip.is_unspecified() {
        if spa.require_source_address {
            return Err(refuse(Reason::NoSourceAddress));
        }
        source
    } else {
        let asked = IpAddr::V4(ip);
        if asked != source && !spa.allow_other_address {
            return Err(refuse(Reason::OtherAddress));
        }
        asked
    };
    if let Some(required) = &spa.require_username
        && *required != msg.user
    {
        return Err(refuse(Reason::WrongUser));
    }
    let mut access = Vec::new();
    for spec in parts {
        let Some(a) = parse_access(spec) else {
            return Err(refuse(Reason::Malformed));
        };
        access.push(a);
    }
    if access.is_empty() {
        return Err(refuse(Reason::Malformed));
    }
    if access
        .iter()
        .any(|a| a.proto != Proto::Tcp || !protected.contains(&a.port))
    {
        return Err(refuse(Reason::PortNotProtected));
    }
    let window = match msg.kind {
        Kind::Access {
            client_timeout: Some(t),
        } if t > 0 => spa.open_window.min(Duration::from_secs(t)),
        _ => spa.open_window,
    };
    Ok(Grant {
        address,
        access,
        user: msg.user,
        window,
        timestamp: msg.timestamp,
        digest,
    })
}

/// Checks the HMAC at the end of `payload` in constant time and returns
/// the text before it.
fn check_hmac<'a>(payload: &'a [u8], spa: &SpaSettings) -> Result<&'a [u8], Refusal> {
    let tag_len = spa.hmac.b64_len();
    let Some(split) = payload.len().checked_sub(tag_len) else {
        return Err(Reason::BadHmac.into());
    };
    let (data, tag) = payload.split_at(split);
    // Strict base64 (no padding, no stray low bits): one text per tag, so
    // a changed last character cannot slip a replay past the cache.
    let Ok(tag) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(tag) else {
        return Err(Reason::BadHmac.into());
    };
    let ok = match spa.hmac {
        HmacType::Sha256 => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(spa.hmac_key.bytes()).expect("HMAC takes any key");
            mac.update(SALTED_B64);
            mac.update(data);
            mac.verify_slice(&tag).is_ok()
        }
        HmacType::Sha512 => {
            let mut mac =
                Hmac::<Sha512>::new_from_slice(spa.hmac_key.bytes()).expect("HMAC takes any key");
            mac.update(SALTED_B64);
            mac.update(data);
            mac.verify_slice(&tag).is_ok()
        }
    };
    if ok {
        Ok(data)
    } else {
        Err(Reason::BadHmac.into())
    }
}

/// Base64 as libfko decodes it: `=` optional, stray low bits ignored.
fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// OpenSSL's EVP_BytesToKey with MD5 and one round: 32 key bytes and 16 IV bytes.
fn key_and_iv(key: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 16]) {
    let mut out = [0u8; 48];
    let mut prev: Vec<u8> = Vec::new();
    for chunk in out.chunks_mut(16) {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(key);
        h.update(salt);
        let d = h.finalize();
        chunk.copy_from_slice(&d);
        prev = d.to_vec();
    }
    let mut k = [0u8; 32];
    let mut iv = [0u8; 16];
    k.copy_from_slice(&out[..32]);
    iv.copy_from_slice(&out[32..]);
    out.fill(0);
    (k, iv)
}

/// Decrypts the text before the HMAC (its prefix restored) into the
/// plaintext fields.
fn decrypt(data: &[u8], key: &[u8]) -> Result<String, Refusal> {
    let mut text = Vec::with_capacity(SALTED_B64.len() + data.len());
    text.extend_from_slice(SALTED_B64);
    text.extend_from_slice(data);
    let Ok(raw) = b64().decode(&text) else {
        return Err(Reason::BadDecrypt.into());
    };
    let Some(rest) = raw.strip_prefix(SALTED) else {
        return Err(Reason::BadDecrypt.into());
    };
    if rest.len() < 8 + 16 || !(rest.len() - 8).is_multiple_of(16) {
        return Err(Reason::BadDecrypt.into());
    }
    let (salt, cipher) = rest.split_at(8);
    let (mut k, mut iv) = key_and_iv(key, salt);
    let mut buf = cipher.to_vec();
    let result = cbc::Decryptor::<aes::Aes256>::new(&k.into(), &iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map(|p| p.to_vec());
    k.fill(0);
    iv.fill(0);
    let Ok(plain) = result else {
        return Err(Reason::BadDecrypt.into());
    };
    // libfko's test of a good decryption: 16 digits and a colon.
    if plain.len() <= RAND_DIGITS
        || !plain[..RAND_DIGITS].iter().all(u8::is_ascii_digit)
        || plain[RAND_DIGITS] != b':'
    {
        return Err(Reason::BadDecrypt.into());
    }
    if !plain.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(Reason::Malformed.into());
    }
    String::from_utf8(plain).map_err(|_| Reason::Malformed.into())
}

enum Kind {
    Command,
    Nat,
    Access { client_timeout: Option<u64> },
}

struct Message {
    user: String,
    timestamp: u64,
    kind: Kind,
    /// The decoded access (or command) message.
    message: String,
}

/// Checks the digest and splits the fields (libfko `fko_decode_spa_data`).
fn decode(plain: &str) -> Result<Message, Refusal> {
    let Some((encoded, digest)) = plain.rsplit_once(':') else {
        return Err(Reason::Malformed.into());
    };
    let ok = match digest.len() {
        43 => digest_b64::<Sha256>(encoded) == digest,
        64 => digest_b64::<Sha384>(encoded) == digest,
        86 => digest_b64::<Sha512>(encoded) == digest,
        // MD5, SHA-1, and the SHA-3 digests of the same lengths as
        // SHA-256 and SHA-512, are not taken.
        _ => false,
    };
    if !ok {
        return Err(Reason::BadDigest.into());
    }
    let fields: Vec<&str> = encoded.split(':').collect();
    if fields.len() < 6 {
        return Err(Reason::Malformed.into());
    }
    let user = decode_field(fields[1], MAX_USER)
        .filter(|u| valid_user(u))
        .ok_or(Reason::Malformed)?;
    let malformed = || Refusal {
        reason: Reason::Malformed,
        user: Some(user.clone()),
    };
    let ts = fields[2];
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let timestamp: u64 = ts.parse().map_err(|_| malformed())?;
    if fields[3].is_empty() || fields[3].len() > 8 {
        return Err(malformed());
    }
    let msg_type: u8 = match fields[4] {
        t if t.len() == 1 => t.parse().map_err(|_| malformed())?,
        _ => return Err(malformed()),
    };
    let message = decode_field(fields[5], MAX_MESSAGE).ok_or_else(malformed)?;
    let rest = &fields[6..];
    let kind = match msg_type {
        0 => Kind::Command,
        2 | 4 | 5 | 6 => Kind::Nat,
        // An optional server_auth, which fwknopd ignores as well.
        1 if rest.len() <= 1 => Kind::Access {
            client_timeout: None,
        },
        // [server_auth:]client_timeout
        3 if (1..=2).contains(&rest.len()) => {
            let t = rest[rest.len() - 1];
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            Kind::Access {
                client_timeout: Some(t.parse().map_err(|_| malformed())?),
            }
        }
        _ => return Err(malformed()),
    };
    Ok(Message {
        user,
        timestamp,
        kind,
        message,
    })
}

fn digest_b64<D: sha2::Digest>(text: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(D::digest(text.as_bytes()))
}

/// A base64 field of at most `max` characters, decoded to printable text.
fn decode_field(field: &str, max: usize) -> Option<String> {
    if field.is_empty() || field.len() > max {
        return None;
    }
    let bytes = b64().decode(field).ok()?;
    if bytes.is_empty() || !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// libfko's `validate_username`.
fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= MAX_USER
        && u.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || ((0x20..0x7f).contains(&b) && !b"\"/\\[]:;|=,+*?<>".contains(&b))
        })
}

/// `tcp/22` (libfko `validate_proto_port_spec`).
fn parse_access(spec: &str) -> Option<Access> {
    let (proto, port) = spec.split_once('/')?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "icmp" => Proto::Icmp,
        "none" => Proto::None,
        _ => return None,
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Some(Access { proto, port: p }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_derivation_is_evp_bytes_to_key() {
        // openssl enc -aes-256-cbc -md md5 -pass pass:password -S 0102030405060708 -P
        let (k, iv) = key_and_iv(b"password", &[1, 2, 3, 4, 5, 6, 7, 8]);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        assert_eq!(
            hex(&k),
            "E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02"
        );
        assert_eq!(hex(&iv), "8D450E2ED75A84A923D4EAC9FE49226B");
    }

    #[test]
    fn reason_names_are_unique_snake_case() {
        let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn access_specs_parse_as_libfko_checks_them() {
        assert_eq!(
            parse_access("tcp/22"),
            Some(Access {
                proto: Proto::Tcp,
                port: 22
            })
        );
        for bad in [
            "tcp/0",
            "tcp/65536",
            "tcp/",
            "tcp22",
            "sctp/22",
            "tcp/2a",
            "tcp/000022",
        ] {
            assert_eq!(parse_access(bad), None, "{bad}");
        }
        assert!(valid_user("alice") && valid_user("a b.c-d_e"));
        assert!(!valid_user("a:b") && !valid_user("a,b") && !valid_user(""));
    }
}
