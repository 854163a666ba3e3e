//! Addresses and frame shorthands shared by the table's rows.

use egress_common::Counter;
use tests::dataplane::Verdict;
use tests::packet::{Eth, Ipv4, Ipv6, Tcp};

/// A subscriber behind the XDP hook (shared address space, RFC 6598).
pub const SUB4: [u8; 4] = [100, 64, 1, 7];
/// A mail exchanger on the Internet.
pub const MX4: [u8; 4] = [203, 0, 113, 25];
pub const RELAY4: [u8; 4] = [192, 0, 2, 10];
/// Inside the exempt business range 198.51.100.64/26.
pub const BUSINESS4: [u8; 4] = [198, 51, 100, 70];

pub const SUB6: [u8; 16] = v6([0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 7]);
pub const MX6: [u8; 16] = v6([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x25]);
pub const RELAY6: [u8; 16] = v6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x25]);
/// Inside the exempt business range 2001:db8:200::/48.
pub const BUSINESS6: [u8; 16] = v6([0x2001, 0xdb8, 0x200, 5, 0, 0, 0, 1]);

pub const fn v6(groups: [u16; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 8 {
        out[2 * i] = (groups[i] >> 8) as u8;
        out[2 * i + 1] = groups[i] as u8;
        i += 1;
    }
    out
}

pub const PASS: Verdict = Verdict::Pass;
pub const DROP: Verdict = Verdict::Drop;
pub const NONE: &[Counter] = &[];
pub const DROPPED4: &[Counter] = &[Counter::DroppedV4];
pub const DROPPED6: &[Counter] = &[Counter::DroppedV6];
pub const MALFORMED: &[Counter] = &[Counter::Malformed];

/// The subscriber's IPv4 header towards the mail exchanger.
pub fn ip4() -> Ipv4 {
    Ipv4::new(SUB4, MX4)
}

pub fn ip6() -> Ipv6 {
    Ipv6::new(SUB6, MX6)
}

/// An untagged IPv4 frame from the subscriber carrying `tcp`.
pub fn tcp4(tcp: Tcp) -> Vec<u8> {
    Eth::new().ipv4(ip4().tcp(tcp))
}

pub fn tcp6(tcp: Tcp) -> Vec<u8> {
    Eth::new().ipv6(ip6().tcp(tcp))
}

pub fn syn4(port: u16) -> Vec<u8> {
    tcp4(Tcp::syn(port))
}

pub fn syn6(port: u16) -> Vec<u8> {
    tcp6(Tcp::syn(port))
}

/// A frame with bytes overwritten at `offset` (for fields the builder does not expose).
pub fn patch(mut frame: Vec<u8>, offset: usize, bytes: &[u8]) -> Vec<u8> {
    frame[offset..offset + bytes.len()].copy_from_slice(bytes);
    frame
}
