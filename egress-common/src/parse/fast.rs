//! The fast path: untagged Ethernet carrying IPv4 without options or fragment bits, or IPv6
//! whose next header is TCP, UDP or ICMPv6. One bounds check covers every byte it reads; any
//! other frame, and any frame it cannot decide on those bytes alone (a malformed or truncated
//! TCP header, a jumbogram), goes to the full parser, which gives the same answer for the frames
//! decided here.

use super::{Family, Parsed, SmtpPacket, tcp};
use crate::{packet::Packet, ports::BlockedPorts};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Version 4, IHL 5: no options.
const IPV4_NO_OPTIONS: u8 = 0x45;
/// More-fragments flag and fragment offset; the don't-fragment bit does not matter.
const IPV4_FRAGMENT_BITS: u16 = 0x3fff;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;

const IPV4: usize = 14;
const IPV4_TCP: usize = IPV4 + 20;
/// Up to the TCP flags of an IPv4 segment without options.
const IPV4_HEAD: usize = IPV4_TCP + 14;
const IPV6: usize = 14;
const IPV6_TCP: usize = IPV6 + 40;
/// Up to the TCP flags of an IPv6 segment without extension headers.
const IPV6_HEAD: usize = IPV6_TCP + 14;

/// `Some` answer for a common frame, `None` to run the full parser.
#[inline(always)]
pub(super) fn parse<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    blocked: &B,
) -> Option<Parsed> {
    let head = packet.head::<IPV4_HEAD>()?;
    match be16(head, 12) {
        ETHERTYPE_IPV4 => ipv4(packet, head, blocked),
        ETHERTYPE_IPV6 => ipv6(packet, packet.head::<IPV6_HEAD>()?, blocked),
        _ => None,
    }
}

#[inline(always)]
fn ipv4<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    head: &[u8; IPV4_HEAD],
    blocked: &B,
) -> Option<Parsed> {
    if head[IPV4] != IPV4_NO_OPTIONS {
        return None;
    }
    // Version and IHL are valid, which is all the full parser asks of any other protocol.
    if head[IPV4 + 9] != tcp::PROTOCOL {
        return Some(Parsed::Pass);
    }
    if be16(head, IPV4 + 6) & IPV4_FRAGMENT_BITS != 0 {
        return None;
    }
    let ip_len = be16(head, IPV4 + 2);
    let end = IPV4 + ip_len as usize;
    segment(packet, head, IPV4_TCP, end, blocked, |head| SmtpPacket {
        family: Family::Ipv4,
        source: widen(head, IPV4 + 12),
        destination: widen(head, IPV4 + 16),
        destination_port: 0,
        tcp_flags: 0,
        ip_len,
    })
}

#[inline(always)]
fn ipv6<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    head: &[u8; IPV6_HEAD],
    blocked: &B,
) -> Option<Parsed> {
    let payload_len = be16(head, IPV6 + 4);
    // A jumbogram (zero payload length) is bounded by the frame: the full parser handles it.
    let end = IPV6_TCP + payload_len as usize;
    if head[IPV6] >> 4 != 6 || payload_len == 0 || end > packet.len() {
        return None;
    }
    match head[IPV6 + 6] {
        tcp::PROTOCOL => {}
        UDP | ICMPV6 => return Some(Parsed::Pass),
        _ => return None,
    }
    segment(packet, head, IPV6_TCP, end, blocked, |head| SmtpPacket {
        family: Family::Ipv6,
        source: address(head, IPV6 + 8),
        destination: address(head, IPV6 + 24),
        destination_port: 0,
        tcp_flags: 0,
        ip_len: (IPV6_TCP - IPV6 + payload_len as usize) as u16,
    })
}

/// A TCP header at `offset` in a segment ending at `end`: decided only when it is well formed
/// (the full parser calls anything else suspect).
#[inline(always)]
fn segment<P: Packet + ?Sized, B: BlockedPorts, const N: usize>(
    packet: &P,
    head: &[u8; N],
    offset: usize,
    end: usize,
    blocked: &B,
    smtp: impl FnOnce(&[u8; N]) -> SmtpPacket,
) -> Option<Parsed> {
    let header_len = ((head[offset + 12] >> 4) as usize) * 4;
    if header_len < tcp::MIN_HEADER_LEN || offset + header_len > end || end > packet.len() {
        return None;
    }
    let port = be16(head, offset + 2);
    if !blocked.is_blocked(port) {
        return Some(Parsed::Pass);
    }
    let mut packet = smtp(head);
    packet.destination_port = port;
    packet.tcp_flags = head[offset + 13];
    Some(Parsed::Smtp(packet))
}

#[inline(always)]
fn be16<const N: usize>(head: &[u8; N], at: usize) -> u16 {
    // One 16-bit load instead of two byte loads and a shift: the eBPF frame's head is 2-aligned
    // (see its `Packet::head`), every field read here sits at an even offset, and both checks
    // fold away at compile time.
    #[cfg(target_arch = "bpf")]
    if at % 2 == 0 && at + 2 <= N {
        // SAFETY: in bounds (checked above) and aligned (the frame's head is).
        return u16::from_be(unsafe { head.as_ptr().add(at).cast::<u16>().read() });
    }
    u16::from_be_bytes([head[at], head[at + 1]])
}

/// An IPv4 address at `at`, widened to 16 bytes.
#[inline(always)]
fn widen<const N: usize>(head: &[u8; N], at: usize) -> [u8; 16] {
    // Two 16-bit loads into one word instead of four byte loads, a byte loop zeroing the rest
    // and four byte stores (see `be16` for why the loads are aligned).
    #[cfg(all(target_arch = "bpf", target_endian = "little"))]
    if at % 2 == 0 && at + 4 <= N {
        let word = u64::from(ne16(head, at)) | (u64::from(ne16(head, at + 2)) << 16);
        return super::address_from_words([word, 0]);
    }
    let mut wide = [0u8; 16];
    wide[..4].copy_from_slice(&head[at..at + 4]);
    wide
}

/// An IPv6 address at `at`.
#[inline(always)]
fn address<const N: usize>(head: &[u8; N], at: usize) -> [u8; 16] {
    #[cfg(all(target_arch = "bpf", target_endian = "little"))]
    if at % 2 == 0 && at + 16 <= N {
        let word = |from: usize| {
            (0..4).fold(0u64, |word, half| {
                word | (u64::from(ne16(head, from + 2 * half)) << (16 * half))
            })
        };
        return super::address_from_words([word(at), word(at + 8)]);
    }
    let mut address = [0u8; 16];
    address.copy_from_slice(&head[at..at + 16]);
    address
}

/// A 16-bit field in memory order (little-endian eBPF: bytes `b0, b1` give `b0 | b1 << 8`).
#[cfg(all(target_arch = "bpf", target_endian = "little"))]
#[inline(always)]
fn ne16<const N: usize>(head: &[u8; N], at: usize) -> u16 {
    // SAFETY: callers keep `at + 2 <= N` and `at` even; the frame's head is 2-aligned.
    unsafe { head.as_ptr().add(at).cast::<u16>().read() }
}
