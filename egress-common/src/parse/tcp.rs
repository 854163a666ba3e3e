//! TCP header checks shared by both IP versions.

use super::{Family, Parsed, SmtpPacket, Suspect};
use crate::{packet::Packet, ports::BlockedPorts};

pub(super) const PROTOCOL: u8 = 6;
pub(super) const SYN: u8 = 0x02;
pub(super) const ACK: u8 = 0x10;
pub(super) const MIN_HEADER_LEN: usize = 20;

/// Addresses of the IP header carrying the segment, read lazily: only SMTP-bound packets need
/// them, and reading 32 bytes on the fast path would cost every packet.
pub(super) struct IpContext {
    pub family: Family,
    pub source_offset: usize,
    pub destination_offset: usize,
    pub ip_len: u16,
}

/// Judges a TCP header at `offset` whose segment ends at `end` (exclusive).
#[inline(always)]
pub(super) fn parse<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    offset: usize,
    end: usize,
    ip: IpContext,
    blocked: &B,
) -> Parsed {
    if offset + MIN_HEADER_LEN > end {
        return Parsed::Suspect(Suspect::Malformed);
    }
    // One read at a time, each checked before the next: a tuple of Options lets LLVM compute on
    // a value the verifier has not seen loaded.
    let Some(port) = packet.u16_at(offset + 2) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let Some(data_offset) = packet.u8_at(offset + 12) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let Some(flags) = packet.u8_at(offset + 13) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let header_len = ((data_offset >> 4) as usize) * 4;
    if header_len < MIN_HEADER_LEN || offset + header_len > end {
        return Parsed::Suspect(Suspect::Malformed);
    }
    if !blocked.is_blocked(port) {
        return Parsed::Pass;
    }
    let Some(source) = address(packet, ip.family, ip.source_offset) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let Some(destination) = address(packet, ip.family, ip.destination_offset) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    Parsed::Smtp(SmtpPacket {
        family: ip.family,
        source,
        destination,
        destination_port: port,
        tcp_flags: flags,
        ip_len: ip.ip_len,
    })
}

/// An address widened to 16 bytes (IPv4 in the first four).
#[inline(always)]
fn address<P: Packet + ?Sized>(packet: &P, family: Family, offset: usize) -> Option<[u8; 16]> {
    match family {
        Family::Ipv4 => {
            let narrow = packet.read::<[u8; 4]>(offset)?;
            let mut wide = [0u8; 16];
            wide[..4].copy_from_slice(&narrow);
            Some(wide)
        }
        Family::Ipv6 => packet.read::<[u8; 16]>(offset),
    }
}
