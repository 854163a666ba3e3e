//! The records of `subscribers.pools` (`egress_common::pools`): one array slot per pool
//! address, a slot in use once its record has a packet. Read beside the LRU map by every
//! reader of subscriber records, so a pool subscriber looks like any other.

use std::{io, os::fd::AsFd, path::PathBuf};

use aya::maps::{Array, Map, MapData};
use egress_common::{SubscriberKey, SubscriberRecord, batch, names, pools::PoolTable};

use super::{TelemetryError, pinned};
use crate::paths::PinLayout;

/// The pinned pool table; None when there are no pools (or no pins of them: an agent from
/// before pools left none).
fn table(pins: &PinLayout) -> Result<Option<PoolTable>, TelemetryError> {
    if !pins.map(names::POOL_TABLE_V4).exists() {
        return Ok(None);
    }
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::POOL_TABLE_V4)?;
    let array =
        Array::<MapData, PoolTable>::try_from(map).map_err(|source| TelemetryError::OpenMap {
            path: path.clone(),
            source,
        })?;
    let table = array
        .get(&0, 0)
        .map_err(|source| TelemetryError::ReadMap { path, source })?;
    Ok((table.count != 0).then_some(table))
}

fn records(pins: &PinLayout) -> Result<(PathBuf, MapData), TelemetryError> {
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::POOL_RECORDS_V4)?;
    let Map::Array(data) = map else {
        return Err(TelemetryError::Syscall {
            path,
            call: "BPF_OBJ_GET",
            source: io::Error::other("the pinned pool records are not an array map"),
        });
    };
    // The batch lookup writes values of the map's size into buffers of ours.
    let value_size = data
        .info()
        .map_err(|source| TelemetryError::ReadMap {
            path: path.clone(),
            source,
        })?
        .value_size();
    if value_size as usize != size_of::<SubscriberRecord>() {
        return Err(TelemetryError::Syscall {
            path,
            call: "BPF_OBJ_GET_INFO_BY_FD",
            source: io::Error::other(format!(
                "value size {value_size} differs from this agent's {}",
                size_of::<SubscriberRecord>()
            )),
        });
    }
    Ok((path, data))
}

fn as_array(
    path: &std::path::Path,
    data: MapData,
) -> Result<Array<MapData, SubscriberRecord>, TelemetryError> {
    Array::try_from(Map::Array(data)).map_err(|source| TelemetryError::OpenMap {
        path: path.to_owned(),
        source,
    })
}

fn key_of(table: &PoolTable, slot: u32) -> Option<SubscriberKey> {
    let address = table.address_of(slot)?;
    Some(SubscriberKey::ipv4(address.to_be_bytes()))
}

/// Calls `visit` for every pool subscriber with a record; returns how many there were.
pub fn for_each(
    pins: &PinLayout,
    mut visit: impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let Some(table) = table(pins)? else {
        return Ok(0);
    };
    let (path, data) = records(pins)?;
    let mut used = 0u64;
    let mut visit_slot = |slot: u32, record: &SubscriberRecord| {
        if record.packets != 0
            && let Some(key) = key_of(&table, slot)
        {
            visit(&key, record);
            used += 1;
        }
    };
    let batched = batch::lookup_all::<u32, SubscriberRecord>(data.fd().as_fd(), |slot, record| {
        visit_slot(*slot, record)
    });
    match batched {
        Ok(_) => {}
        // Kernels before 5.6 have no batch operations.
        Err(err) if batch::unsupported(&err) => {
            let array = as_array(&path, data)?;
            for slot in 0..table.addresses() {
                let record = array
                    .get(&slot, 0)
                    .map_err(|source| TelemetryError::ReadMap {
                        path: path.clone(),
                        source,
                    })?;
                visit_slot(slot, &record);
            }
        }
        Err(source) => {
            return Err(TelemetryError::Syscall {
                path,
                call: "BPF_MAP_LOOKUP_BATCH",
                source,
            });
        }
    }
    Ok(used)
}

/// The record of `key` when it is a pool address: Some(None) for a pool address without one
/// yet, None when `key` is in no pool (look in the LRU map).
pub fn lookup(
    pins: &PinLayout,
    key: &SubscriberKey,
) -> Result<Option<Option<SubscriberRecord>>, TelemetryError> {
    if key.family != 4 {
        return Ok(None);
    }
    let Some(table) = table(pins)? else {
        return Ok(None);
    };
    let mut octets = [0u8; 4];
    octets.copy_from_slice(&key.addr[..4]);
    let Some(slot) = table.slot_of(u32::from_be_bytes(octets)) else {
        return Ok(None);
    };
    let (path, data) = records(pins)?;
    match as_array(&path, data)?.get(&slot, 0) {
        Ok(record) => Ok(Some((record.packets != 0).then_some(record))),
        Err(source) => Err(TelemetryError::ReadMap { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_keyed_by_its_pool_address() {
        let table = PoolTable::of([(0x6440_0000, 24), (0xc000_0200, 24)]);
        assert_eq!(
            key_of(&table, 1),
            Some(SubscriberKey::ipv4([100, 64, 0, 1]))
        );
        assert_eq!(
            key_of(&table, 256 + 9),
            Some(SubscriberKey::ipv4([192, 0, 2, 9]))
        );
        assert_eq!(key_of(&table, 512), None);
    }
}
