//! Per-subscriber records kept by the dataplane in an LRU map.

use crate::config::ipv6_mask;

/// An IPv4 /32 or an IPv6 source masked to the configured prefix length.
///
/// 4-aligned (the layout is that of plain `repr(C)`: 20 bytes, no padding) so the dataplane
/// writes the address as four words rather than sixteen bytes.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubscriberKey {
    /// 4 or 6.
    pub family: u8,
    /// 32 for IPv4; the aggregation length for IPv6.
    pub prefix_len: u8,
    pub _pad: [u8; 2],
    /// IPv4 in the first four bytes, the rest zero.
    pub addr: [u8; 16],
}

impl SubscriberKey {
    /// The key the dataplane records an IPv4 source under: the address itself.
    pub fn ipv4(address: [u8; 4]) -> SubscriberKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&address);
        SubscriberKey {
            family: 4,
            prefix_len: 32,
            _pad: [0; 2],
            addr,
        }
    }

    /// The key the dataplane records an IPv6 source under: its first `prefix_len` bits.
    pub fn ipv6(address: [u8; 16], prefix_len: u8) -> SubscriberKey {
        let mask = ipv6_mask(prefix_len as u32);
        let mut addr = address;
        for (byte, bits) in addr.iter_mut().zip(mask) {
            *byte &= bits;
        }
        SubscriberKey {
            family: 6,
            prefix_len,
            _pad: [0; 2],
            addr,
        }
    }
}

/// Everything the dataplane knows about one subscriber's blocked SMTP traffic.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriberRecord {
    /// Blocked connection attempts: SYN without ACK.
    pub attempts: u64,
    pub packets: u64,
    /// IP-layer bytes.
    pub bytes: u64,
    /// Monotonic ns.
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Linear-counting bitmap of destination hashes, lifetime.
    pub destinations: [u64; 2],
    /// Start of the current detection window (monotonic ns).
    pub window_start_ns: u64,
    pub window_attempts: u64,
    pub window_destinations: [u64; 2],
    /// Last time the subscriber was over a detection threshold (monotonic ns); 0 = never.
    pub flagged_ns: u64,
}

/// Bits in a destination bitmap.
pub const DESTINATION_BITS: u32 = 128;

/// Which of the 128 bitmap bits a destination address sets.
#[inline(always)]
pub fn destination_bit(destination: &[u8; 16]) -> u32 {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&destination[..8]);
    lo.copy_from_slice(&destination[8..]);
    destination_bit_of_words([u64::from_ne_bytes(hi), u64::from_ne_bytes(lo)])
}

/// `destination_bit` of an address given as two native-endian words (`SmtpPacket`'s).
#[inline(always)]
pub fn destination_bit_of_words([hi, lo]: [u64; 2]) -> u32 {
    let folded = hi ^ lo.rotate_left(29);
    // The full splitmix64 finalizer: a single multiply spreads consecutive addresses (a bot
    // scanning a /24) evenly with no collisions, which makes linear counting overestimate by
    // 40% at 64 destinations; full avalanche makes them look random, as the estimator assumes.
    let mut mixed = (folded ^ (folded >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^= mixed >> 31;
    (mixed >> 57) as u32
}

/// Number of bits set in a destination bitmap.
#[inline(always)]
pub fn bits_set(bitmap: &[u64; 2]) -> u64 {
    (bitmap[0].count_ones() + bitmap[1].count_ones()) as u64
}

const _: () =
    assert!(size_of::<SubscriberKey>() == 20 && core::mem::offset_of!(SubscriberKey, addr) == 4);

#[cfg(feature = "user")]
unsafe impl aya::Pod for SubscriberKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for SubscriberRecord {}
