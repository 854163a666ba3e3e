//! The inbound IPv4 host table (`egress_common::inbound_hosts`): derived from `protected_mx`
//! and `throttle.destinations` after their tries are reconciled, and used by the dataplane
//! instead of both tries while every IPv4 entry of the two lists is a /32.
//!
//! The table is written into the half the dataplane is not reading, then named by the
//! header in one store. Off (header 0) is always correct: the tries hold everything.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{Array, MapData};
use egress_common::{
    inbound::names,
    inbound_hosts::{self, HALF, HEADER, PROTECTED, THROTTLED, Table},
};
use ipnet::IpNet;

use crate::{
    allowlist::Desired,
    dataplane::maps::{MapsError, map_error, open},
    paths::PinLayout,
    status::ByKind,
};

/// What the table should hold for `desired`: `None` when it should be off, because an IPv4
/// entry of either list is wider than a host or the hosts do not fit.
pub fn expected(desired: &Desired) -> Option<Table> {
    table_for(desired.protected_mx.keys(), desired.throttled.keys())
}

/// The table for these `protected_mx` and `throttle.destinations` prefixes (see [`expected`]).
pub fn table_for<'a>(
    protected_mx: impl IntoIterator<Item = &'a IpNet>,
    throttled: impl IntoIterator<Item = &'a IpNet>,
) -> Option<Table> {
    let mut hosts = BTreeMap::new();
    let lists = [
        (protected_mx.into_iter().collect::<Vec<_>>(), PROTECTED),
        (throttled.into_iter().collect(), THROTTLED),
    ];
    for (list, class) in lists {
        for prefix in list {
            match prefix {
                IpNet::V4(net) if net.prefix_len() == 32 => {
                    *hosts
                        .entry(inbound_hosts::host_of(net.addr().octets()))
                        .or_insert(0) |= class;
                }
                IpNet::V4(_) => return None,
                IpNet::V6(_) => {}
            }
        }
    }
    let hosts: Vec<(u32, u32)> = hosts.into_iter().collect();
    inbound_hosts::build(&hosts)
}

/// Makes the dataplane read `desired`'s table, or the tries when it has none. Call after the
/// tries hold `desired`.
pub fn sync(pins: &PinLayout, desired: &Desired) -> Result<(), MapsError> {
    let mut array = open_table(pins)?;
    let err = map_error(pins, names::HOSTS_V4);
    let header = array.get(&HEADER, 0).map_err(&err)?;
    let Some(table) = expected(desired) else {
        if inbound_hosts::bits_of(header) != 0 {
            array.set(HEADER, 0, 0).map_err(&err)?;
            tracing::info!(
                "inbound host table off: the lists hold more than IPv4 hosts, or more hosts \
                 than it takes; the tries answer"
            );
        }
        return Ok(());
    };
    let half = 1 - inbound_hosts::half_of(header);
    let base = 1 + half * HALF;
    for (offset, slot) in (0u32..).zip(&table.slots) {
        array.set(base + offset, *slot, 0).map_err(&err)?;
    }
    array.set(HEADER, table.header(half), 0).map_err(&err)?;
    Ok(())
}

/// What differs between the pinned table and `desired`'s, by kind (the drift check, beside
/// the daemon: it only reads). A table that is off differs only when one is expected.
pub fn check(pins: &PinLayout, desired: &Desired) -> Result<ByKind, MapsError> {
    let array = open_table(pins)?;
    let err = map_error(pins, names::HOSTS_V4);
    let header = array.get(&HEADER, 0).map_err(&err)?;
    let want = expected(desired);
    let bits = inbound_hosts::bits_of(header);
    if bits == 0 || bits > inbound_hosts::MAX_BITS {
        let off_as_expected = want.is_none() && bits == 0;
        return Ok(if off_as_expected {
            ByKind::default()
        } else {
            // Off while a table is expected (slower, still right), or a header no agent writes.
            ByKind {
                protected_mx: 1,
                ..ByKind::default()
            }
        });
    }
    // Every host the active half answers for, as the dataplane would read it.
    let base = 1 + inbound_hosts::half_of(header) * HALF;
    let mut held = BTreeMap::<u32, u32>::new();
    for index in base..base + (1 << bits) {
        let slot = array.get(&index, 0).map_err(&err)?;
        if slot != 0 {
            let host = (slot >> 32) as u32;
            let [a, b] = inbound_hosts::choices(header, host);
            if index == a || index == b {
                *held.entry(host).or_insert(0) |= inbound_hosts::classes_in(slot, host);
            }
        }
    }
    let wanted: BTreeMap<u32, u32> = match &want {
        Some(table) => table
            .slots
            .iter()
            .filter(|slot| **slot != 0)
            .map(|slot| ((slot >> 32) as u32, (slot & 0xff) as u32))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut found = ByKind::default();
    let hosts: BTreeSet<u32> = held.keys().chain(wanted.keys()).copied().collect();
    for host in hosts {
        let differ =
            held.get(&host).copied().unwrap_or(0) ^ wanted.get(&host).copied().unwrap_or(0);
        found.protected_mx += u64::from(differ & PROTECTED != 0);
        found.throttle_destination += u64::from(differ & THROTTLED != 0);
    }
    Ok(found)
}

fn open_table(pins: &PinLayout) -> Result<Array<MapData, u64>, MapsError> {
    Array::try_from(open(pins, names::HOSTS_V4)?).map_err(map_error(pins, names::HOSTS_V4))
}

#[cfg(test)]
mod tests {
    use ipnet::IpNet;

    use super::{PROTECTED, THROTTLED, inbound_hosts::host_of, table_for};

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("prefix")).collect()
    }

    #[test]
    fn hosts_of_both_lists_get_both_classes_and_ipv6_is_left_to_the_tries() {
        let protected = nets(&["192.0.2.30/32", "192.0.2.41/32", "2001:db8::30/128"]);
        let throttled = nets(&["192.0.2.40/32", "192.0.2.41/32", "2001:db8::/48"]);
        let table = table_for(&protected, &throttled).expect("all IPv4 entries are hosts");
        let classes = |a: [u8; 4]| table.classes(host_of(a));
        assert_eq!(classes([192, 0, 2, 30]), PROTECTED);
        assert_eq!(classes([192, 0, 2, 40]), THROTTLED);
        assert_eq!(classes([192, 0, 2, 41]), PROTECTED | THROTTLED);
        assert_eq!(classes([192, 0, 2, 42]), 0);
        assert_eq!(table.slots.iter().filter(|s| **s != 0).count(), 3);
    }

    #[test]
    fn a_wider_ipv4_prefix_in_either_list_switches_the_table_off() {
        let hosts = nets(&["192.0.2.30/32"]);
        assert!(table_for(&nets(&["192.0.2.30/31"]), &hosts).is_none());
        assert!(table_for(&hosts, &nets(&["198.51.100.0/24"])).is_none());
        assert!(table_for(&hosts, &nets(&[])).is_some());
    }
}
