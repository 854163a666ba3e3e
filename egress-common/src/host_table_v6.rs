//! The long entries of the IPv6 source allowlist (the relays, as a rule: /128s, or a /124 of a
//! few) as a host table: an IPv6 relay's allow bits in a few array reads instead of an LPM
//! trie walk. Every prefix of [`SHORTEST`] bits or more is expanded into its hosts, each with
//! the bits of the longest of those prefixes that holds it. That is the longest match of the
//! whole list for such a host (any shorter prefix loses to the one that put it there), so a
//! host the table holds is answered from it and any other source still walks the trie: no
//! verdict changes, and the table need not hold every entry to be used.
//!
//! The layout follows `host_table`'s: a two-choice cuckoo hash in one array map of `u64`,
//! element 0 the header (the same format: size, half in use, seed; 0 is off), then two halves
//! of [`HALF`] slots of three words each: the address as two native-endian words (as
//! `SmtpPacket::source_words` gives it) and its allow bits (nonzero; 0 is a free slot).

pub use crate::host_table::{HEADER, bits_of, half_of, header, seed_of};

/// Largest table: 2^12 slots per half, for about 3,000 hosts; more are left to the trie.
pub const MAX_BITS: u32 = 12;
/// The shortest prefix expanded into the table (256 hosts).
pub const SHORTEST: u8 = 120;
/// Hosts the table takes at most: three quarters of a half.
pub const MAX_HOSTS: usize = 3 * (1 << MAX_BITS) / 4;
/// Slots per half.
pub const HALF: u32 = 1 << MAX_BITS;
/// Words per slot: the address's two words and its allow bits.
pub const SLOT_WORDS: u32 = 3;
/// Elements of the array map: the header and two halves (192 KiB).
pub const ENTRIES: u32 = 1 + 2 * HALF * SLOT_WORDS;

const MULTIPLIER_1: u64 = 0x9e37_79b9_7f4a_7c15;
const MULTIPLIER_2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// The slot numbers (0..2^bits) where `host` may live under a table of 2^`bits` slots.
#[inline(always)]
const fn slots_of(bits: u32, seed: u32, host: [u64; 2]) -> [u32; 2] {
    let x = host[0] ^ host[1].rotate_left(29) ^ seed as u64;
    let shift = 64 - bits;
    [
        (x.wrapping_mul(MULTIPLIER_1) >> shift) as u32,
        (x.wrapping_mul(MULTIPLIER_2) >> shift) as u32,
    ]
}

/// The array indices of the first word of the two slots where `host` may live under `header`
/// (whose bits are 1..=[`MAX_BITS`]).
#[inline(always)]
pub const fn choices(header: u64, host: [u64; 2]) -> [u32; 2] {
    let base = 1 + half_of(header) * HALF * SLOT_WORDS;
    let [a, b] = slots_of(bits_of(header), seed_of(header), host);
    [base + a * SLOT_WORDS, base + b * SLOT_WORDS]
}

/// An address's bytes as the table keys them: two native-endian words, as
/// `SmtpPacket::source_words` reads them from a packet.
pub fn host_of(address: [u8; 16]) -> [u64; 2] {
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&address[..8]);
    low.copy_from_slice(&address[8..]);
    [u64::from_ne_bytes(high), u64::from_ne_bytes(low)]
}

#[cfg(feature = "user")]
pub use build::{Table, build, hosts_of};

#[cfg(feature = "user")]
mod build {
    extern crate std;

    use std::{collections::BTreeMap, vec::Vec};

    use super::{MAX_BITS, MAX_HOSTS, SHORTEST, header, host_of, slots_of};

    /// The hosts of the prefixes (address, length, allow bits) of [`SHORTEST`] bits or more,
    /// each with the bits of the longest of them that holds it; `None` when there are more
    /// than [`MAX_HOSTS`] (or more such prefixes than that: the table is then off).
    pub fn hosts_of(
        prefixes: impl IntoIterator<Item = ([u8; 16], u8, u32)>,
    ) -> Option<Vec<([u64; 2], u32)>> {
        let mut long = Vec::new();
        for prefix in prefixes.into_iter().filter(|&(_, len, _)| len >= SHORTEST) {
            if long.len() == MAX_HOSTS {
                return None;
            }
            long.push(prefix);
        }
        long.sort_by_key(|&(_, len, _)| len);
        let mut hosts = BTreeMap::new();
        for (address, len, bits) in long {
            let count = 1u128 << (128 - u32::from(len.min(128)));
            let first = u128::from_be_bytes(address) & !(count - 1);
            for offset in 0..count {
                hosts.insert((first + offset).to_be_bytes(), bits);
            }
            if hosts.len() > MAX_HOSTS {
                return None;
            }
        }
        Some(
            hosts
                .into_iter()
                .map(|(address, bits)| (host_of(address), bits))
                .collect(),
        )
    }

