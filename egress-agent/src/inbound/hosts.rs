//! The inbound lists' IPv4 host table (`dataplane::host_table`): the classes of the hosts of
//! `protected_mx` and `throttle.destinations`, read by the inbound program instead of both
//! tries while every IPv4 entry of the two lists is a /32.

use egress_common::{
    host_table::Table,
    inbound::{
        host_class::{PROTECTED, THROTTLED},
        names,
    },
};
use ipnet::IpNet;

use crate::{
    allowlist::Desired,
    dataplane::{host_table, maps::MapsError},
    paths::PinLayout,
    status::ByKind,
};

/// What the table should hold for `desired`, or `None` when it should be off.
pub fn expected(desired: &Desired) -> Option<Table> {
    table_for(desired.protected_mx.keys(), desired.throttled.keys())
}

/// The table for these `protected_mx` and `throttle.destinations` prefixes.
pub fn table_for<'a>(
    protected_mx: impl IntoIterator<Item = &'a IpNet>,
    throttled: impl IntoIterator<Item = &'a IpNet>,
) -> Option<Table> {
    let protected = protected_mx.into_iter().map(|prefix| (prefix, PROTECTED));
    host_table::table_for(protected.chain(throttled.into_iter().map(|prefix| (prefix, THROTTLED))))
}

/// Makes the inbound program read `desired`'s table, or the tries when it has none. Call after
/// the tries hold `desired`.
pub fn sync(pins: &PinLayout, desired: &Desired) -> Result<(), MapsError> {
    host_table::sync(pins, names::HOSTS_V4, expected(desired).as_ref())
}

/// What differs between the pinned table and `desired`'s, by kind.
pub fn check(pins: &PinLayout, desired: &Desired) -> Result<ByKind, MapsError> {
    let mut found = ByKind::default();
    for differ in host_table::check(pins, names::HOSTS_V4, expected(desired).as_ref())? {
        found.protected_mx += u64::from(differ & PROTECTED != 0);
        found.throttle_destination += u64::from(differ & THROTTLED != 0);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use egress_common::host_table::host_of;
    use ipnet::IpNet;

    use super::{PROTECTED, THROTTLED, table_for};

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
