//! The IPv6 source hosts' table (`egress_common::host_table_v6`): the hosts of the long IPv6
//! source entries (relays, as a rule), derived after their trie is reconciled, which the
//! dataplane reads before the trie. Written like the other host tables: the half not in use through a shared mapping, then
//! the header in one store. Off (header 0) is always correct: the trie holds everything.

use aya::maps::MapData;
use egress_common::{
    host_table_v6::{self, ENTRIES, HALF, HEADER, SLOT_WORDS, Table},
    index_sync::{MappedArray, Words as _},
    names::SOURCE_HOSTS_V6,
};
use ipnet::IpNet;

use super::maps::{MapsError, map_error};
use crate::{allowlist::MapContents, paths::PinLayout};

/// The table of the long IPv6 entries of `sources` (`host_table_v6::SHORTEST` bits or more),
/// or `None` when there are none or more than the largest table takes.
pub fn expected(sources: &MapContents) -> Option<Table> {
    let long = sources.iter().filter_map(|(prefix, bits)| match prefix {
        IpNet::V6(net) => Some((net.network().octets(), net.prefix_len(), *bits)),
        IpNet::V4(_) => None,
    });
    let hosts = host_table_v6::hosts_of(long)?;
    if hosts.is_empty() {
        return None;
    }
    host_table_v6::build(&hosts)
}

/// Makes the dataplane read the table of `sources`, or the trie alone when there is none.
/// Call after the trie holds `sources`.
pub fn sync(pins: &PinLayout, sources: &MapContents) -> Result<(), MapsError> {
    let data = pinned(pins)?;
    let mut array = MappedArray::new(&data, SOURCE_HOSTS_V6, ENTRIES, ENTRIES)?;
    let header = array.load(HEADER)?;
    let Some(table) = expected(sources) else {
        if host_table_v6::bits_of(header) != 0 {
            array.store(HEADER, 0)?;
        }
        return Ok(());
    };
    let half = 1 - host_table_v6::half_of(header);
    let base = 1 + half * HALF * SLOT_WORDS;
    for (slot, words) in (0u32..).zip(&table.slots) {
        for (offset, word) in (0u32..).zip(words) {
            array.store(base + slot * SLOT_WORDS + offset, *word)?;
        }
    }
    Ok(array.store(HEADER, table.header(half))?)
}

/// Slots of the pinned table's half in use that differ from the table of `sources` (the drift
/// check, beside the daemon: it only reads); a header that differs counts as one.
pub fn check(pins: &PinLayout, sources: &MapContents) -> Result<u64, MapsError> {
    let data = pinned(pins)?;
    let mut array = MappedArray::new(&data, SOURCE_HOSTS_V6, ENTRIES, ENTRIES)?;
    let header = array.load(HEADER)?;
    let Some(table) = expected(sources) else {
        return Ok(u64::from(host_table_v6::bits_of(header) != 0));
    };
    let half = host_table_v6::half_of(header);
    if header != table.header(half) {
        return Ok(1);
    }
    let base = 1 + half * HALF * SLOT_WORDS;
    let mut differ = 0;
    for (slot, words) in (0u32..).zip(&table.slots) {
        let mut held = [0u64; 3];
        for (offset, word) in (0u32..).zip(held.iter_mut()) {
            *word = array.load(base + slot * SLOT_WORDS + offset)?;
        }
        differ += u64::from(held != *words);
    }
    Ok(differ)
}

fn pinned(pins: &PinLayout) -> Result<MapData, MapsError> {
    MapData::from_pin(pins.map(SOURCE_HOSTS_V6)).map_err(map_error(pins, SOURCE_HOSTS_V6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(prefixes: &[(&str, u32)]) -> MapContents {
        prefixes
            .iter()
            .map(|(text, bits)| (text.parse().expect("prefix"), *bits))
            .collect()
    }

    #[test]
    fn only_long_ipv6_entries_go_into_the_table() {
        let list = sources(&[
            ("2001:db8:1::25/128", 1),
            ("2001:db8:100::/48", 2),
            ("192.0.2.10/32", 1),
        ]);
        let table = expected(&list).expect("one IPv6 host");
        let relay: std::net::Ipv6Addr = "2001:db8:1::25".parse().expect("address");
        assert_eq!(table.classes(host_table_v6::host_of(relay.octets())), 1);
        let customer: std::net::Ipv6Addr = "2001:db8:100::1".parse().expect("address");
        assert_eq!(table.classes(host_table_v6::host_of(customer.octets())), 0);
        assert_eq!(expected(&sources(&[("2001:db8:100::/48", 2)])), None);
    }
}