    /// A built table: its size, its seed and the slots of one half.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Table {
        pub bits: u32,
        pub seed: u32,
        /// Address words and allow bits; `[0; 3]` is free.
        pub slots: Vec<[u64; 3]>,
    }

    impl Table {
        /// The header naming this table in `half`.
        pub const fn header(&self, half: u32) -> u64 {
            header(self.bits, half, self.seed)
        }

        /// The allow bits of `host` as the dataplane would read them (0: not held).
        pub fn classes(&self, host: [u64; 2]) -> u32 {
            slots_of(self.bits, self.seed, host)
                .iter()
                .map(|&slot| self.slots[slot as usize])
                .find(|slot| [slot[0], slot[1]] == host && slot[2] != 0)
                .map_or(0, |slot| slot[2] as u32)
        }
    }

    /// A table holding `hosts` (address words, allow bits; each host once, bits nonzero), or
    /// `None` when they do not fit the largest table.
    pub fn build(hosts: &[([u64; 2], u32)]) -> Option<Table> {
        let items: Vec<[u64; 3]> = hosts
            .iter()
            .map(|&([high, low], bits)| [high, low, u64::from(bits)])
            .collect();
        crate::host_table::cuckoo(&items, MAX_BITS, |bits, seed, item| {
            slots_of(bits, seed, [item[0], item[1]]).map(|slot| slot as usize)
        })
        .map(|(bits, seed, slots)| Table { bits, seed, slots })
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    fn host(n: u64) -> [u64; 2] {
        [
            0x0db8_0120_u64.wrapping_mul(n + 1),
            n.rotate_left(17) ^ 0x25,
        ]
    }

    #[test]
    fn every_host_is_found_with_its_bits_and_nothing_else_is() {
        for count in [1u64, 2, 100, 1_000, 2_000] {
            let hosts: Vec<([u64; 2], u32)> =
                (0..count).map(|n| (host(n), 1 + (n % 3) as u32)).collect();
            let table = build(&hosts).expect("a table");
            assert!(table.bits <= MAX_BITS);
            for &(address, bits) in &hosts {
                assert_eq!(table.classes(address), bits, "{count} hosts");
            }
            for n in count..count + 500 {
                assert_eq!(table.classes(host(n)), 0, "{count} hosts: stranger {n}");
            }
        }
    }

    #[test]
    fn long_prefixes_are_expanded_and_the_longest_holding_one_wins() {
        let net = |last: u16| {
            let mut address = [0u8; 16];
            address[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            address[14..].copy_from_slice(&last.to_be_bytes());
            address
        };
        // A /124 of relays with one /128 inside it exempt only, and a /64 left to the trie.
        let hosts = hosts_of([(net(0x10), 124, 1), (net(0x13), 128, 2), (net(0), 64, 2)])
            .expect("17 hosts fit");
        assert_eq!(hosts.len(), 16);
        let table = build(&hosts).expect("a table");
        assert_eq!(table.classes(host_of(net(0x10))), 1);
        assert_eq!(table.classes(host_of(net(0x1f))), 1);
        assert_eq!(table.classes(host_of(net(0x13))), 2, "the /128 is longer");
        assert_eq!(table.classes(host_of(net(0x20))), 0, "outside the /124");
        let too_many = (0..=MAX_HOSTS as u16).map(|n| (net(n), 128, 1));
        assert_eq!(hosts_of(too_many), None);
    }

    #[test]
    fn more_hosts_than_the_largest_table_takes_are_left_to_the_trie() {
        let hosts: Vec<([u64; 2], u32)> = (0..u64::from(HALF)).map(|n| (host(n), 1)).collect();
        assert_eq!(build(&hosts), None);
    }

    #[test]
    fn choices_fall_in_the_half_in_use_on_slot_boundaries() {
        for half in [0, 1] {
            let h = header(MAX_BITS, half, 0x1234);
            let base = 1 + half * HALF * SLOT_WORDS;
            for n in 0..1_000 {
                for index in choices(h, host(n)) {
                    assert!((base..base + HALF * SLOT_WORDS).contains(&index));
                    assert_eq!((index - base) % SLOT_WORDS, 0);
                }
            }
        }
    }
}
