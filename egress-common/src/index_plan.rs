//! What the IPv4 source index should hold for a set of prefixes (user space only).
//!
//! The table is computed one window at a time, so building or checking it never needs the
//! whole 32 MiB in memory at once.

extern crate std;

use std::vec::Vec;

use crate::index::{FIRST_LONG_LEN, LongKey, SLOTS_PER_WORD, encode, length_bit, mask, slot_of};

/// Array elements per window.
pub const WINDOW_WORDS: u32 = 1 << 16;
const WINDOW_SLOTS: u32 = WINDOW_WORDS * SLOTS_PER_WORD;
/// Prefixes shorter than this can span several windows.
const SHORTEST_IN_ONE_WINDOW: u8 = 24 - WINDOW_SLOTS.trailing_zeros() as u8;

/// One IPv4 source prefix and its allow-kind bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePrefix {
    /// Host order; host bits are ignored.
    pub addr: u32,
    pub len: u8,
    pub kind: u32,
}

/// A prefix of length <= 24: the run of slots it covers.
#[derive(Clone, Copy, Debug)]
struct Short {
    first_slot: u32,
    len: u8,
    kind: u32,
}

impl Short {
    fn slots(&self) -> u32 {
        1 << (24 - self.len)
    }
}

/// The expected index for a set of prefixes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Sorted by first slot.
    short: Vec<Short>,
    /// Sorted by address, then length.
    long: Vec<(LongKey, u32)>,
}

