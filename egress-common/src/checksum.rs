//! The Internet checksum (RFC 1071), for building test and benchmark frames on the host.

/// One's complement of the one's-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte is padded with zero).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
