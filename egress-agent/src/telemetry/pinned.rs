//! Opening the maps the agent pinned, by path, at the moment they are needed.

use std::path::PathBuf;

use aya::maps::{Map, MapData, PerCpuArray};
use egress_common::{Counter, names};

use super::TelemetryError;
use crate::paths::PinLayout;

/// A pinned map and where it was found (for error messages).
pub struct PinnedMap {
    pub path: PathBuf,
    pub map: Map,
}

pub fn open(pins: &PinLayout, name: &str) -> Result<PinnedMap, TelemetryError> {
    let path = pins.map(name);
    let map = MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .map_err(|source| TelemetryError::OpenMap {
            path: path.clone(),
            source,
        })?;
    Ok(PinnedMap { path, map })
}

/// The global dataplane counters, summed over CPUs, indexed by `Counter`.
pub fn counters(pins: &PinLayout) -> Result<[u64; Counter::COUNT as usize], TelemetryError> {
    let PinnedMap { path, map } = open(pins, names::COUNTERS)?;
    let array =
        PerCpuArray::<MapData, u64>::try_from(map).map_err(|source| TelemetryError::OpenMap {
            path: path.clone(),
            source,
        })?;
    let mut sums = [0u64; Counter::COUNT as usize];
    for counter in Counter::ALL {
        let values = array
            .get(&(counter as u32), 0)
            .map_err(|source| TelemetryError::ReadMap {
                path: path.clone(),
                source,
            })?;
        sums[counter as usize] = values.iter().fold(0u64, |sum, v| sum.wrapping_add(*v));
    }
    Ok(sums)
}
