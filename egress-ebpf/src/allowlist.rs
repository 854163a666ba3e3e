//! Allowlist lookups: which relay/exempt prefix holds a source, whether a destination is allowed.

use aya_ebpf::maps::lpm_trie::Key;
use egress_common::{Family, SmtpPacket};

use crate::maps::{DESTINATIONS_V4, DESTINATIONS_V6, SOURCES_V4, SOURCES_V6};

/// Allow-kind bits of the longest source prefix containing the packet's source, or 0.
#[inline(always)]
pub fn source_allow_kind(packet: &SmtpPacket) -> u32 {
    let found = match packet.family {
        Family::Ipv4 => SOURCES_V4.get(Key::new(32, ipv4(&packet.source))),
        Family::Ipv6 => SOURCES_V6.get(Key::new(128, packet.source)),
    };
    found.copied().unwrap_or(0)
}

#[inline(always)]
pub fn destination_allowed(packet: &SmtpPacket) -> bool {
    match packet.family {
        Family::Ipv4 => DESTINATIONS_V4
            .get(Key::new(32, ipv4(&packet.destination)))
            .is_some(),
        Family::Ipv6 => DESTINATIONS_V6
            .get(Key::new(128, packet.destination))
            .is_some(),
    }
}

#[inline(always)]
fn ipv4(address: &[u8; 16]) -> [u8; 4] {
    [address[0], address[1], address[2], address[3]]
}
