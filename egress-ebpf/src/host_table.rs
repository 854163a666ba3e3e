//! Lookups in a host table (`egress_common::host_table`): the classes of an IPv4 host in two
//! array reads, or `None` while the table is off and the tries answer.

use aya_ebpf::maps::Array;
use egress_common::host_table;

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
