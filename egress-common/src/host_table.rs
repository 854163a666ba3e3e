//! A table of IPv4 hosts with a few class bits each: what a packet's address is in two array
//! reads instead of an LPM trie walk, for lists whose IPv4 entries are all hosts. The inbound
//! program asks it what an SMTP packet's destination is (a protected MX, a throttled spam
//! checker, both or neither: `inbound::host_class`), the outbound programs whether a blocked
//! packet's destination is an allowed one (`allow.destinations`, e.g. the ISP's relay beyond
//! the edge).
//!
//! The table is a two-choice cuckoo hash (Pagh and Rodler 2001) over one array map: each host
//! lives in one of two slots picked by two multiplicative hashes, so a lookup reads both and
//! never probes further. The agent builds it from the lists after their tries; it is used only
//! while every IPv4 entry of those lists is a /32, and the tries answer otherwise.
//!
//! - **Element 0, the header**: bits 0-7 the table's size as a power of two (0: the table is
//!   off, ask the tries), bit 8 the half in use, bits 32-63 the hash seed.
//! - **Two halves** of [`HALF`] slots. The agent writes the half not in use and then the
//!   header, one store, so a packet sees the old table or the new one, never a mix.
//! - **A slot**: the host (as the packet's four address bytes read as a native `u32`) in bits
//!   32-63, its class bits (nonzero) in bits 0-7; 0 is a free slot.
//!
//! Everything here is shared by the eBPF programs (lookups) and the agent (building).

/// Largest table: 2^16 slots per half, for 16,384 hosts at a quarter load and up to about
/// 30,000 fuller; lists with more hosts than that are left to the tries.
pub const MAX_BITS: u32 = 16;
/// Slots per half.
pub const HALF: u32 = 1 << MAX_BITS;
/// Elements of the array map: the header and two halves (1 MiB).
pub const ENTRIES: u32 = 1 + 2 * HALF;
/// The header's index.
pub const HEADER: u32 = 0;

const CLASS_MASK: u64 = 0xff;
const HALF_BIT: u64 = 1 << 8;
const MULTIPLIER_1: u64 = 0x9e37_79b9_7f4a_7c15;
const MULTIPLIER_2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// A header for a table of 2^`bits` slots in `half` (0 or 1), hashed with `seed`.
pub const fn header(bits: u32, half: u32, seed: u32) -> u64 {
    (bits as u64 & 0xff) | ((half as u64 & 1) << 8) | ((seed as u64) << 32)
}

/// The table's size as a power of two; 0 when it is off.
#[inline(always)]
pub const fn bits_of(header: u64) -> u32 {
    (header & 0xff) as u32
}

/// The half a header names.
pub const fn half_of(header: u64) -> u32 {
    ((header & HALF_BIT) >> 8) as u32
}

/// The seed a header names.
pub const fn seed_of(header: u64) -> u32 {
    (header >> 32) as u32
}

/// The two slots (array indices) where `host` may live under `header` (whose bits are 1..=
/// [`MAX_BITS`]).
#[inline(always)]
pub const fn choices(header: u64, host: u32) -> [u32; 2] {
    let bits = bits_of(header);
    let base = 1 + (header & HALF_BIT) as u32 / (HALF_BIT as u32) * HALF;
    let x = (host ^ seed_of(header)) as u64;
    let shift = 64 - bits;
    [
        base + (x.wrapping_mul(MULTIPLIER_1) >> shift) as u32,
        base + (x.wrapping_mul(MULTIPLIER_2) >> shift) as u32,
    ]
}

/// A used slot for `host` with `classes` (nonzero).
pub const fn slot(host: u32, classes: u32) -> u64 {
    ((host as u64) << 32) | (classes as u64 & CLASS_MASK)
}

/// The classes `slot` gives `host`: its bits when the slot holds `host`, else 0.
#[inline(always)]
pub const fn classes_in(slot: u64, host: u32) -> u32 {
    if (slot >> 32) as u32 == host {
        (slot & CLASS_MASK) as u32
    } else {
        0
    }
}

/// The host of a packet's IPv4 address bytes, as the table keys it.
#[inline(always)]
pub const fn host_of(address: [u8; 4]) -> u32 {
    u32::from_ne_bytes(address)
}

/// The host of a packet's address read as its first 64-bit word (`SmtpPacket::
/// destination_words`): the same value as [`host_of`] the four bytes, without byte loads.
#[inline(always)]
pub const fn host_of_word(word: u64) -> u32 {
    let [a, b, c, d, ..] = word.to_ne_bytes();
    host_of([a, b, c, d])
}

#[cfg(feature = "user")]
pub use build::{Table, build, cuckoo};

#[cfg(feature = "user")]
mod build {
    extern crate std;

    use std::{vec, vec::Vec};

    use super::{MAX_BITS, choices, classes_in, header, slot};

    /// Displacements one insertion may make before the build tries another seed.
    const MAX_KICKS: u32 = 256;
    /// Seeds tried at one size before the table grows.
    const SEEDS: u32 = 8;

