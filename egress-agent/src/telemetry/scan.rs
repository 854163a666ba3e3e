//! Streaming every entry of the subscriber map with `BPF_MAP_LOOKUP_BATCH`
//! (`egress_common::batch::lookup_all`): about 2 s for 1,000,000 subscribers one entry at a
//! time, a fraction of that in batches, in bounded memory.

use std::{io, mem::size_of, os::fd::AsFd, path::Path};

use aya::maps::{HashMap, Map, MapData};
use egress_common::{SubscriberKey, SubscriberRecord, batch, names};

use super::{TelemetryError, pinned};
use crate::paths::PinLayout;

/// Calls `visit` for every subscriber with a record, in the LRU map and in the pools'
/// records; returns how many there were.
pub fn for_each_subscriber(
    pins: &PinLayout,
    mut visit: impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let in_pools = super::pool_records::for_each(pins, &mut visit)?;
    Ok(in_pools + for_each_in_lru(pins, visit)?)
}

fn for_each_in_lru(
    pins: &PinLayout,
    mut visit: impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::SUBSCRIBERS)?;
    let (Map::LruHashMap(data) | Map::HashMap(data)) = map else {
        return Err(TelemetryError::Syscall {
            path,
            call: "BPF_OBJ_GET",
            source: io::Error::other("the pinned subscriber map is not a hash map"),
        });
    };
    check_layout(&path, &data)?;
    match batch::lookup_all(data.fd().as_fd(), &mut visit) {
        Ok(count) => Ok(count),
        // Kernels before 5.6 have no batch operations.
        Err(err) if batch::unsupported(&err) => iterate_one_by_one(&path, data, &mut visit),
        Err(source) => Err(TelemetryError::Syscall {
            path,
            call: "BPF_MAP_LOOKUP_BATCH",
            source,
        }),
    }
}

/// The batch syscall writes `count` keys and values of the map's sizes into our buffers: they
/// must be exactly ours.
fn check_layout(path: &Path, map: &MapData) -> Result<(), TelemetryError> {
    let info = map.info().map_err(|source| TelemetryError::ReadMap {
        path: path.to_owned(),
        source,
    })?;
    let expected = (size_of::<SubscriberKey>(), size_of::<SubscriberRecord>());
    let found = (info.key_size() as usize, info.value_size() as usize);
    if found != expected {
        return Err(TelemetryError::Syscall {
            path: path.to_owned(),
            call: "BPF_OBJ_GET_INFO_BY_FD",
            source: io::Error::other(format!(
                "key/value sizes {found:?} differ from this agent's {expected:?}"
            )),
        });
    }
    Ok(())
}

fn iterate_one_by_one(
    path: &Path,
    data: MapData,
    visit: &mut impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let map = HashMap::<MapData, SubscriberKey, SubscriberRecord>::try_from(Map::LruHashMap(data))
        .map_err(|source| TelemetryError::OpenMap {
            path: path.to_owned(),
            source,
        })?;
    let mut total = 0;
    for entry in map.iter() {
        match entry {
            Ok((key, value)) => {
                visit(&key, &value);
                total += 1;
            }
            // An entry evicted between get-next-key and lookup is simply gone.
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(TelemetryError::ReadMap {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(total)
}

/// Looks up one subscriber: in the pools' records for a pool address, else in the LRU map.
pub fn lookup(
    pins: &PinLayout,
    key: &SubscriberKey,
) -> Result<Option<SubscriberRecord>, TelemetryError> {
    if let Some(in_pool) = super::pool_records::lookup(pins, key)? {
        return Ok(in_pool);
    }
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::SUBSCRIBERS)?;
    let map =
        HashMap::<MapData, SubscriberKey, SubscriberRecord>::try_from(map).map_err(|source| {
            TelemetryError::OpenMap {
                path: path.clone(),
                source,
            }
        })?;
    match map.get(key, 0) {
        Ok(record) => Ok(Some(record)),
        Err(aya::maps::MapError::KeyNotFound) => Ok(None),
        Err(source) => Err(TelemetryError::ReadMap { path, source }),
    }
}
