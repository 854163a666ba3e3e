//! The IPv4 source index (`egress_common::index`) and the lookup shortcuts in the config map.
//!
//! The source tries stay the canonical store; the index is derived from the same desired
//! state after the tries are reconciled, and the dataplane uses it only while the config
//! map's `SOURCES_V4_INDEXED` flag is set. A failed sync clears that flag, so packets fall
//! back to the (correct) trie rather than to a half-written index.

use aya::maps::{Array, MapData};
use egress_common::{
    DataplaneConfig,
    config::allowlist_flags,
    index,
    index_plan::{self, Plan, SourcePrefix},
    index_sync::{self, SyncReport},
    names,
};
use ipnet::IpNet;

use super::{
    allowlist_maps::Direction,
    maps::{MapsError, map_error, open},
};
use crate::{allowlist::MapContents, paths::PinLayout};

/// The index's expected contents for the desired source allowlist.
pub fn plan(sources: &MapContents) -> Plan {
    Plan::new(sources.iter().filter_map(|(prefix, kind)| match prefix {
        IpNet::V4(net) => Some(SourcePrefix {
            addr: u32::from(net.network()),
            len: net.prefix_len(),
            kind: *kind,
        }),
        IpNet::V6(_) => None,
    }))
}

/// Makes the pinned index hold what `sources` says; sets `SOURCES_V4_INDEXED` once it does.
/// Returns what had to change (in a drift check: what someone else changed).
pub fn sync(pins: &PinLayout, sources: &MapContents) -> Result<SyncReport, MapsError> {
    let (index, blocks) = open_index(pins)?;
    // A program of an earlier version may still be attached: send it to the trie before the
    // index changes under it.
    update_flags(pins, 0, allowlist_flags::SOURCES_V4_ONE_LEVEL_INDEXED)?;
    finish_sync(pins, index_sync::sync(&index, &blocks, &plan(sources)))
}

/// After a sync: the index is used when it succeeded, the trie when it did not.
fn finish_sync(
    pins: &PinLayout,
    synced: Result<SyncReport, index_sync::IndexError>,
) -> Result<SyncReport, MapsError> {
    match synced {
        Ok(report) => {
            if report.on_trie > 0 {
                tracing::warn!(
                    slots = report.on_trie,
                    blocks = index::BLOCKS,
                    "more /24s hold prefixes longer than /24 than the IPv4 source index has \
                     blocks for; sources there are looked up in the trie"
                );
            }
            update_flags(pins, allowlist_flags::SOURCES_V4_INDEXED, 0)?;
            Ok(report)
        }
        Err(err) => {
            if let Err(flag_err) = update_flags(pins, 0, allowlist_flags::SOURCES_V4_INDEXED) {
                tracing::error!(%flag_err, "cannot switch IPv4 sources back to the trie");
            }
            Err(MapsError::Index(err))
        }
    }
}

/// [`sync`] of the index windows that `changed` prefixes lie in, for a change to a state the
/// index held (the rest of it already holds its plan). Nothing to do for a change of IPv6
/// prefixes only.
pub fn sync_touched(
    pins: &PinLayout,
    sources: &MapContents,
    changed: &[IpNet],
) -> Result<SyncReport, MapsError> {
    let mut windows: Vec<u32> = changed
        .iter()
        .filter_map(|prefix| match prefix {
            IpNet::V4(net) => Some(index_plan::windows_of(
                u32::from(net.network()),
                net.prefix_len(),
            )),
            IpNet::V6(_) => None,
        })
        .flatten()
        .collect();
    if windows.is_empty() {
        return Ok(SyncReport::default());
    }
    windows.sort_unstable();
    windows.dedup();
    let (index, blocks) = open_index(pins)?;
    update_flags(pins, 0, allowlist_flags::SOURCES_V4_ONE_LEVEL_INDEXED)?;
    let synced = index_sync::sync_windows(&index, &blocks, &plan(sources), &windows);
    finish_sync(pins, synced)
}

/// What [`sync`] would change, changing nothing (the drift check, beside the daemon).
pub fn check(pins: &PinLayout, sources: &MapContents) -> Result<SyncReport, MapsError> {
    let (index, blocks) = open_index(pins)?;
    index_sync::check(&index, &blocks, &plan(sources)).map_err(MapsError::Index)
}

fn open_index(pins: &PinLayout) -> Result<(MapData, MapData), MapsError> {
    let pinned = |name| MapData::from_pin(pins.map(name)).map_err(map_error(pins, name));
    Ok((
        pinned(names::SOURCE_INDEX_V4)?,
        pinned(names::SOURCE_BLOCKS_V4)?,
    ))
}

/// Which families of `direction` the desired state has entries for (v4, v6).
fn present(desired: &MapContents) -> (bool, bool) {
    let v4 = desired.keys().filter(|p| matches!(p, IpNet::V4(_))).count();
    (v4 > 0, desired.len() > v4)
}

/// The "empty, skip the lookup" bits of `direction`, for IPv4 and IPv6.
fn empty_bits(direction: Direction) -> (u32, u32) {
    match direction {
        // IPv4 sources go through the index, whose own flag says when it can be used.
        Direction::Sources => (0, allowlist_flags::SOURCES_V6_EMPTY),
        Direction::Destinations => (
            allowlist_flags::DESTINATIONS_V4_EMPTY,
            allowlist_flags::DESTINATIONS_V6_EMPTY,
        ),
        // The inbound lists' flags live in the inbound config (`inbound::maps`).
        Direction::ProtectedMx | Direction::MxSenders | Direction::Throttled => (0, 0),
    }
}

/// Before a reconcile: lookups in a list that is about to get entries must not be skipped.
pub fn before_reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
) -> Result<(), MapsError> {
    update_flags(pins, 0, empty_bits_where(direction, desired, true))
}

/// After a reconcile: lists now empty can be skipped.
pub fn after_reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
) -> Result<(), MapsError> {
    update_flags(pins, empty_bits_where(direction, desired, false), 0)
}

/// The "empty" bits of `direction` for the families that have entries in `desired`
/// (`with_entries`) or that have none.
fn empty_bits_where(direction: Direction, desired: &MapContents, with_entries: bool) -> u32 {
    let (v4, v6) = present(desired);
    let (v4_bit, v6_bit) = empty_bits(direction);
    let v4_bits = if v4 == with_entries { v4_bit } else { 0 };
    let v6_bits = if v6 == with_entries { v6_bit } else { 0 };
    v4_bits | v6_bits
}

/// Sets and clears `allowlist_flags` bits in the config map, keeping everything else.
pub(super) fn update_flags(pins: &PinLayout, set: u32, clear: u32) -> Result<(), MapsError> {
    let err = map_error(pins, names::CONFIG);
    let mut array: Array<MapData, DataplaneConfig> =
        Array::try_from(open(pins, names::CONFIG)?).map_err(&err)?;
    let mut config = array.get(&0, 0).map_err(&err)?;
    let flags = (config.allowlist_flags | set) & !clear;
    if flags != config.allowlist_flags {
        config.allowlist_flags = flags;
        array.set(0, config, 0).map_err(&err)?;
    }
    Ok(())
}
