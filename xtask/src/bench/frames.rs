//! Ethernet frames the bench feeds to the programs, and the address plan they come from.
//!
//! Address plan (documentation and shared address space only):
//! - exempt prefixes: 100.64.0.0/11 and 100.96.0.0/12, 2001:db8:0::/33
//! - subscribers (never exempt): 100.112.0.0/12 (1,048,576 addresses), 2001:db8:ffff::/48
//! - relays: 192.0.2.16/28 and 2001:db8:8000:25::10/124
//! - destinations (mail exchangers): 198.51.100.0/24, 203.0.113.0/24, 2001:db8:9000::/48

use std::net::{Ipv4Addr, Ipv6Addr};

use egress_common::checksum::internet_checksum;

pub const SUBSCRIBER_V4_BASE: u32 = u32::from_be_bytes([100, 112, 0, 0]);
pub const SUBSCRIBER_V4_COUNT: u32 = 1 << 20;
const SUBSCRIBER_V6: [u16; 3] = [0x2001, 0x0db8, 0xffff];
pub const RELAY_COUNT: u32 = 16;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = 0x02;

/// The n-th IPv4 subscriber.
pub fn subscriber_v4(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(SUBSCRIBER_V4_BASE + n % SUBSCRIBER_V4_COUNT)
}

/// An address inside the n-th IPv6 subscriber's /64.
pub fn subscriber_v6(n: u32) -> Ipv6Addr {
    let [a, b, c] = SUBSCRIBER_V6;
    Ipv6Addr::new(a, b, c, n as u16, 0, 0, 0, 0x10 + (n >> 16) as u16)
}

/// The relays: 16 hosts of one allowlisted prefix per family.
pub const RELAY_PREFIX_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(192, 0, 2, 16), 28);
pub const RELAY_PREFIX_V6: (Ipv6Addr, u8) = (
    Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0x25, 0, 0, 0, 0x10),
    124,
);

pub fn relay_v4(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 16 + (n % RELAY_COUNT) as u8)
}

pub fn relay_v6(n: u32) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x8000,
        0x25,
        0,
        0,
        0,
        0x10 + (n % RELAY_COUNT) as u16,
    )
}

pub fn destination_v4(n: u32) -> Ipv4Addr {
    let net = if n.is_multiple_of(2) {
        [198, 51, 100]
    } else {
        [203, 0, 113]
    };
    Ipv4Addr::new(net[0], net[1], net[2], (n / 2 % 254 + 1) as u8)
}

pub fn destination_v6(n: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x9000, 0, 0, 0, 0, (n % 65_000 + 1) as u16)
}

/// What travels above IP.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    TcpSyn { dst_port: u16 },
    Udp { dst_port: u16 },
}

impl L4 {
    fn protocol(self) -> u8 {
        match self {
            L4::TcpSyn { .. } => TCP,
            L4::Udp { .. } => UDP,
        }
    }

    fn header(self, source_port: u16) -> Vec<u8> {
        match self {
            L4::TcpSyn { dst_port } => {
                let mut tcp = vec![0u8; 20];
                tcp[0..2].copy_from_slice(&source_port.to_be_bytes());
                tcp[2..4].copy_from_slice(&dst_port.to_be_bytes());
                tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                tcp[12] = 0x50;
                tcp[13] = SYN;
                tcp[14..16].copy_from_slice(&64_240u16.to_be_bytes());
                tcp
            }
            L4::Udp { dst_port } => {
                let mut udp = vec![0u8; 8];
                udp[0..2].copy_from_slice(&source_port.to_be_bytes());
                udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
                udp[4..6].copy_from_slice(&8u16.to_be_bytes());
                udp
            }
        }
    }
}

fn ethernet(ethertype: u16) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

/// An Ethernet + IPv4 frame, padded to the 60-byte Ethernet minimum (64 on the wire).
pub fn ipv4(source: Ipv4Addr, destination: Ipv4Addr, l4: L4) -> Vec<u8> {
    let payload = l4.header(40_000 + (u32::from(source) % 20_000) as u16);
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = l4.protocol();
    ip[12..16].copy_from_slice(&source.octets());
    ip[16..20].copy_from_slice(&destination.octets());
    let checksum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let mut frame = ethernet(0x0800);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&payload);
    frame.resize(frame.len().max(60), 0);
    frame
}

pub fn ipv6(source: Ipv6Addr, destination: Ipv6Addr, l4: L4) -> Vec<u8> {
    let payload = l4.header(40_000 + (source.segments()[7] % 20_000));
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    ip[6] = l4.protocol();
    ip[7] = 64;
    ip[8..24].copy_from_slice(&source.octets());
    ip[24..40].copy_from_slice(&destination.octets());
    let mut frame = ethernet(0x86dd);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&payload);
    frame
}

/// Recomputes the IPv4 header and TCP checksums of an Ethernet + IPv4 (IHL 5) + TCP frame
/// (the bench's frames leave the TCP checksum zero: no filter measured here checks it).
pub fn fix_checksums_v4(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let ip = internet_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&ip.to_be_bytes());
    let tcp_len = usize::from(u16::from_be_bytes([frame[16], frame[17]])) - 20;
    frame[50..52].fill(0);
    let mut pseudo = Vec::with_capacity(12 + tcp_len);
    pseudo.extend_from_slice(&frame[26..34]);
    pseudo.extend_from_slice(&[0, frame[23]]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&frame[34..34 + tcp_len]);
    let tcp = internet_checksum(&pseudo);
    frame[50..52].copy_from_slice(&tcp.to_be_bytes());
}
