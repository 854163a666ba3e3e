//! The one packet parser, shared by the XDP and TC programs and compiled for the host in tests
//! and fuzzing. It answers a single question: is this frame TCP to a blocked port, and if so from
//! where to where, or could it be and cannot be judged?
//!
//! The common case (untagged IPv4 without options or IPv6 without extension headers: not TCP, or
//! TCP to an unblocked port) returns [`Parsed::Pass`] from [`fast`] after one bounds check, a
//! handful of loads and no map lookups.

mod fast;
mod ipv4;
mod ipv6;
mod link;
mod tcp;

use crate::{packet::Packet, ports::BlockedPorts};

pub use ipv6::MAX_EXTENSION_HEADERS;
pub use link::MAX_VLAN_TAGS;

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ipv4 = 4,
    Ipv6 = 6,
}

/// An SMTP-bound packet: TCP to a blocked destination port with a readable header.
///
/// The addresses come first in an 8-aligned struct, so the dataplane reads, masks and hashes
/// them as two 64-bit words instead of sixteen bytes (eBPF has no unaligned loads: a byte
/// array of unknown alignment costs a load per byte).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmtpPacket {
    /// IPv4 addresses occupy the first four bytes, the rest zero.
    pub source: [u8; 16],
    pub destination: [u8; 16],
    pub family: Family,
    pub tcp_flags: u8,
    pub destination_port: u16,
    /// IP-layer length in bytes (header plus payload).
    pub ip_len: u16,
}

const _: () = assert!(
    core::mem::offset_of!(SmtpPacket, source) % 8 == 0
        && core::mem::offset_of!(SmtpPacket, destination) % 8 == 0
);

impl SmtpPacket {
    /// A connection attempt: SYN without ACK (ECE, CWR, FIN, PSH, data do not matter).
    pub const fn is_connection_attempt(&self) -> bool {
        self.tcp_flags & (tcp::SYN | tcp::ACK) == tcp::SYN
    }

    /// The source as two native-endian words (its bytes in memory order).
    #[inline(always)]
    pub fn source_words(&self) -> [u64; 2] {
        // SAFETY: 16 initialised bytes at an 8-aligned offset of an 8-aligned struct.
        unsafe { core::ptr::addr_of!(self.source).cast::<[u64; 2]>().read() }
    }

    #[inline(always)]
    pub fn destination_words(&self) -> [u64; 2] {
        // SAFETY: as `source_words`.
        unsafe {
            core::ptr::addr_of!(self.destination)
                .cast::<[u64; 2]>()
                .read()
        }
    }

    /// An IPv4 source as a number (`a.b.c.d` is `a << 24 | ... | d`).
    #[inline(always)]
    pub fn source_v4(&self) -> u32 {
        // SAFETY: 4 initialised bytes at an 8-aligned offset of an 8-aligned struct.
        u32::from_be(unsafe { core::ptr::addr_of!(self.source).cast::<u32>().read() })
    }

    /// An IPv4 destination as a number.
    #[inline(always)]
    pub fn destination_v4(&self) -> u32 {
        // SAFETY: as `source_v4`.
        u32::from_be(unsafe { core::ptr::addr_of!(self.destination).cast::<u32>().read() })
    }
}

/// Sixteen address bytes from two native-endian words (the inverse of `source_words`).
#[inline(always)]
pub fn address_from_words(words: [u64; 2]) -> [u8; 16] {
    // SAFETY: both are 16 bytes of plain data; every bit pattern is valid for either.
    unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(words) }
}

/// Why a frame that might be SMTP-bound cannot be judged on its headers. Enforce mode drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspect {
    /// A TCP first fragment too short for the whole TCP header (RFC 1858, RFC 3128).
    TinyFragment,
    /// A TCP fragment at offset 1 (RFC 1858 overlap).
    OverlapFragment,
    /// An IPv6 first fragment whose chain does not reach the upper layer (RFC 7112), or a chain
    /// too long to walk.
    Ipv6Chain,
    /// A TCP header whose destination port cannot be read for certain, or a frame the parser
    /// cannot finish (too many VLAN tags).
    Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not SMTP-bound: passes untouched and uncounted.
    Pass,
    /// SMTP-bound: judged against the allowlists.
    Smtp(SmtpPacket),
    /// Could be SMTP-bound and cannot be judged: dropped in enforce mode, always counted.
    Suspect(Suspect),
    /// Malformed, but cannot be SMTP-bound (for example a truncated UDP header): passes, counted.
    Malformed,
}

/// Parses one Ethernet frame.
#[inline(always)]
pub fn parse<P: Packet + ?Sized, B: BlockedPorts>(packet: &P, blocked: &B) -> Parsed {
    if let Some(parsed) = fast::parse(packet, blocked) {
        return parsed;
    }
    let network = match link::network_layer(packet) {
        Ok(network) => network,
        Err(parsed) => return parsed,
    };
    match network {
        link::Network::Ipv4(offset) => ipv4::parse(packet, packet.merge_offset(offset), blocked),
        link::Network::Ipv6(offset) => ipv6::parse(packet, packet.merge_offset(offset), blocked),
    }
}

/// The destination address of a frame's IP header, found by the full link-layer walk, or `None`
/// when the frame has no IP header the parser can reach (too many VLAN tags, truncated). The
/// inbound program asks this only of the rare suspect frames, to drop those to a protected
/// destination and pass the rest.
#[inline(always)]
pub fn destination<P: Packet + ?Sized>(packet: &P) -> Option<(Family, [u8; 16])> {
    match link::network_layer(packet).ok()? {
        link::Network::Ipv4(offset) => {
            let narrow = packet.read::<[u8; 4]>(packet.merge_offset(offset) + 16)?;
            let mut wide = [0u8; 16];
            wide[..4].copy_from_slice(&narrow);
            Some((Family::Ipv4, wide))
        }
        link::Network::Ipv6(offset) => packet
            .read::<[u8; 16]>(packet.merge_offset(offset) + 24)
            .map(|address| (Family::Ipv6, address)),
    }
}
