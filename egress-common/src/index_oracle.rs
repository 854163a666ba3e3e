//! Test helpers for the index: a naive longest-prefix match to judge it against, and a
//! deterministic generator so random cases reproduce.

use crate::{index::mask, index_plan::SourcePrefix};

/// A deterministic xorshift generator, so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Kind bits of the longest prefixes holding `addr` (equal-length duplicates merged), or 0.
pub fn oracle(prefixes: &[SourcePrefix], addr: u32) -> u32 {
    let mut best: Option<(u8, u32)> = None;
    for p in prefixes {
        let m = mask(u32::from(p.len));
        if addr & m == p.addr & m {
            match &mut best {
                Some((len, kind)) if *len == p.len => *kind |= p.kind,
                Some((len, _)) if *len > p.len => {}
                _ => best = Some((p.len, p.kind)),
            }
        }
    }
    best.map_or(0, |(_, kind)| kind)
}
