//! IPv4: options, fragments (RFC 1858, RFC 3128).

use super::{Family, Parsed, Suspect, tcp};
use crate::{packet::Packet, ports::BlockedPorts};

const MORE_FRAGMENTS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

#[inline(always)]
pub(super) fn parse<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    offset: usize,
    blocked: &B,
) -> Parsed {
    let Some(version_ihl) = packet.u8_at(offset) else {
        return Parsed::Malformed;
    };
    let Some(protocol) = packet.u8_at(offset + 9) else {
        return Parsed::Malformed;
    };
    let header_len = ((version_ihl & 0x0f) as usize) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return if protocol == tcp::PROTOCOL {
            Parsed::Suspect(Suspect::Malformed)
        } else {
            Parsed::Malformed
        };
    }
    if protocol != tcp::PROTOCOL {
        return Parsed::Pass;
    }
    let Some(total_len) = packet.u16_at(offset + 2) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let Some(fragment) = packet.u16_at(offset + 6) else {
        return Parsed::Suspect(Suspect::Malformed);
    };
    let end = offset + total_len as usize;
    if (total_len as usize) < header_len || end > packet.len() {
        return Parsed::Suspect(Suspect::Malformed);
    }
    match fragment & OFFSET_MASK {
        0 => {}
        1 => return Parsed::Suspect(Suspect::OverlapFragment),
        // A later fragment cannot open a connection without its first fragment.
        _ => return Parsed::Pass,
    }
    let tcp_offset = offset + header_len;
    if fragment & MORE_FRAGMENTS != 0 && tcp_offset + tcp::MIN_HEADER_LEN > end {
        return Parsed::Suspect(Suspect::TinyFragment);
    }
    let ip = tcp::IpContext {
        family: Family::Ipv4,
        source_offset: offset + 12,
        destination_offset: offset + 16,
        ip_len: total_len,
    };
    tcp::parse(packet, tcp_offset, end, ip, blocked)
}
