//! Host tables (`egress_common::host_table`) in pinned array maps, derived from a list after
//! its tries are reconciled and used by the dataplane instead of the tries while every IPv4
//! entry of the list is a host. The IPv4 destinations have one here; the inbound lists have
//! theirs in `inbound::hosts`.
//!
//! A table is written, through a shared mapping, into the half the dataplane is not reading,
//! then named by the header in one 8-byte store. Off (header 0) is always correct: the tries
//! hold everything.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::MapData;
use egress_common::{
    host_table::{self, ENTRIES, HALF, HEADER, Table},
    index_sync::{MappedArray, Words as _},
    names,
};
use ipnet::IpNet;

use super::maps::{MapsError, map_error};
use crate::{allowlist::MapContents, paths::PinLayout};

/// The class of an allowed destination in its table.
const DESTINATION: u32 = 1;

/// The table for `entries` (prefix, class bits), or `None` when an IPv4 entry is wider than a
/// host or the hosts do not fit. IPv6 entries are left to the tries.
pub fn table_for<'a>(entries: impl IntoIterator<Item = (&'a IpNet, u32)>) -> Option<Table> {
    let mut hosts = BTreeMap::new();
    for (prefix, class) in entries {
        match prefix {
            IpNet::V4(net) if net.prefix_len() == 32 => {
                *hosts
                    .entry(host_table::host_of(net.addr().octets()))
                    .or_insert(0) |= class;
            }
            IpNet::V4(_) => return None,
            IpNet::V6(_) => {}
        }
    }
    let hosts: Vec<(u32, u32)> = hosts.into_iter().collect();
    host_table::build(&hosts)
}

/// Makes the dataplane read `table` from the pinned map `name`, or the tries when there is
/// none. Call after the tries hold the list.
pub fn sync(pins: &PinLayout, name: &'static str, table: Option<&Table>) -> Result<(), MapsError> {
    let data = pinned(pins, name)?;
    let mut array = mapped(&data, name)?;
    let header = array.load(HEADER)?;
    let Some(table) = table else {
        if host_table::bits_of(header) != 0 {
            array.store(HEADER, 0)?;
            tracing::info!(
                map = name,
                "host table off: the list holds more than IPv4 hosts, or more hosts than it \
                 takes; the tries answer"
            );
        }
        return Ok(());
    };
    let half = 1 - host_table::half_of(header);
    let base = 1 + half * HALF;
    for (offset, slot) in (0u32..).zip(&table.slots) {
        array.store(base + offset, *slot)?;
    }
    Ok(array.store(HEADER, table.header(half))?)
}

/// The class bits that differ, one element per host, between the pinned table `name` and
/// `want` (the drift check, beside the daemon: it only reads). A table that is off differs
/// only when one is expected, and then in every class.
pub fn check(
    pins: &PinLayout,
    name: &'static str,
    want: Option<&Table>,
) -> Result<Vec<u32>, MapsError> {
    let data = pinned(pins, name)?;
    let mut array = mapped(&data, name)?;
    let header = array.load(HEADER)?;
    let bits = host_table::bits_of(header);
    if bits == 0 || bits > host_table::MAX_BITS {
        let off_as_expected = want.is_none() && bits == 0;
        return Ok(if off_as_expected {
            Vec::new()
        } else {
            vec![u32::MAX]
        });
    }
    // Every host the half in use answers for, as the dataplane would read it.
    let base = 1 + host_table::half_of(header) * HALF;
    let mut held = BTreeMap::<u32, u32>::new();
    for index in base..base + (1 << bits) {
        let slot = array.load(index)?;
        let host = (slot >> 32) as u32;
        if slot != 0 && host_table::choices(header, host).contains(&index) {
            *held.entry(host).or_insert(0) |= host_table::classes_in(slot, host);
        }
    }
    let wanted: BTreeMap<u32, u32> = want.map_or_else(BTreeMap::new, |table| {
        let slots = table.slots.iter().filter(|slot| **slot != 0);
        slots
            .map(|slot| ((slot >> 32) as u32, (slot & 0xff) as u32))
            .collect()
    });
    let hosts: BTreeSet<u32> = held.keys().chain(wanted.keys()).copied().collect();
    Ok(hosts
        .into_iter()
        .map(|host| held.get(&host).copied().unwrap_or(0) ^ wanted.get(&host).copied().unwrap_or(0))
        .filter(|differ| *differ != 0)
        .collect())
}

fn pinned(pins: &PinLayout, name: &'static str) -> Result<MapData, MapsError> {
    MapData::from_pin(pins.map(name)).map_err(map_error(pins, name))
}

/// The whole table in one shared mapping: a program sees each store whole.
fn mapped<'a>(data: &'a MapData, name: &'static str) -> Result<MappedArray<'a>, MapsError> {
    Ok(MappedArray::new(data, name, ENTRIES, ENTRIES)?)
}

/// The IPv4 destinations' table for `destinations` (see [`table_for`]).
pub fn destinations(destinations: &MapContents) -> Option<Table> {
    table_for(destinations.keys().map(|prefix| (prefix, DESTINATION)))
}

/// Writes the IPv4 destinations' table for `destinations`.
pub fn sync_destinations(pins: &PinLayout, destinations: &MapContents) -> Result<(), MapsError> {
    sync(
        pins,
        names::DEST_HOSTS_V4,
        self::destinations(destinations).as_ref(),
    )
}

/// Hosts whose entry in the IPv4 destinations' table differs from `destinations`.
pub fn check_destinations(pins: &PinLayout, destinations: &MapContents) -> Result<u64, MapsError> {
    let want = self::destinations(destinations);
    Ok(check(pins, names::DEST_HOSTS_V4, want.as_ref())?.len() as u64)
}
