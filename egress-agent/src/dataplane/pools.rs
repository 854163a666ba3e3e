//! The IPv4 subscriber pools (`subscribers.pools`) as the dataplane sees them: a table of
//! ranges (`egress_common::pools::PoolTable`) and one record slot per address. Both are set
//! at load: the records map is sized to the pools, and a pinned table that differs from the
//! config's takes its records with it (a slot would otherwise change owner).

use aya::maps::{Array, MapData, MapInfo};
use egress_common::{names, pools::PoolTable};

use super::{
    layout::LayoutError,
    maps::{MapsError, map_error, open},
};
use crate::{config::SubscribersConfig, paths::PinLayout};

/// The pool table of a validated config (entries that do not parse are left out: validation
/// refuses them before this runs).
pub fn table(subscribers: &SubscribersConfig) -> PoolTable {
    PoolTable::of(subscribers.pools.iter().filter_map(|text| {
        match crate::prefix::parse(text).ok()? {
            ipnet::IpNet::V4(net) => Some((u32::from(net.network()), net.prefix_len())),
            ipnet::IpNet::V6(_) => None,
        }
    }))
}

/// Slots the records map needs (an array map has at least one).
pub fn record_slots(table: &PoolTable) -> u32 {
    table.addresses().max(1)
}

/// Removes the pinned pool maps when their table is not `table`, so the loader creates both
/// afresh; the records of the old pools are lost, and the log says so.
pub fn forget_other_pools(pins: &PinLayout, table: &PoolTable) -> Result<(), LayoutError> {
    let table_pin = pins.map(names::POOL_TABLE_V4);
    let pinned = match MapData::from_pin(&table_pin) {
        Ok(data) => Array::<MapData, PoolTable>::try_from(aya::maps::Map::Array(data))
            .ok()
            .and_then(|array| array.get(&0, 0).ok()),
        Err(_) => None,
    };
    if pinned.as_ref() == Some(table) {
        return Ok(());
    }
    for name in [names::POOL_TABLE_V4, names::POOL_RECORDS_V4] {
        let path = pins.map(name);
        if MapInfo::from_pin(&path).is_err() {
            continue;
        }
        if pinned.is_some() {
            tracing::warn!(map = name, pin = %path.display(),
                "subscribers.pools changed: the pools' records start over");
        }
        std::fs::remove_file(&path).map_err(|source| LayoutError::Remove { path, source })?;
    }
    Ok(())
}

/// Writes the table into its pinned map (right after the load, before any link uses it).
pub fn write_table(pins: &PinLayout, table: &PoolTable) -> Result<(), MapsError> {
    let err = map_error(pins, names::POOL_TABLE_V4);
    let mut array: Array<MapData, PoolTable> =
        Array::try_from(open(pins, names::POOL_TABLE_V4)?).map_err(&err)?;
    array.set(0, *table, 0).map_err(&err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_config_in_order() {
        let subscribers = SubscribersConfig {
            pools: vec!["100.64.0.0/16".into(), "192.0.2.0/24".into()],
            ..SubscribersConfig::default()
        };
        let table = table(&subscribers);
        assert_eq!(table.count, 2);
        assert_eq!(record_slots(&table), 65_536 + 256);
        assert_eq!(table.slot_of(0xc000_0201), Some(65_537));
        assert_eq!(record_slots(&PoolTable::default()), 1);
    }
}