impl Plan {
    /// Duplicate prefixes have their kind bits merged; prefixes longer than /32 are ignored.
    pub fn new(prefixes: impl IntoIterator<Item = SourcePrefix>) -> Plan {
        let mut short: Vec<Short> = Vec::new();
        let mut long: Vec<(LongKey, u32)> = Vec::new();
        for prefix in prefixes {
            let addr = prefix.addr & mask(u32::from(prefix.len));
            if prefix.len >= FIRST_LONG_LEN && prefix.len <= 32 {
                long.push((LongKey::new(u32::from(prefix.len), addr), prefix.kind));
            } else if prefix.len < FIRST_LONG_LEN {
                short.push(Short {
                    first_slot: slot_of(addr),
                    len: prefix.len,
                    kind: prefix.kind,
                });
            }
        }
        short.sort_by_key(|s| (s.first_slot, s.len));
        short.dedup_by(|b, a| {
            let same = (a.first_slot, a.len) == (b.first_slot, b.len);
            if same {
                a.kind |= b.kind;
            }
            same
        });
        long.sort_by_key(|(key, _)| (key.addr, key.prefix_len));
        long.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 |= b.1;
            }
            same
        });
        Plan { short, long }
    }

    /// Entries the long-prefix hash map should hold.
    pub fn long_entries(&self) -> &[(LongKey, u32)] {
        &self.long
    }

    /// OR of the kind bits of the long prefixes inside `slot`'s /24.
    pub fn long_kinds_in(&self, slot: u32) -> u32 {
        self.long_in(slot, slot + 1).iter().fold(0, |k, e| k | e.1)
    }

    fn long_in(&self, first_slot: u32, end_slot: u32) -> &[(LongKey, u32)] {
        let slot = |key: &LongKey| slot_of(u32::from_be_bytes(key.addr));
        let start = self.long.partition_point(|(k, _)| slot(k) < first_slot);
        let end = self.long.partition_point(|(k, _)| slot(k) < end_slot);
        &self.long[start..end]
    }

    /// Fills `out` with the expected array elements starting at `first_word`. `out` must not
    /// reach past the end of the array and at most `WINDOW_WORDS` long is cheapest.
    pub fn words(&self, first_word: u32, out: &mut [u64]) {
        let first_slot = first_word * SLOTS_PER_WORD;
        let end_slot = first_slot + out.len() as u32 * SLOTS_PER_WORD;
        let mut covering: Vec<&Short> = self
            .short
            .iter()
            .filter(|s| s.len < SHORTEST_IN_ONE_WINDOW)
            .filter(|s| s.first_slot < end_slot && s.first_slot + s.slots() > first_slot)
            .collect();
        let start = self.short.partition_point(|s| s.first_slot < first_slot);
        let end = self.short.partition_point(|s| s.first_slot < end_slot);
        covering.extend(
            self.short[start..end]
                .iter()
                .filter(|s| s.len >= SHORTEST_IN_ONE_WINDOW),
        );
        let long = self.long_in(first_slot, end_slot);
        if covering.is_empty() && long.is_empty() {
            out.fill(0);
            return;
        }
        let mut slots: Vec<u16> = std::vec![0; (end_slot - first_slot) as usize];
        // Longer prefixes paint over shorter ones: the longest match wins.
        covering.sort_by_key(|s| s.len);
        for s in covering {
            let from = s.first_slot.max(first_slot);
            let to = (s.first_slot + s.slots()).min(end_slot);
            for slot in &mut slots[(from - first_slot) as usize..(to - first_slot) as usize] {
                *slot = encode(s.kind, 0);
            }
        }
        for (key, _) in long {
            let slot = slot_of(u32::from_be_bytes(key.addr)) - first_slot;
            slots[slot as usize] |= u16::from(length_bit(key.prefix_len as u8)) << 8;
        }
        for (word, four) in out.iter_mut().zip(slots.chunks_exact(4)) {
            *word = four
                .iter()
                .rev()
                .fold(0u64, |w, slot| (w << 16) | u64::from(*slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::index::{WORDS, lookup, slot_in, word_of};

    /// A deterministic xorshift generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn oracle(prefixes: &[SourcePrefix], addr: u32) -> u32 {
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

    fn build(prefixes: &[SourcePrefix]) -> (Vec<u64>, HashMap<LongKey, u32>) {
        let plan = Plan::new(prefixes.iter().copied());
        let mut table = std::vec![0u64; WORDS as usize];
        for (n, window) in table.chunks_mut(WINDOW_WORDS as usize).enumerate() {
            plan.words(n as u32 * WINDOW_WORDS, window);
        }
        (table, plan.long_entries().iter().copied().collect())
    }

    fn resolve(table: &[u64], long: &HashMap<LongKey, u32>, addr: u32) -> u32 {
        let slot = slot_of(addr);
        let value = slot_in(table[word_of(slot) as usize], slot);
        lookup(value, addr, |key| long.get(key).copied())
    }

    #[test]
    fn random_nested_prefixes_match_a_naive_longest_prefix_match() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..4 {
            // Few bases so prefixes nest: /8 around /16 around /23../32, relay inside exempt
            // and the other way round.
            let bases: Vec<u32> = (0..3).map(|_| rng.next() as u32).collect();
            let mut prefixes = Vec::new();
            for _ in 0..400 {
                let base = bases[rng.below(3) as usize];
                let len =
                    [1, 5, 6, 8, 16, 20, 23, 24, 25, 26, 28, 30, 31, 32][rng.below(14) as usize];
                let jitter = (rng.next() as u32) & !mask(20);
                prefixes.push(SourcePrefix {
                    addr: (base ^ jitter) & mask(u32::from(len)),
                    len,
                    kind: 1 + rng.below(3) as u32,
                });
            }
            let (table, long) = build(&prefixes);
            for n in 0..4000 {
                let base = bases[rng.below(3) as usize];
                let addr = if n % 4 == 0 {
                    rng.next() as u32
                } else {
                    base ^ ((rng.next() as u32) & !mask(18))
                };
                assert_eq!(
                    resolve(&table, &long, addr),
                    oracle(&prefixes, addr),
                    "round {round}, address {:#010x}",
                    addr
                );
            }
            for p in &prefixes {
                assert_eq!(
                    resolve(&table, &long, p.addr),
                    oracle(&prefixes, p.addr),
                    "prefix {:#010x}/{}",
                    p.addr,
                    p.len
                );
            }
        }
    }

    #[test]
    fn wide_prefixes_span_windows_and_duplicates_merge() {
        let prefixes = [
            SourcePrefix {
                addr: 0x4000_0000,
                len: 2,
                kind: 2,
            },
            SourcePrefix {
                addr: 0x6440_0000,
                len: 10,
                kind: 1,
            },
            SourcePrefix {
                addr: 0x6440_0000,
                len: 10,
                kind: 2,
            },
            SourcePrefix {
                addr: 0x6440_0101,
                len: 32,
                kind: 1,
            },
        ];
        let (table, long) = build(&prefixes);
        assert_eq!(resolve(&table, &long, 0x7fff_ffff), 2);
        assert_eq!(resolve(&table, &long, 0x8000_0000), 0);
        assert_eq!(resolve(&table, &long, 0x6440_0203), 3);
        assert_eq!(resolve(&table, &long, 0x6440_0101), 1);
        assert_eq!(resolve(&table, &long, 0x6440_0102), 3);
        assert_eq!(long.len(), 1);
        let plan = Plan::new(prefixes);
        assert_eq!(plan.long_kinds_in(slot_of(0x6440_0101)), 1);
        assert_eq!(plan.long_kinds_in(slot_of(0x6440_0201)), 0);
    }
}
