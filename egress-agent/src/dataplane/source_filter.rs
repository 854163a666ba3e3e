//! The IPv6 source filter (`egress_common::source_filter`): derived from the IPv6 source
//! prefixes after their trie is reconciled, and used by the dataplane only while the config
//! map's `SOURCES_V6_FILTERED` flag is set. It is written through a shared mapping, one word
//! per store, so a bit that stays set is never seen clear: no relay is blocked while the
//! filter changes.

use aya::maps::MapData;
use egress_common::{
    config::allowlist_flags::SOURCES_V6_FILTERED,
    index_sync::{MappedArray, Words as _},
    names::SOURCE_FILTER_V6,
    source_filter::{self, WORDS},
};
use ipnet::IpNet;

use super::{
    maps::{MapsError, map_error},
    source_index::update_flags,
};
use crate::{allowlist::MapContents, paths::PinLayout};

/// The filter for the IPv6 entries of `sources`, or `None` when one is too short to list.
pub fn expected(sources: &MapContents) -> Option<Vec<u64>> {
    source_filter::words(sources.keys().filter_map(|prefix| match prefix {
        IpNet::V6(net) => Some((net.network().octets(), net.prefix_len())),
        IpNet::V4(_) => None,
    }))
}

/// Makes the pinned filter hold what `sources` says and lets the dataplane use it, or stops
/// it using the filter when `sources` has a prefix too short for it. Call after the trie
/// holds `sources`. Returns how many words changed.
pub fn sync(pins: &PinLayout, sources: &MapContents) -> Result<u64, MapsError> {
    let Some(words) = expected(sources) else {
        update_flags(pins, 0, SOURCES_V6_FILTERED)?;
        return Ok(0);
    };
    let data = pinned(pins)?;
    let mut array = MappedArray::new(&data, SOURCE_FILTER_V6, WORDS, WORDS)?;
    let mut changed = 0;
    for (index, word) in (0u32..).zip(&words) {
        if array.load(index)? != *word {
            array.store(index, *word)?;
            changed += 1;
        }
    }
    update_flags(pins, SOURCES_V6_FILTERED, 0)?;
    Ok(changed)
}

/// Words of the pinned filter that differ from what `sources` says (the drift check, beside
/// the daemon: it only reads). Nothing differs while the filter is not expected to be used.
pub fn check(pins: &PinLayout, sources: &MapContents) -> Result<u64, MapsError> {
    let Some(words) = expected(sources) else {
        return Ok(0);
    };
    let data = pinned(pins)?;
    let mut array = MappedArray::new(&data, SOURCE_FILTER_V6, WORDS, WORDS)?;
    let mut differ = 0;
    for (index, word) in (0u32..).zip(&words) {
        differ += u64::from(array.load(index)? != *word);
    }
    Ok(differ)
}

fn pinned(pins: &PinLayout) -> Result<MapData, MapsError> {
    MapData::from_pin(pins.map(SOURCE_FILTER_V6)).map_err(map_error(pins, SOURCE_FILTER_V6))
}
