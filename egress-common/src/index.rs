//! The IPv4 source index: what the dataplane reads instead of walking the source LPM trie.
//!
//! An LPM trie costs one dependent pointer load per bit of the address, and with a million
//! prefixes each of them misses the cache. The index answers in one array load for most
//! packets, whatever the number of prefixes:
//!
//! - one 16-bit slot per /24 (2^24 slots, four to a `u64` array element): bits 0-1 hold the
//!   allow-kind bits of the longest prefix of length <= 24 covering the /24 (0 if none), bits
//!   8-15 a bitmap of the lengths 25..=32 that have prefixes inside the /24;
//! - a hash map keyed by [`LongKey`] (length, masked address) holding the kind bits of each
//!   prefix longer than /24. The dataplane probes it only for lengths the slot says are
//!   present, longest first; the first hit is the longest match.
//!
//! Everything here is pure and shared by the eBPF program (lookups) and the agent (building).

/// Bits of an address that select its slot.
pub const SLOT_BITS: u32 = 24;
/// Number of slots: one per /24.
pub const SLOTS: u32 = 1 << SLOT_BITS;
/// Slots packed into one array element.
pub const SLOTS_PER_WORD: u32 = 4;
/// Number of `u64` elements of the index array.
pub const WORDS: u32 = SLOTS / SLOTS_PER_WORD;
/// Shortest prefix stored in the long-prefix hash rather than in the slots.
pub const FIRST_LONG_LEN: u8 = 25;

const KIND_MASK: u16 = 0b11;
const LENGTHS_SHIFT: u32 = 8;

/// Key of the long-prefix hash map: a prefix of length 25..=32 with its host bits cleared.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LongKey {
    pub prefix_len: u32,
    /// Network byte order.
    pub addr: [u8; 4],
}

impl LongKey {
    /// The key of the length-`prefix_len` prefix holding `addr` (host order).
    #[inline(always)]
    pub const fn new(prefix_len: u32, addr: u32) -> LongKey {
        LongKey {
            prefix_len,
            addr: (addr & mask(prefix_len)).to_be_bytes(),
        }
    }
}

/// The netmask of a prefix length (0..=32), host order.
#[inline(always)]
pub const fn mask(prefix_len: u32) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - prefix_len)
    }
}

/// The slot of an address (host order).
#[inline(always)]
pub const fn slot_of(addr: u32) -> u32 {
    addr >> (32 - SLOT_BITS)
}

/// The array element holding `slot`.
#[inline(always)]
pub const fn word_of(slot: u32) -> u32 {
    slot / SLOTS_PER_WORD
}

/// `slot`'s 16 bits within its array element.
#[inline(always)]
pub const fn slot_in(word: u64, slot: u32) -> u16 {
    (word >> ((slot % SLOTS_PER_WORD) * 16)) as u16
}

/// `word` with `slot`'s 16 bits replaced by `value`.
pub const fn with_slot(word: u64, slot: u32, value: u16) -> u64 {
    let shift = (slot % SLOTS_PER_WORD) * 16;
    (word & !(0xffff_u64 << shift)) | ((value as u64) << shift)
}

/// A slot value from the kind bits of its covering prefix and its long-length bitmap.
pub const fn encode(kind: u32, lengths: u8) -> u16 {
    (kind as u16 & KIND_MASK) | ((lengths as u16) << LENGTHS_SHIFT)
}

/// Allow-kind bits of the longest prefix of length <= 24 covering the slot's /24.
#[inline(always)]
pub const fn kind_of(slot: u16) -> u32 {
    (slot & KIND_MASK) as u32
}

/// Bitmap of the lengths 25..=32 (bit 0 = /25) with prefixes inside the slot's /24.
#[inline(always)]
pub const fn lengths_of(slot: u16) -> u8 {
    (slot >> LENGTHS_SHIFT) as u8
}

/// The bit of a long prefix length (25..=32) in the slot's length bitmap.
pub const fn length_bit(prefix_len: u8) -> u8 {
    1 << (prefix_len - FIRST_LONG_LEN)
}

/// Kind bits of the longest prefix holding `addr` (host order), given its slot value and a
/// probe of the long-prefix hash map.
#[inline(always)]
pub fn lookup(slot: u16, addr: u32, mut probe: impl FnMut(&LongKey) -> Option<u32>) -> u32 {
    let lengths = lengths_of(slot);
    if lengths != 0 {
        let mut bit = 8;
        while bit > 0 {
            bit -= 1;
            if lengths & (1 << bit) != 0 {
                let key = LongKey::new(FIRST_LONG_LEN as u32 + bit, addr);
                if let Some(kind) = probe(&key) {
                    return kind;
                }
            }
        }
    }
    kind_of(slot)
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for LongKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_pack_four_to_a_word() {
        let mut word = 0;
        for slot in 0..4 {
            word = with_slot(word, 40 + slot, encode(slot % 3 + 1, slot as u8));
        }
        for slot in 0..4 {
            let value = slot_in(word, 40 + slot);
            assert_eq!(
                (kind_of(value), lengths_of(value)),
                (slot % 3 + 1, slot as u8)
            );
            assert_eq!(word_of(40 + slot), 10);
        }
        assert_eq!(slot_in(with_slot(u64::MAX, 5, 0), 5), 0);
        assert_eq!(slot_in(with_slot(u64::MAX, 5, 0), 4), 0xffff);
    }

    #[test]
    fn addresses_map_to_their_24() {
        assert_eq!(slot_of(0xC000_0201), 0xC00002);
        assert_eq!(LongKey::new(25, 0xC000_02FF).addr, [192, 0, 2, 128]);
        assert_eq!(LongKey::new(32, 0xC000_02FF).addr, [192, 0, 2, 255]);
        assert_eq!(mask(0), 0);
        assert_eq!(mask(24), 0xFFFF_FF00);
        assert_eq!(length_bit(25), 1);
        assert_eq!(length_bit(32), 0x80);
    }

    #[test]
    fn lookup_probes_present_lengths_longest_first() {
        let addr = 0xC000_0281; // 192.0.2.129
        let slot = encode(2, length_bit(25) | length_bit(30) | length_bit(32));
        let mut probed = [0u32; 8];
        let mut n = 0;
        let found = lookup(slot, addr, |key| {
            probed[n] = key.prefix_len;
            n += 1;
            (key.prefix_len == 25).then_some(1)
        });
        assert_eq!(found, 1);
        assert_eq!(&probed[..n], &[32, 30, 25]);
        assert_eq!(
            lookup(slot, addr, |_| None),
            2,
            "falls back to the /24 kind"
        );
        assert_eq!(lookup(encode(1, 0), addr, |_| panic!("no probe")), 1);
    }
}
