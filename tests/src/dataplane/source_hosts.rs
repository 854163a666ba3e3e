//! The IPv6 source hosts' table (`egress_common::host_table_v6`) of a loaded object: written
//! from a policy as the agent writes it, or switched off, to show which store decides.

use aya::maps::Array;
use egress_common::{
    host_table_v6::{self, SLOT_WORDS, Table},
    names,
};

use super::Dataplane;

impl Dataplane {
    /// Writes `table` into the first half and names it, or switches the table off.
    pub(super) fn write_source_hosts(&mut self, table: Option<&Table>) {
        let mut array: Array<_, u64> = self.map_mut(names::SOURCE_HOSTS_V6);
        if let Some(table) = table {
            for (slot, words) in (0u32..).zip(&table.slots) {
                for (offset, word) in (0u32..).zip(words) {
                    array
                        .set(1 + slot * SLOT_WORDS + offset, word, 0)
                        .expect("write an IPv6 source host slot");
                }
            }
        }
        let header = table.map_or(0, |table| table.header(0));
        array
            .set(host_table_v6::HEADER, header, 0)
            .expect("write the IPv6 source hosts' header");
    }

    /// Whether the programs read the IPv6 source hosts' table before the trie.
    pub fn source_hosts_on(&self) -> bool {
        let array: Array<_, u64> = self.map(names::SOURCE_HOSTS_V6);
        let header = array
            .get(&host_table_v6::HEADER, 0)
            .expect("read the IPv6 source hosts' header");
        host_table_v6::bits_of(header) != 0
    }

    /// Empties the IPv6 source trie, leaving the table as it is, or switches the table off,
    /// leaving the trie: to show which of the two the programs read.
    pub fn keep_one_v6_source_store(&mut self, keep_table: bool) {
        if keep_table {
            let name = names::SOURCES_V6;
            super::allowlists::replace_prefixes::<[u8; 16]>(self.map_mut(name), &[], name);
        } else {
            self.write_source_hosts(None);
        }
        self.applied = None;
    }
}