    /// A built table: its size, its seed and the slots of one half.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Table {
        pub bits: u32,
        pub seed: u32,
        pub slots: Vec<u64>,
    }

    impl Table {
        /// The header naming this table in `half`.
        pub const fn header(&self, half: u32) -> u64 {
            header(self.bits, half, self.seed)
        }

        /// The classes of `host` as the dataplane would read them.
        pub fn classes(&self, host: u32) -> u32 {
            let [a, b] = choices(self.header(0), host);
            let (a, b) = (a as usize - 1, b as usize - 1);
            classes_in(self.slots[a], host) | classes_in(self.slots[b], host)
        }
    }

    /// A table holding `hosts` (host, classes; each host once, classes nonzero), at a load of
    /// a quarter or less where [`MAX_BITS`] allows, or `None` when no size takes them all.
    pub fn build(hosts: &[(u32, u32)]) -> Option<Table> {
        let slots: Vec<u64> = hosts
            .iter()
            .map(|&(host, classes)| slot(host, classes))
            .collect();
        cuckoo(&slots, MAX_BITS, |bits, seed, moving| {
            choices(header(bits, 0, seed), (moving >> 32) as u32).map(|i| i as usize - 1)
        })
        .map(|(bits, seed, slots)| Table { bits, seed, slots })
    }

    /// Places `items` (nonzero: the default value is a free slot) in a two-choice cuckoo table
    /// of 2^bits slots, the smallest at a quarter load or less up to `max_bits`, trying a few
    /// seeds at each size; `choices` gives an item's two slots for a size and seed. Returns the
    /// size, the seed and the slots, or `None` when no size takes them all.
    pub fn cuckoo<S: Copy + Default + PartialEq>(
        items: &[S],
        max_bits: u32,
        choices: impl Fn(u32, u32, &S) -> [usize; 2],
    ) -> Option<(u32, u32, Vec<S>)> {
        let quarter_load = usize::BITS - (items.len().max(1) * 4 - 1).leading_zeros();
        for bits in quarter_load.clamp(4, max_bits)..=max_bits {
            for seed in 0..SEEDS {
                let seed = seed.wrapping_mul(0x2545_f491);
                if let Some(slots) = place(items, bits, |item| choices(bits, seed, item)) {
                    return Some((bits, seed, slots));
                }
            }
        }
        None
    }

    fn place<S: Copy + Default + PartialEq>(
        items: &[S],
        bits: u32,
        choices: impl Fn(&S) -> [usize; 2],
    ) -> Option<Vec<S>> {
        let mut slots = vec![S::default(); 1 << bits];
        'items: for item in items {
            let mut moving = *item;
            let mut vacated = None;
            for _ in 0..MAX_KICKS {
                let [a, b] = choices(&moving);
                for choice in [a, b] {
                    if slots[choice] == S::default() {
                        slots[choice] = moving;
                        continue 'items;
                    }
                }
                // Evict from the choice the moving slot did not just displace someone into.
                let victim = if vacated == Some(a) { b } else { a };
                core::mem::swap(&mut slots[victim], &mut moving);
                vacated = Some(victim);
            }
            return None;
        }
        Some(slots)
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    const PROTECTED: u32 = 1;
    const THROTTLED: u32 = 2;

    #[test]
    fn every_host_is_found_with_its_classes_and_nothing_else_is() {
        for count in [1u32, 2, 3, 100, 4_096, 16_384, 24_000] {
            let hosts: Vec<(u32, u32)> = (0..count)
                .map(|n| {
                    (
                        0x6440_0000_u32.wrapping_add(n.wrapping_mul(7919)),
                        1 + n % 3,
                    )
                })
                .collect();
            let table = build(&hosts).expect("a table for every size the lists allow");
            assert!(table.bits <= MAX_BITS);
            for &(host, classes) in &hosts {
                assert_eq!(table.classes(host), classes, "{count} hosts: {host:#x}");
            }
            for n in 0..1_000u32 {
                let stranger = 0xc000_0200_u32.wrapping_add(n);
                assert_eq!(table.classes(stranger), 0, "{count} hosts: {stranger:#x}");
            }
        }
    }

    #[test]
    fn more_hosts_than_the_largest_table_takes_are_left_to_the_tries() {
        let hosts: Vec<(u32, u32)> = (0..HALF).map(|n| (n, PROTECTED)).collect();
        assert_eq!(build(&hosts), None);
        assert_eq!(build(&[]).map(|t| t.bits), Some(4));
    }

    #[test]
    fn the_header_names_size_half_and_seed() {
        let h = header(12, 1, 0xdead_beef);
        assert_eq!((bits_of(h), half_of(h), seed_of(h)), (12, 1, 0xdead_beef));
        let [a, b] = choices(h, 42);
        assert!((1 + HALF..1 + HALF + 4_096).contains(&a));
        assert!((1 + HALF..1 + HALF + 4_096).contains(&b));
        let [a, b] = choices(header(MAX_BITS, 0, 7), u32::MAX);
        assert!(a < 1 + HALF && b < 1 + HALF && a >= 1 && b >= 1);
    }

    #[test]
    fn a_word_and_its_bytes_name_the_same_host() {
        let mut address = [0u8; 8];
        address[..4].copy_from_slice(&[192, 0, 2, 30]);
        assert_eq!(
            host_of_word(u64::from_ne_bytes(address)),
            host_of([192, 0, 2, 30])
        );
    }

    #[test]
    fn a_free_slot_gives_no_class_even_to_host_zero() {
        assert_eq!(classes_in(0, 0), 0);
        assert_eq!(classes_in(slot(0, PROTECTED), 0), PROTECTED);
        assert_eq!(classes_in(slot(5, THROTTLED), 6), 0);
    }
}
