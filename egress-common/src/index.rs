//! The IPv4 source index: what the dataplane reads instead of walking the source LPM trie.
//!
//! An LPM trie costs one dependent pointer load per bit of the address, and with a million
//! prefixes each of them misses the cache. The index is DIR-24-8 (Gupta, Lin and McKeown
//! 1998; DPDK's `rte_lpm`): one or two array loads and no hashing, whatever the prefixes.
//!
//! - **First level**: one 16-bit slot per /24 (2^24 slots, four to a `u64` array element,
//!   32 MiB). With bit 15 clear, bits 0-1 hold the allow-kind bits of the longest prefix of
//!   length <= 24 covering the /24 (0 if none). With bit 15 set, bits 0-14 number the /24's
//!   second-level block.
//! - **Second level**: blocks of 256 two-bit entries, one per address of the /24, each the
//!   kind bits of that address's longest match (8 `u64` elements: one cache line). A /24 gets
//!   a block only when prefixes longer than /24 lie inside it.
//! - [`TRIE`]: a /24 that needs a block when all [`BLOCKS`] are taken; the dataplane asks the
//!   source trie (always complete) for addresses there, so no prefix mix is ever misjudged.
//!
//! Everything here is pure and shared by the eBPF program (lookups) and the agent (building).

/// Bits of an address that select its slot.
pub const SLOT_BITS: u32 = 24;
/// Number of slots: one per /24.
pub const SLOTS: u32 = 1 << SLOT_BITS;
/// Slots packed into one array element.
pub const SLOTS_PER_WORD: u32 = 4;
/// Number of `u64` elements of the first level.
pub const WORDS: u32 = SLOTS / SLOTS_PER_WORD;

/// A slot with this bit set names a block.
pub const BLOCK_FLAG: u16 = 0x8000;
/// The slot of a /24 whose addresses the source trie answers for.
pub const TRIE: u16 = 0xffff;
/// Blocks that can be handed out: numbers 0..BLOCKS (0x7fff would read as [`TRIE`]).
pub const BLOCKS: u32 = 0x7fff;
/// `u64` elements per block: 256 entries of 2 bits.
pub const WORDS_PER_BLOCK: u32 = 8;
/// Number of `u64` elements of the second level (a whole number of pages: 2 MiB).
pub const BLOCK_WORDS: u32 = (BLOCKS + 1) * WORDS_PER_BLOCK;
const ENTRIES_PER_WORD: u32 = 32;

const KIND_MASK: u16 = 0b11;

/// The second-level contents of one /24.
pub type Block = [u64; WORDS_PER_BLOCK as usize];

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

/// A slot value for a /24 with no prefix longer than /24 inside it.
pub const fn direct(kind: u32) -> u16 {
    kind as u16 & KIND_MASK
}

/// A slot value naming block `block` (< [`BLOCKS`]).
pub const fn block_slot(block: u32) -> u16 {
    BLOCK_FLAG | block as u16
}

/// True when the slot names a block or the trie rather than holding a kind.
#[inline(always)]
pub const fn is_indirect(slot: u16) -> bool {
    slot & BLOCK_FLAG != 0
}

/// The block a slot names (meaningful when [`is_indirect`] and not [`TRIE`]).
#[inline(always)]
pub const fn block_of(slot: u16) -> u32 {
    (slot & !BLOCK_FLAG) as u32
}

/// Allow-kind bits of a direct slot.
#[inline(always)]
pub const fn kind_of(slot: u16) -> u32 {
    (slot & KIND_MASK) as u32
}

/// The second-level element holding `addr`'s entry in `block`.
#[inline(always)]
pub const fn block_word(block: u32, addr: u32) -> u32 {
    block * WORDS_PER_BLOCK + (addr & 0xff) / ENTRIES_PER_WORD
}

/// The kind bits of `addr`'s entry in its second-level element.
#[inline(always)]
pub const fn entry_in(word: u64, addr: u32) -> u32 {
    ((word >> ((addr % ENTRIES_PER_WORD) * 2)) & KIND_MASK as u64) as u32
}

/// The kind bits of host `host` (0..=255) of a block.
pub const fn block_entry(block: &Block, host: u32) -> u32 {
    entry_in(block[(host / ENTRIES_PER_WORD) as usize], host)
}

/// A block from the kind bits of each of its 256 addresses.
pub fn pack_block(kinds: &[u8; 256]) -> Block {
    let mut block = [0u64; WORDS_PER_BLOCK as usize];
    for (host, kind) in kinds.iter().enumerate() {
        block[host / ENTRIES_PER_WORD as usize] |=
            u64::from(*kind as u16 & KIND_MASK) << ((host as u32 % ENTRIES_PER_WORD) * 2);
    }
    block
}

/// Kind bits of the longest prefix holding `addr` (host order), given its slot value, a read
/// of the second level and, for a [`TRIE`] slot, a lookup in the trie.
#[inline(always)]
pub fn lookup(
    slot: u16,
    addr: u32,
    second_level: impl FnOnce(u32) -> Option<u64>,
    trie: impl FnOnce() -> u32,
) -> u32 {
    if !is_indirect(slot) {
        return kind_of(slot);
    }
    if slot == TRIE {
        return trie();
    }
    second_level(block_word(block_of(slot), addr)).map_or(0, |word| entry_in(word, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_pack_four_to_a_word() {
        let mut word = 0;
        for slot in 0..4 {
            word = with_slot(word, 40 + slot, direct(slot % 3 + 1));
        }
        for slot in 0..4 {
            assert_eq!(kind_of(slot_in(word, 40 + slot)), slot % 3 + 1);
            assert_eq!(word_of(40 + slot), 10);
        }
        assert_eq!(slot_in(with_slot(u64::MAX, 5, 0), 5), 0);
        assert_eq!(slot_in(with_slot(u64::MAX, 5, 0), 4), 0xffff);
    }

    #[test]
    fn addresses_map_to_their_24_and_their_entry() {
        assert_eq!(slot_of(0xC000_0201), 0xC00002);
        assert_eq!(mask(0), 0);
        assert_eq!(mask(24), 0xFFFF_FF00);
        assert_eq!(block_word(3, 0xC000_0200), 24);
        assert_eq!(block_word(3, 0xC000_02FF), 31);
        assert_eq!(
            block_slot(BLOCKS - 1),
            0xfffe,
            "the last block is not the trie"
        );
        assert_eq!(BLOCK_WORDS * 8, 2 << 20);
    }

    #[test]
    fn lookup_reads_a_block_only_for_indirect_slots() {
        let mut kinds = [2u8; 256];
        kinds[0x81] = 1;
        let block = pack_block(&kinds);
        assert_eq!(block_entry(&block, 0x81), 1);
        assert_eq!(block_entry(&block, 0x80), 2);
        let read = |n: u32| block.get(n as usize - 5 * 8).copied();
        let no_trie = || panic!("no trie lookup");
        assert_eq!(lookup(block_slot(5), 0xC000_0281, read, no_trie), 1);
        assert_eq!(lookup(block_slot(5), 0xC000_02FE, read, no_trie), 2);
        let no_block = |_| panic!("no block read");
        assert_eq!(lookup(direct(1), 0xC000_0281, no_block, no_trie), 1);
        assert_eq!(lookup(TRIE, 0xC000_0281, no_block, || 3), 3);
        assert_eq!(lookup(block_slot(9), 1, |_| None, no_trie), 0);
    }
}
