//! Lookups in a host table (`egress_common::host_table`): the classes of an IPv4 host in two
//! array reads, or `None` while the table is off and the tries answer; and in the IPv6 source
//! hosts' table (`egress_common::host_table_v6`).

use aya_ebpf::maps::Array;
use egress_common::{host_table, host_table_v6};

/// The class bits `table` gives `host` (`host_table::host_of` the address bytes): 0 for a
/// host it does not hold, `None` while its header says it is off.
#[inline(always)]
pub fn classes(table: &Array<u64>, host: u32) -> Option<u32> {
    let header = *table.get(host_table::HEADER)?;
    if host_table::bits_of(header) == 0 {
        return None;
    }
    let [first, second] = host_table::choices(header, host);
    let classes_at = |index| {
        table
            .get(index)
            .map_or(0, |slot| host_table::classes_in(*slot, host))
    };
    Some(classes_at(first) | classes_at(second))
}

/// The allow bits `table` (`host_table_v6`) gives the IPv6 `host` (`SmtpPacket::source_words`),
/// or `None` when it does not hold it or is off: the trie answers then.
#[inline(always)]
pub fn classes_v6(table: &Array<u64>, host: [u64; 2]) -> Option<u32> {
    let header = *table.get(host_table_v6::HEADER)?;
    if host_table_v6::bits_of(header) == 0 {
        return None;
    }
    let word = |index: u32| table.get(index).copied();
    for first in host_table_v6::choices(header, host) {
        if word(first)? == host[0] && word(first + 1)? == host[1] {
            let bits = word(first + 2)? as u32;
            if bits != 0 {
                return Some(bits);
            }
        }
    }
    None
}
