//! Byte-level frame building for seeds and the structure-aware target. Deliberately permissive:
//! lengths and flags are whatever the caller says, so broken frames are as easy as good ones.

use egress_common::checksum::internet_checksum;

pub const SUBSCRIBER_V4: [u8; 4] = [100, 64, 0, 7];
pub const MX_V4: [u8; 4] = [198, 51, 100, 25];
pub const SUBSCRIBER_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
];
pub const MX_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25,
];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_PPPOE: u16 = 0x8864;
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const RST: u8 = 0x04;
pub const FIN: u8 = 0x01;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

pub const HOP_BY_HOP: u8 = 0;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const AUTHENTICATION: u8 = 51;
pub const NO_NEXT: u8 = 59;
pub const DESTINATION_OPTIONS: u8 = 60;

/// Ethernet header with VLAN tags (TPIDs, outermost first) before `ethertype`.
pub fn ethernet(tpids: &[u16], ethertype: u16) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (vid, tpid) in (100u16..).zip(tpids) {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

/// PPPoE session header and PPP protocol field (one byte when `compressed`).
pub fn pppoe(protocol: u16, compressed: bool, payload_len: usize) -> Vec<u8> {
    let protocol_bytes: Vec<u8> = if compressed {
        vec![protocol as u8]
    } else {
        protocol.to_be_bytes().to_vec()
    };
    let length = (payload_len + protocol_bytes.len()) as u16;
    let mut header = vec![0x11, 0x00, 0x00, 0x01];
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&protocol_bytes);
    header
}

/// IPv4 header. `fragment` is the raw flags-and-offset field; `options` is padded to 4 bytes.
pub fn ipv4(protocol: u8, options: &[u8], fragment: u16, payload: &[u8]) -> Vec<u8> {
    let mut options = options.to_vec();
    options.resize(options.len().div_ceil(4) * 4, 0);
    let header_len = 20 + options.len();
    let total = (header_len + payload.len()) as u16;
    let mut header = vec![0x40 | (header_len / 4) as u8, 0];
    header.extend_from_slice(&total.to_be_bytes());
    header.extend_from_slice(&[0x12, 0x34]);
    header.extend_from_slice(&fragment.to_be_bytes());
    header.extend_from_slice(&[64, protocol, 0, 0]);
    header.extend_from_slice(&SUBSCRIBER_V4);
    header.extend_from_slice(&MX_V4);
    header.extend_from_slice(&options);
    let checksum = internet_checksum(&header);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    header.extend_from_slice(payload);
    header
}

/// IPv6 header from `source` to the MX, carrying `payload` (extension headers included).
pub fn ipv6(source: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0x60, 0, 0, 0];
    header.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    header.extend_from_slice(&[next, 64]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&MX_V6);
    header.extend_from_slice(payload);
    header
}

/// An options-style extension header (hop-by-hop, routing, destination) of `(units + 1) * 8`
/// bytes, padded with PadN.
pub fn extension(next: u8, units: u8) -> Vec<u8> {
    let mut header = vec![0u8; (usize::from(units) + 1) * 8];
    header[0] = next;
    header[1] = units;
    header[2] = 1; // PadN
    header[3] = (header.len() - 4) as u8;
    header
}

/// An authentication header (RFC 4302) of `(units + 2) * 4` bytes.
pub fn authentication(next: u8, units: u8) -> Vec<u8> {
    let mut header = vec![0u8; (usize::from(units) + 2) * 4];
    header[0] = next;
    header[1] = units;
    header[4..8].copy_from_slice(&0x100u32.to_be_bytes());
    header
}

/// A fragment header at `offset` (in 8-byte units) with the M flag `more`.
pub fn fragment(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut header = vec![next, 0];
    header.extend_from_slice(&field.to_be_bytes());
    header.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    header
}

/// A TCP header of `data_offset` 32-bit words (options zero-filled) followed by `payload`.
pub fn tcp(destination_port: u16, flags: u8, data_offset: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0xc3, 0x50];
    header.extend_from_slice(&destination_port.to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes());
    header.extend_from_slice(&[data_offset << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    header.resize(usize::from(data_offset).max(5) * 4, 0);
    header.extend_from_slice(payload);
    header
}

pub fn udp(destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0xc3, 0x50];
    header.extend_from_slice(&destination_port.to_be_bytes());
    header.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    header.extend_from_slice(&[0, 0]);
    header.extend_from_slice(payload);
    header
}

/// Concatenates parts into one frame.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
