//! Link layer: Ethernet, up to four stacked VLAN tags, PPPoE session frames.

use super::Parsed;
use crate::{packet::Packet, parse::Suspect};

/// More tags than this make a frame unparseable.
pub const MAX_VLAN_TAGS: usize = 4;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const PPPOE_VERSION_TYPE: u8 = 0x11;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// Offset of the outermost EtherType (after destination and source MAC).
const ETHERTYPE_OFFSET: usize = 12;

pub(super) enum Network {
    Ipv4(usize),
    Ipv6(usize),
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    matches!(ethertype, 0x8100 | 0x88a8 | 0x9100)
}

/// Finds the network header, or says what to do with a frame that has none we judge.
#[inline(always)]
pub(super) fn network_layer<P: Packet + ?Sized>(packet: &P) -> Result<Network, Parsed> {
    let mut offset = ETHERTYPE_OFFSET;
    let Some(mut ethertype) = packet.u16_at(offset) else {
        return Err(Parsed::Malformed);
    };
    if is_vlan(ethertype) {
        for _ in 0..MAX_VLAN_TAGS {
            offset += 4;
            ethertype = match packet.u16_at(offset) {
                Some(ethertype) => ethertype,
                None => return Err(Parsed::Malformed),
            };
            if !is_vlan(ethertype) {
                break;
            }
        }
        if is_vlan(ethertype) {
            // What lies past the fifth tag is unknown and could be SMTP-bound.
            return Err(Parsed::Suspect(Suspect::Malformed));
        }
    }
    offset += 2;
    match ethertype {
        ETHERTYPE_IPV4 => Ok(Network::Ipv4(offset)),
        ETHERTYPE_IPV6 => Ok(Network::Ipv6(offset)),
        ETHERTYPE_PPPOE_SESSION => pppoe_session(packet, offset),
        _ => Err(Parsed::Pass),
    }
}

/// PPPoE session header (RFC 2516) followed by the PPP protocol field. A compressed one-byte
/// protocol field (PFC) is honoured so it cannot hide IP.
#[inline(always)]
fn pppoe_session<P: Packet + ?Sized>(packet: &P, offset: usize) -> Result<Network, Parsed> {
    let Some(version_type) = packet.u8_at(offset) else {
        return Err(Parsed::Malformed);
    };
    let Some(code) = packet.u8_at(offset + 1) else {
        return Err(Parsed::Malformed);
    };
    if version_type != PPPOE_VERSION_TYPE || code != 0 {
        return Err(Parsed::Malformed);
    }
    let protocol_offset = offset + 6;
    let Some(first) = packet.u8_at(protocol_offset) else {
        return Err(Parsed::Malformed);
    };
    let (protocol, network_offset) = if first & 1 == 1 {
        (first as u16, protocol_offset + 1)
    } else {
        match packet.u16_at(protocol_offset) {
            Some(protocol) => (protocol, protocol_offset + 2),
            None => return Err(Parsed::Malformed),
        }
    };
    match protocol {
        PPP_IPV4 => Ok(Network::Ipv4(network_offset)),
        PPP_IPV6 => Ok(Network::Ipv6(network_offset)),
        _ => Err(Parsed::Pass),
    }
}
