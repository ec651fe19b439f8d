//! fwknopd's replay protection: the SHA-256 of every payload that verified,
//! kept for twice the packet age allowed. A payload is refused while its
//! digest is held; once a digest expires its packet is too old anyway (a
//! packet whose timestamp is `max_age` ahead of the clock stays fresh for
//! `2 * max_age`, hence the lifetime).
//!
//! So that a restart does not forget, the cache is written to a small file
//! (the daemon's choice of path: `/var/lib/iplock/spa-replay` survives a
//! reboot, which `/run` does not) with [`ReplayCache::save`] after each
//! insert and read back with [`ReplayCache::load`]. A file rather than a
//! pinned BPF map: only user space reads it, entries are few (one per
//! accepted packet), and a map would be lost with `iplock unload` and hold
//! a fixed number of entries. The format is text, one entry a line:
//!
//! ```text
//! iplock spa replay v1
//! <64 hex digits of the digest> <unix seconds it was stored>
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::error::{Context as _, Result};

/// SHA-256 of a whole payload as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayDigest(pub [u8; 32]);

impl ReplayDigest {
    pub fn of(payload: &[u8]) -> ReplayDigest {
        ReplayDigest(Sha256::digest(payload).into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn parse_hex(s: &str) -> Option<ReplayDigest> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ReplayDigest(out))
    }
}

impl std::fmt::Debug for ReplayDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayDigest({})", self.hex())
    }
}

const HEADER: &str = "iplock spa replay v1";

/// Digests of payloads that verified, with the second each was stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayCache {
    entries: HashMap<ReplayDigest, u64>,
    lifetime: u64,
}

impl ReplayCache {
    /// An empty cache for packets at most `max_age` from the clock.
    pub fn new(max_age: Duration) -> ReplayCache {
        ReplayCache {
            entries: HashMap::new(),
            lifetime: max_age.as_secs().saturating_mul(2).max(1),
        }
    }

    /// Is `digest` held at `now` (unix seconds)? An expired entry is not.
    pub fn contains(&self, digest: &ReplayDigest, now: u64) -> bool {
        self.entries
            .get(digest)
            .is_some_and(|&at| now < at.saturating_add(self.lifetime))
    }

    /// Remembers `digest` from `now`, and drops the entries expired by then.
    pub fn insert(&mut self, digest: ReplayDigest, now: u64) {
        self.expire(now);
        self.entries.insert(digest, now);
    }

    /// Drops entries expired at `now`.
    pub fn expire(&mut self, now: u64) {
        let lifetime = self.lifetime;
        self.entries
            .retain(|_, at| now < at.saturating_add(lifetime));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by_key(|(d, at)| (**at, d.0));
        let mut out = format!("{HEADER}\n");
        for (d, at) in entries {
            out.push_str(&format!("{} {at}\n", d.hex()));
        }
        out
    }

    /// The cache a file's text holds, without the entries expired at
    /// `now`. Lines that do not parse are skipped (a torn or foreign file
    /// costs its entries, never the daemon); `None` if the header is not ours.
    pub fn decode(text: &str, max_age: Duration, now: u64) -> Option<ReplayCache> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return None;
        }
        let mut cache = ReplayCache::new(max_age);
        for line in lines {
            let Some((d, at)) = line.split_once(' ') else {
                continue;
            };
            if let (Some(d), Ok(at)) = (ReplayDigest::parse_hex(d), at.parse::<u64>()) {
                // An entry stored "in the future" (the clock was set back)
                // is kept from now: refusing too long beats replaying.
                cache.entries.insert(d, at.min(now));
            }
        }
        cache.expire(now);
        Some(cache)
    }

    /// Reads the cache of `path`; a missing file or one not in this format
    /// is an empty cache.
    pub fn load(path: &Path, max_age: Duration, now: u64) -> Result<ReplayCache> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Ok(ReplayCache::decode(&text, max_age, now).unwrap_or(ReplayCache::new(max_age)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ReplayCache::new(max_age)),
            Err(e) => Err(e).context(|| format!("reading the SPA replay cache {}", path.display())),
        }
    }

    /// Writes the cache to `path` atomically (a temporary file, synced,
    /// renamed over it), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        let what = || format!("writing the SPA replay cache {}", path.display());
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .context(what)?;
        f.write_all(self.encode().as_bytes()).context(what)?;
        f.sync_all().context(what)?;
        std::fs::rename(&tmp, path).context(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_twice_max_age() {
        let mut c = ReplayCache::new(Duration::from_secs(120));
        let d = ReplayDigest::of(b"packet");
        assert!(!c.contains(&d, 1000));
        c.insert(d, 1000);
        assert!(c.contains(&d, 1000));
        assert!(c.contains(&d, 1239));
        assert!(!c.contains(&d, 1240));
        c.insert(ReplayDigest::of(b"other"), 1240);
        assert_eq!(c.len(), 1, "the expired entry was dropped");
    }

    #[test]
    fn the_file_round_trips_and_survives_garbage() {
        let max_age = Duration::from_secs(120);
        let mut c = ReplayCache::new(max_age);
        c.insert(ReplayDigest::of(b"a"), 1000);
        c.insert(ReplayDigest::of(b"b"), 1100);
        let text = c.encode();
        assert!(text.starts_with("iplock spa replay v1\n"));
        assert_eq!(ReplayCache::decode(&text, max_age, 1100), Some(c.clone()));
        // At 1240 the first entry has expired.
        let later = ReplayCache::decode(&text, max_age, 1240).unwrap();
        assert!(!later.contains(&ReplayDigest::of(b"a"), 1240));
        assert!(later.contains(&ReplayDigest::of(b"b"), 1240));
        let torn = format!("{text}zz 12\n{} x\n0123", "ab".repeat(32));
        assert_eq!(ReplayCache::decode(&torn, max_age, 1100), Some(c.clone()));
        assert_eq!(ReplayCache::decode("something else\n", max_age, 0), None);

        let path = std::env::temp_dir().join(format!("iplock-replay-{}", std::process::id()));
        assert!(ReplayCache::load(&path, max_age, 1100).unwrap().is_empty());
        c.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        assert_eq!(ReplayCache::load(&path, max_age, 1100).unwrap(), c);
        std::fs::remove_file(path).unwrap();
    }
}
