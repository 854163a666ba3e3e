//! Reading and writing the pinned maps by path, so the daemon and the CLI (when no agent runs)
//! use the same code.

use std::path::PathBuf;

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use egress_common::{Counter, DataplaneConfig, names};

use crate::paths::PinLayout;

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {name} ({path}): {source}")]
    Map {
        name: &'static str,
        path: PathBuf,
        source: MapError,
    },
    #[error(transparent)]
    Capacity(#[from] super::capacity::CapacityError),
    #[error(transparent)]
    Index(#[from] egress_common::index_sync::IndexError),
}

/// Opens the map pinned under `name`.
pub fn open(pins: &PinLayout, name: &'static str) -> Result<Map, MapsError> {
    let path = pins.map(name);
    MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .map_err(|source| MapsError::Map { name, path, source })
}

pub fn map_error<'a>(
    pins: &'a PinLayout,
    name: &'static str,
) -> impl Fn(MapError) -> MapsError + 'a {
    move |source| MapsError::Map {
        name,
        path: pins.map(name),
        source,
    }
}

/// Writes the single entry of the dataplane config map. The `allowlist_flags` already there
/// are kept: they describe the allowlist maps, which this does not change.
pub fn write_config(pins: &PinLayout, config: &DataplaneConfig) -> Result<(), MapsError> {
    let err = map_error(pins, names::CONFIG);
    let mut array: Array<MapData, DataplaneConfig> =
        Array::try_from(open(pins, names::CONFIG)?).map_err(&err)?;
    let current = array.get(&0, 0).map_err(&err)?;
    let config = DataplaneConfig {
        allowlist_flags: current.allowlist_flags,
        ..*config
    };
    array.set(0, config, 0).map_err(&err)
}

/// The global counters, summed over CPUs, in `Counter::ALL` order.
pub fn read_counters(pins: &PinLayout) -> Result<Vec<(Counter, u64)>, MapsError> {
    let err = map_error(pins, names::COUNTERS);
    let array: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(open(pins, names::COUNTERS)?).map_err(&err)?;
    Counter::ALL
        .iter()
        .map(|counter| {
            let per_cpu = array.get(&(*counter as u32), 0).map_err(&err)?;
            Ok((*counter, per_cpu.iter().sum()))
        })
        .collect()
}
