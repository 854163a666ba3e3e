//! The allowlist maps' capacity, and refusing a desired state that would not fit.
//!
//! Each of the four allowlist tries (sources and destinations, IPv4 and IPv6) holds at most
//! `egress_common::DEFAULT_ALLOWLIST_CAPACITY` prefixes. A change whose result would exceed
//! that is refused as a whole before any map is touched.

use egress_common::{DEFAULT_ALLOWLIST_CAPACITY, names};
use ipnet::IpNet;

use crate::allowlist::{Desired, MapContents};

/// Test hook: overrides the allowlist capacity at load time so integration tests can fill a
/// map without inserting two million prefixes. Not a configuration key; operators never set
/// it (a pinned map created with another capacity is recreated on the next start).
pub const TEST_CAPACITY_ENV: &str = "EGRESS_TEST_ALLOWLIST_CAPACITY";

/// The allowlist map names, each holding at most `allowlist_capacity()` entries.
pub const ALLOWLIST_MAPS: [&str; 4] = [
    names::SOURCES_V4,
    names::SOURCES_V6,
    names::DESTINATIONS_V4,
    names::DESTINATIONS_V6,
];

/// Maps created with `allowlist_capacity()` entries: the tries.
pub fn sized_by_capacity() -> impl Iterator<Item = &'static str> {
    ALLOWLIST_MAPS.into_iter()
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the allowlist would need {wanted} entries in map {map}, which holds at most {capacity}; \
     nothing changed"
)]
pub struct CapacityError {
    pub map: &'static str,
    pub wanted: usize,
    pub capacity: u32,
}

/// Entries per allowlist map: the built-in capacity unless the test hook overrides it.
pub fn allowlist_capacity() -> u32 {
    std::env::var(TEST_CAPACITY_ENV)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|capacity| *capacity > 0)
        .unwrap_or(DEFAULT_ALLOWLIST_CAPACITY)
}

/// Fails when any map would need more entries than `capacity`.
pub fn check(desired: &Desired, capacity: u32) -> Result<(), CapacityError> {
    let per_family = |contents: &MapContents| {
        let v4 = contents
            .keys()
            .filter(|p| matches!(p, IpNet::V4(_)))
            .count();
        (v4, contents.len() - v4)
    };
    let (sources_v4, sources_v6) = per_family(&desired.sources);
    let (destinations_v4, destinations_v6) = per_family(&desired.destinations);
    let wanted = [sources_v4, sources_v6, destinations_v4, destinations_v6];
    for (map, wanted) in ALLOWLIST_MAPS.into_iter().zip(wanted) {
        if wanted > capacity as usize {
            return Err(CapacityError {
                map,
                wanted,
                capacity,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(sources: &[&str]) -> Desired {
        let mut desired = Desired::default();
        for text in sources {
            desired.sources.insert(
                text.parse().expect("test prefix"),
                egress_common::allow_kind::RELAY,
            );
        }
        desired
    }

    #[test]
    fn counts_each_family_against_its_own_map() {
        let two_v4 = desired(&["192.0.2.1/32", "192.0.2.2/32", "2001:db8::1/128"]);
        assert!(check(&two_v4, 2).is_ok());
        let err = check(&two_v4, 1).expect_err("two IPv4 sources do not fit in one entry");
        assert_eq!(
            (err.map, err.wanted, err.capacity),
            (names::SOURCES_V4, 2, 1)
        );
        assert!(err.to_string().contains("nothing changed"));
    }
}
