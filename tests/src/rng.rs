//! Seeded randomness for the tests that draw traffic at random: the seed
//! comes from an environment variable when a failure is to be replayed.

use std::time::{SystemTime, UNIX_EPOCH};

/// `$var` as a u64, else the clock's nanoseconds; panics on a value that is
/// not a number rather than silently drawing another seed.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{var}={s} is not a u64"))
        })
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// SplitMix64: small, seedable and the same everywhere, so a seed replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
