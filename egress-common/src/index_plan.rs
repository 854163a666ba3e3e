//! What the IPv4 source index should hold for a set of prefixes (user space only).
//!
//! The table is computed one window at a time, so building or checking it never needs the
//! whole 32 MiB in memory at once. Block numbers are not part of the plan: the sync hands
//! them out (`index_sync`).

extern crate std;

use std::vec::Vec;

use crate::index::{BLOCK_FLAG, Block, SLOTS_PER_WORD, direct, mask, pack_block, slot_of};

/// First-level elements per window.
pub const WINDOW_WORDS: u32 = 1 << 16;
/// Slots per window.
pub const WINDOW_SLOTS: u32 = WINDOW_WORDS * SLOTS_PER_WORD;
/// Number of windows of the first level.
pub const WINDOWS: u32 = crate::index::SLOTS / WINDOW_SLOTS;

/// The windows whose slots a prefix (`addr` host order, `len` 0..=32) covers: the only ones
/// whose plan it changes.
pub fn windows_of(addr: u32, len: u8) -> core::ops::RangeInclusive<u32> {
    let network = addr & mask(u32::from(len));
    let last = network | !mask(u32::from(len));
    slot_of(network) / WINDOW_SLOTS..=slot_of(last) / WINDOW_SLOTS
}

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

/// A prefix of length 25..=32, inside one /24.
#[derive(Clone, Copy, Debug)]
struct Long {
    /// Host order, host bits cleared.
    addr: u32,
    len: u8,
    kind: u32,
}

impl Long {
    fn slot(&self) -> u32 {
        slot_of(self.addr)
    }

    /// The block entries (the addresses' last bytes) it covers.
    fn hosts(&self) -> std::ops::Range<usize> {
        let first = (self.addr & 0xff) as usize;
        first..first + (1usize << (32 - self.len))
    }
}

/// The expected index for a set of prefixes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Sorted by first slot.
    short: Vec<Short>,
    /// Sorted by slot, then length (shorter first), then address.
    long: Vec<Long>,
}

impl Plan {
    /// Duplicate prefixes have their kind bits merged; prefixes longer than /32 are ignored.
    pub fn new(prefixes: impl IntoIterator<Item = SourcePrefix>) -> Plan {
        let mut short: Vec<Short> = Vec::new();
        let mut long: Vec<Long> = Vec::new();
        for prefix in prefixes {
            let addr = prefix.addr & mask(u32::from(prefix.len));
            if prefix.len > 24 && prefix.len <= 32 {
                long.push(Long {
                    addr,
                    len: prefix.len,
                    kind: prefix.kind,
                });
            } else if prefix.len <= 24 {
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
        long.sort_by_key(|l| (l.slot(), l.len, l.addr));
        long.dedup_by(|b, a| {
            let same = (a.addr, a.len) == (b.addr, b.len);
            if same {
                a.kind |= b.kind;
            }
            same
        });
        Plan { short, long }
    }

    /// Number of /24s that hold prefixes longer than /24: the blocks the index needs.
    pub fn blocks_needed(&self) -> usize {
        let mut slots: Vec<u32> = self.long.iter().map(Long::slot).collect();
        slots.dedup();
        slots.len()
    }

    /// What the slots `first_slot..first_slot + slots.len()` should hold. `first_slot` is a
    /// multiple of [`WINDOW_SLOTS`] and `slots` at most that long. Each slot gets the
    /// [`direct`] value of the longest prefix of length <= 24 covering it, with
    /// [`BLOCK_FLAG`] set when longer prefixes lie inside it; `blocks` is cleared and gets
    /// those slots' second-level contents, in slot order.
    pub fn window(&self, first_slot: u32, slots: &mut [u16], blocks: &mut Vec<(u32, Block)>) {
        debug_assert!(
            first_slot.is_multiple_of(WINDOW_SLOTS) && slots.len() <= WINDOW_SLOTS as usize
        );
        blocks.clear();
        let end_slot = first_slot + slots.len() as u32;
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
        slots.fill(0);
        // Longer prefixes paint over shorter ones: the longest match wins.
        covering.sort_by_key(|s| s.len);
        for s in covering {
            let from = s.first_slot.max(first_slot);
            let to = (s.first_slot + s.slots()).min(end_slot);
            slots[(from - first_slot) as usize..(to - first_slot) as usize].fill(direct(s.kind));
        }
        let start = self.long.partition_point(|l| l.slot() < first_slot);
        let end = self.long.partition_point(|l| l.slot() < end_slot);
        for group in self.long[start..end].chunk_by(|a, b| a.slot() == b.slot()) {
            let slot = &mut slots[(group[0].slot() - first_slot) as usize];
            let mut hosts = [*slot as u8; 256];
            for long in group {
                hosts[long.hosts()].fill(long.kind as u8);
            }
            blocks.push((group[0].slot(), pack_block(&hosts)));
            *slot |= BLOCK_FLAG;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        index::{WORDS, block_slot, lookup, slot_in, word_of},
        index_oracle::{Rng, oracle},
    };

    /// The index for `prefixes`, blocks numbered in slot order.
    fn build(prefixes: &[SourcePrefix]) -> (Vec<u64>, Vec<u64>) {
        let plan = Plan::new(prefixes.iter().copied());
        let mut table = std::vec![0u64; WORDS as usize];
        let mut second = Vec::new();
        let mut slots = std::vec![0u16; WINDOW_SLOTS as usize];
        let mut blocks = Vec::new();
        for (n, window) in table.chunks_mut(WINDOW_WORDS as usize).enumerate() {
            let first_slot = n as u32 * WINDOW_SLOTS;
            plan.window(first_slot, &mut slots, &mut blocks);
            for (slot, block) in &blocks {
                slots[(slot - first_slot) as usize] = block_slot((second.len() / 8) as u32);
                second.extend_from_slice(block);
            }
            for (word, four) in window.iter_mut().zip(slots.chunks_exact(4)) {
                *word = four
                    .iter()
                    .rev()
                    .fold(0u64, |w, slot| (w << 16) | u64::from(*slot));
            }
        }
        assert_eq!(second.len() / 8, plan.blocks_needed());
        (table, second)
    }

    fn resolve(table: &[u64], second: &[u64], addr: u32) -> u32 {
        let slot = slot_of(addr);
        let value = slot_in(table[word_of(slot) as usize], slot);
        lookup(
            value,
            addr,
            |n| second.get(n as usize).copied(),
            || panic!("no trie"),
        )
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
            let (table, second) = build(&prefixes);
            for n in 0..4000 {
                let base = bases[rng.below(3) as usize];
                let addr = if n % 4 == 0 {
                    rng.next() as u32
                } else {
                    base ^ ((rng.next() as u32) & !mask(18))
                };
                assert_eq!(
                    resolve(&table, &second, addr),
                    oracle(&prefixes, addr),
                    "round {round}, address {:#010x}",
                    addr
                );
            }
            for p in &prefixes {
                assert_eq!(
                    resolve(&table, &second, p.addr),
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
        let (table, second) = build(&prefixes);
        assert_eq!(resolve(&table, &second, 0x7fff_ffff), 2);
        assert_eq!(resolve(&table, &second, 0x8000_0000), 0);
        assert_eq!(resolve(&table, &second, 0x6440_0203), 3);
        assert_eq!(resolve(&table, &second, 0x6440_0101), 1);
        assert_eq!(resolve(&table, &second, 0x6440_0102), 3);
        assert_eq!(second.len(), 8, "one /24 holds a longer prefix: one block");
    }
}
