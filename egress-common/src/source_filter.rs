//! The IPv6 source filter: which /48s may hold a source prefix, so an IPv6 source in none of
//! them (a subscriber, on the blocked path) is judged without walking the source trie.
//!
//! A bitmap of [`BITS`] bits, one per hash of a /48; a source prefix sets the bit of every /48
//! it covers or lies in. A clear bit means no source prefix can hold the address; a set bit
//! sends the lookup to the trie, which is always complete, so a collision costs a trie walk
//! and never a wrong verdict. Prefixes shorter than [`SHORTEST`] cover too many /48s to list:
//! with one of them the filter is off (`SOURCES_V6_FILTERED` clear) and every lookup walks
//! the trie, as before.
//!
//! Everything here is shared by the eBPF programs (lookups) and the agent (building).

/// Bits of the filter: 2^16 (8 KiB), so a few thousand /48s leave most bits clear.
pub const BITS: u32 = 1 << 16;
/// `u64` elements of the filter's array map.
pub const WORDS: u32 = BITS / 64;
/// The shortest prefix the filter lists (its 256 /48s); shorter ones switch it off.
pub const SHORTEST: u8 = 40;

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The /48 of an address given as its first 64-bit word (`SmtpPacket::source_words`).
#[inline(always)]
pub const fn slash48_of_word(word: u64) -> u64 {
    let [a, b, c, d, e, f, ..] = word.to_ne_bytes();
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

/// The filter element and bit mask of a /48 (as [`slash48_of_word`] gives it).
#[inline(always)]
pub const fn position(slash48: u64) -> (u32, u64) {
    let bit = (slash48.wrapping_mul(MULTIPLIER) >> (64 - BITS.trailing_zeros())) as u32;
    (bit / 64, 1 << (bit % 64))
}

#[cfg(feature = "user")]
pub use build::words;

#[cfg(feature = "user")]
mod build {
    extern crate std;

    use std::{vec, vec::Vec};

    use super::{SHORTEST, WORDS, position, slash48_of_word};

    /// The filter for IPv6 source prefixes (address bytes, length), or `None` when one is
    /// shorter than [`SHORTEST`].
    pub fn words(prefixes: impl IntoIterator<Item = ([u8; 16], u8)>) -> Option<Vec<u64>> {
        let mut words = vec![0u64; WORDS as usize];
        for (address, len) in prefixes {
            if len < SHORTEST {
                return None;
            }
            let mut first = [0u8; 8];
            first.copy_from_slice(&address[..8]);
            let slash48 = slash48_of_word(u64::from_ne_bytes(first));
            let covered = if len >= 48 { 1 } else { 1u64 << (48 - len) };
            let base = slash48 & !(covered - 1);
            for n in 0..covered {
                let (word, mask) = position(base + n);
                words[word as usize] |= mask;
            }
        }
        Some(words)
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    extern crate std;

    use std::format;

    use super::*;

    fn address(text: &str) -> [u8; 16] {
        text.parse::<core::net::Ipv6Addr>()
            .expect("address")
            .octets()
    }

    fn may_hold(words: &[u64], address: [u8; 16]) -> bool {
        let mut first = [0u8; 8];
        first.copy_from_slice(&address[..8]);
        let (word, mask) = position(slash48_of_word(u64::from_ne_bytes(first)));
        words[word as usize] & mask != 0
    }

    #[test]
    fn every_address_of_a_listed_prefix_may_be_held() {
        let words = words([
            (address("2001:db8:1::25"), 128),
            (address("2001:db8:200:5::"), 64),
            (address("2001:db8:300::"), 48),
            (address("2001:db8:400::"), 40),
        ])
        .expect("no prefix is shorter than /40");
        for inside in [
            "2001:db8:1::25",
            "2001:db8:1:ffff::1",
            "2001:db8:200:5::9",
            "2001:db8:300:abcd::1",
            "2001:db8:400::1",
            "2001:db8:4ff:ffff::1",
        ] {
            assert!(may_hold(&words, address(inside)), "{inside}");
        }
        let set: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert!(set <= 3 + 256, "{set} bits for 3 /48s and one /40");
        let clear = (0..1_000u16)
            .filter(|n| {
                let subscriber = format!("2001:db8:{:x}::7", 0x1000 + n);
                !may_hold(&words, address(&subscriber))
            })
            .count();
        assert!(
            clear > 0,
            "subscribers' /48 beside the relays' may be skipped"
        );
    }

    #[test]
    fn a_prefix_shorter_than_a_40_switches_the_filter_off() {
        assert_eq!(words([(address("2001:db8::"), 32)]), None);
        assert_eq!(words([]).map(|w| w.iter().any(|w| *w != 0)), Some(false));
    }
}
