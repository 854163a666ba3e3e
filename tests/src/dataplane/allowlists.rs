//! Filling the allowlists of a loaded object as the agent does: the tries, then the IPv4
//! source index (with `egress_common::index_sync`, the agent's own code) and the lookup flags.

use std::collections::BTreeMap;

use aya::maps::{LpmTrie, MapData, lpm_trie::Key};
use egress_common::{
    allow_kind,
    index_plan::{Plan, SourcePrefix},
    index_sync, names,
};
use ipnet::IpNet;

use super::{Allow, Policy};

impl Policy {
    /// The expected IPv4 source index for this policy's allowlist.
    pub fn source_index_plan(&self) -> Plan {
        Plan::new(self.allow.iter().filter_map(|entry| match entry.prefix {
            IpNet::V4(net) if entry.kind & allow_kind::DESTINATION == 0 => Some(SourcePrefix {
                addr: u32::from(net.network()),
                len: net.prefix_len(),
                kind: entry.kind,
            }),
            _ => None,
        }))
    }

    /// The `allowlist_flags` for a complete index and this policy's empty lists.
    pub fn allowlist_flags(&self) -> u32 {
        let has = |v4: bool, destination: bool| {
            self.allow.iter().any(|entry| {
                matches!(entry.prefix, IpNet::V4(_)) == v4
                    && (entry.kind & allow_kind::DESTINATION != 0) == destination
            })
        };
        index_sync::flags(has(false, false), has(true, true), has(false, true))
    }
}

/// Rewrites one LPM map so it holds exactly the entries of `allow` that belong in it.
pub(super) fn replace_prefixes<K: aya::Pod + AddressBytes>(
    mut map: LpmTrie<&mut MapData, K, u32>,
    allow: &[Allow],
    name: &str,
) {
    let old: Vec<_> = map.keys().map(|k| k.expect("iterate LPM keys")).collect();
    for key in old {
        map.remove(&key)
            .unwrap_or_else(|err| panic!("remove from {name}: {err}"));
    }
    let sources = name == names::SOURCES_V4 || name == names::SOURCES_V6;
    // Merged in a map, not by scanning: some tables hold tens of thousands of prefixes.
    let mut wanted: BTreeMap<(u32, Vec<u8>), (K, u32)> = BTreeMap::new();
    for entry in allow {
        let is_source_kind = entry.kind & allow_kind::DESTINATION == 0;
        let Some(bytes) = K::from_prefix(&entry.prefix) else {
            continue;
        };
        if is_source_kind != sources {
            continue;
        }
        let len = u32::from(entry.prefix.prefix_len());
        wanted
            .entry((len, bytes.bytes().to_vec()))
            .or_insert((bytes, 0))
            .1 |= entry.kind;
    }
    for ((len, _), (bytes, kind)) in wanted {
        map.insert(&Key::new(len, bytes), kind, 0)
            .unwrap_or_else(|err| panic!("insert into {name}: {err}"));
    }
}

/// Network-order address bytes of one family.
pub(super) trait AddressBytes: Sized + Copy {
    fn from_prefix(prefix: &IpNet) -> Option<Self>;
    fn bytes(&self) -> &[u8];
}

impl AddressBytes for [u8; 4] {
    fn from_prefix(prefix: &IpNet) -> Option<Self> {
        match prefix {
            IpNet::V4(net) => Some(net.addr().octets()),
            IpNet::V6(_) => None,
        }
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl AddressBytes for [u8; 16] {
    fn from_prefix(prefix: &IpNet) -> Option<Self> {
        match prefix {
            IpNet::V6(net) => Some(net.addr().octets()),
            IpNet::V4(_) => None,
        }
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}
