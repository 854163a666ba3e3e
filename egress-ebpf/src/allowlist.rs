//! Allowlist lookups: which relay/exempt prefix holds a source, whether a destination is allowed.
//!
//! IPv4 sources, the lookup every blocked packet pays for, go through the source index (one
//! array load, and a second one for a /24 that holds longer prefixes) once the agent says it
//! is complete; the tries answer otherwise. IPv4 destinations, usually a few hosts (the ISP's
//! relay beyond the edge), go through a host table while they are all hosts. IPv6 sources
//! whose /48 holds no source prefix (the IPv6 source filter says so) skip the trie, and one that
//! is a /128 entry (a relay, as a rule) is answered by the IPv6 source hosts' table. A lookup in
//! a list the agent says is empty is skipped.

use aya_ebpf::maps::lpm_trie::Key;
use egress_common::{
    Family, SmtpPacket, config::allowlist_flags, host_table, index, source_filter,
};

use crate::maps::{
    DEST_HOSTS_V4, DESTINATIONS_V4, DESTINATIONS_V6, SOURCE_BLOCKS_V4, SOURCE_FILTER_V6,
    SOURCE_HOSTS_V6, SOURCE_INDEX_V4, SOURCES_V4, SOURCES_V6,
};

/// Allow-kind bits of the longest source prefix containing the packet's source, or 0.
/// `flags` are the config's `allowlist_flags`, read once per packet by the caller.
#[inline(always)]
pub fn source_allow_kind(packet: &SmtpPacket, flags: u32) -> u32 {
    match packet.family {
        Family::Ipv4 if flags & allowlist_flags::SOURCES_V4_INDEXED != 0 => {
            indexed_source_kind(packet.source_v4())
        }
        Family::Ipv4 => trie_source_kind(packet.source_v4()),
        Family::Ipv6 if flags & allowlist_flags::SOURCES_V6_EMPTY != 0 => 0,
        Family::Ipv6
            if flags & allowlist_flags::SOURCES_V6_FILTERED != 0
                && !filter_may_hold(packet.source_words()[0]) =>
        {
            0
        }
        Family::Ipv6 => {
            match crate::host_table::classes_v6(&SOURCE_HOSTS_V6, packet.source_words()) {
                Some(kind) => kind,
                None => SOURCES_V6
                    .get(Key::new(128, packet.source))
                    .copied()
                    .unwrap_or(0),
            }
        }
    }
}

/// Whether the IPv6 source filter's bit for the /48 of `first_word` is set.
#[inline(always)]
fn filter_may_hold(first_word: u64) -> bool {
    let (word, mask) = source_filter::position(source_filter::slash48_of_word(first_word));
    SOURCE_FILTER_V6
        .get(word)
        .is_none_or(|bits| bits & mask != 0)
}

#[inline(always)]
pub fn destination_allowed(packet: &SmtpPacket, flags: u32) -> bool {
    match packet.family {
        Family::Ipv4 if flags & allowlist_flags::DESTINATIONS_V4_EMPTY != 0 => false,
        Family::Ipv4 => {
            let host = host_table::host_of_word(packet.destination_words()[0]);
            match crate::host_table::classes(&DEST_HOSTS_V4, host) {
                Some(classes) => classes != 0,
                None => DESTINATIONS_V4
                    .get(Key::new(32, packet.destination_v4().to_be_bytes()))
                    .is_some(),
            }
        }
        Family::Ipv6 if flags & allowlist_flags::DESTINATIONS_V6_EMPTY != 0 => false,
        Family::Ipv6 => DESTINATIONS_V6
            .get(Key::new(128, packet.destination))
            .is_some(),
    }
}

#[inline(always)]
fn trie_source_kind(addr: u32) -> u32 {
    SOURCES_V4
        .get(Key::new(32, addr.to_be_bytes()))
        .copied()
        .unwrap_or(0)
}

#[inline(always)]
fn indexed_source_kind(addr: u32) -> u32 {
    let slot = index::slot_of(addr);
    let Some(word) = SOURCE_INDEX_V4.get(index::word_of(slot)) else {
        return 0;
    };
    index::lookup(
        index::slot_in(*word, slot),
        addr,
        |element| SOURCE_BLOCKS_V4.get(element).copied(),
        || trie_source_kind(addr),
    )
}
