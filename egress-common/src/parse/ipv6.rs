//! IPv6 with extension-header chains (RFC 8200), AH (RFC 4302) and fragments (RFC 7112).

use super::{Family, Parsed, Suspect, tcp};
use crate::{
    packet::{MAX_PARSE_OFFSET, Packet},
    ports::BlockedPorts,
};

/// Extension headers walked before the chain counts as too long.
pub const MAX_EXTENSION_HEADERS: usize = 8;

const HEADER_LEN: usize = 40;
/// Last offset at which the walk starts reading a header: the furthest field read from one (TCP
/// flags, 13 bytes in) must lie inside the parse window, or a header just inside it would read
/// as truncated rather than as a chain too long to walk.
const WALK_LAST_START: usize = MAX_PARSE_OFFSET - 13;
/// Every extension header is at least eight bytes long.
const MIN_EXTENSION_LEN: usize = 8;
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;

/// Where the walk of the chain ended.
enum Upper {
    Tcp { offset: usize, first_fragment: bool },
    Done(Parsed),
}

#[inline(always)]
pub(super) fn parse<P: Packet + ?Sized, B: BlockedPorts>(
    packet: &P,
    offset: usize,
    blocked: &B,
) -> Parsed {
    let Some(version) = packet.u8_at(offset) else {
        return Parsed::Malformed;
    };
    let Some(payload_len) = packet.u16_at(offset + 4) else {
        return Parsed::Malformed;
    };
    let Some(next_header) = packet.u8_at(offset + 6) else {
        return Parsed::Malformed;
    };
    if version >> 4 != 6 {
        return Parsed::Malformed;
    }
    // A zero payload length is a jumbogram (RFC 2675): the frame bounds it.
    let end = if payload_len == 0 {
        packet.len()
    } else {
        offset + HEADER_LEN + payload_len as usize
    };
    if end > packet.len() {
        return if next_header == tcp::PROTOCOL || is_extension(next_header) {
            Parsed::Suspect(Suspect::Malformed)
        } else {
            Parsed::Malformed
        };
    }
    let (tcp_offset, first_fragment) = match walk(packet, offset + HEADER_LEN, next_header, end) {
        Upper::Tcp {
            offset,
            first_fragment,
        } => (offset, first_fragment),
        Upper::Done(parsed) => return parsed,
    };
    if first_fragment && tcp_offset + tcp::MIN_HEADER_LEN > end {
        return Parsed::Suspect(Suspect::TinyFragment);
    }
    let ip = tcp::IpContext {
        family: Family::Ipv6,
        source_offset: offset + 8,
        destination_offset: offset + 24,
        ip_len: (HEADER_LEN + payload_len as usize) as u16,
    };
    tcp::parse(packet, tcp_offset, end, ip, blocked)
}

/// Walks the extension headers from `offset` to the upper-layer header.
#[inline(always)]
fn walk<P: Packet + ?Sized>(packet: &P, mut offset: usize, mut next: u8, end: usize) -> Upper {
    let mut first_fragment = false;
    for _ in 0..MAX_EXTENSION_HEADERS {
        if next == tcp::PROTOCOL {
            return Upper::Tcp {
                offset,
                first_fragment,
            };
        }
        if is_extension(next) && offset + MIN_EXTENSION_LEN > end {
            return Upper::Done(truncated(first_fragment));
        }
        let header_len = match next {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | MOBILITY | HIP | SHIM6 => {
                match packet.u8_at(offset + 1) {
                    Some(len) => (len as usize + 1) * 8,
                    None => return Upper::Done(truncated(first_fragment)),
                }
            }
            AUTHENTICATION => match packet.u8_at(offset + 1) {
                Some(len) => (len as usize + 2) * 4,
                None => return Upper::Done(truncated(first_fragment)),
            },
            FRAGMENT => {
                let Some(offset_flags) = packet.u16_at(offset + 2) else {
                    return Upper::Done(truncated(first_fragment));
                };
                match offset_flags >> 3 {
                    // A later atomic fragment header does not undo an earlier first fragment.
                    0 => first_fragment |= offset_flags & 1 == 1,
                    // Cannot be told from TCP here, and no legitimate sender fragments at 8 bytes.
                    1 => return Upper::Done(Parsed::Suspect(Suspect::OverlapFragment)),
                    _ => return Upper::Done(Parsed::Pass),
                }
                8
            }
            // Any other upper layer (UDP, ICMPv6, ESP, No Next Header) is not SMTP-bound.
            _ => return Upper::Done(Parsed::Pass),
        };
        let Some(following) = packet.u8_at(offset) else {
            return Upper::Done(truncated(first_fragment));
        };
        next = following;
        offset += header_len;
        if offset > end {
            return Upper::Done(truncated(first_fragment));
        }
        if offset > WALK_LAST_START {
            return Upper::Done(Parsed::Suspect(Suspect::Ipv6Chain));
        }
    }
    if next == tcp::PROTOCOL {
        return Upper::Tcp {
            offset,
            first_fragment,
        };
    }
    if is_extension(next) {
        return Upper::Done(Parsed::Suspect(Suspect::Ipv6Chain));
    }
    Upper::Done(Parsed::Pass)
}

/// The chain ran past the packet. A first fragment must carry the whole chain (RFC 7112); any
/// other packet is truncated, and whatever it hides could be TCP.
#[inline(always)]
fn truncated(first_fragment: bool) -> Parsed {
    if first_fragment {
        Parsed::Suspect(Suspect::Ipv6Chain)
    } else {
        Parsed::Suspect(Suspect::Malformed)
    }
}

#[inline(always)]
const fn is_extension(next: u8) -> bool {
    matches!(
        next,
        HOP_BY_HOP
            | ROUTING
            | FRAGMENT
            | AUTHENTICATION
            | DESTINATION_OPTIONS
            | MOBILITY
            | HIP
            | SHIM6
    )
}
