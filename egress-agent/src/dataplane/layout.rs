//! The layout each pinned map must have to be reused by the embedded object. A pin whose type,
//! key size, value size, capacity or flags differ (an older agent version, or a changed
//! `max_tracked`) is removed before loading so that the loader creates a fitting map; the log
//! says so, because the map's contents (counters, records) start over.

use std::path::PathBuf;

use aya::maps::MapInfo;
use egress_common::names;

use super::capacity::sized_by_capacity;
use crate::paths::PinLayout;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot parse the embedded eBPF object: {0}")]
    Object(#[from] aya_obj::ParseError),
    #[error("cannot remove incompatible map pin {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the object needs for one map, with the agent's capacity overrides applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// The maps of `object` that the agent pins (globals in .rodata/.bss are not pinned), with
/// the subscriber map sized to `max_tracked` and each allowlist map to `allowlist_capacity`.
pub fn required(
    object: &[u8],
    max_tracked: u32,
    allowlist_capacity: u32,
) -> Result<Vec<MapSpec>, LayoutError> {
    let parsed = aya_obj::Object::parse(object)?;
    let mut specs: Vec<MapSpec> = parsed
        .maps
        .iter()
        .filter(|(name, _)| name.starts_with("EGRESS_"))
        .map(|(name, map)| MapSpec {
            name: name.clone(),
            map_type: map.map_type(),
            key_size: map.key_size(),
            value_size: map.value_size(),
            max_entries: if name == names::SUBSCRIBERS {
                max_tracked
            } else if sized_by_capacity().any(|sized| sized == name) {
                allowlist_capacity
            } else {
                map.max_entries()
            },
            flags: map.map_flags(),
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

/// How a pinned map differs from its spec, or None when it fits.
fn mismatch(spec: &MapSpec, info: &MapInfo) -> Option<String> {
    let map_type = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
    let checks = [
        ("type", spec.map_type, map_type),
        ("key size", spec.key_size, info.key_size()),
        ("value size", spec.value_size, info.value_size()),
        ("max_entries", spec.max_entries, info.max_entries()),
        ("flags", spec.flags, info.map_flags()),
    ];
    checks
        .iter()
        .find(|(_, want, have)| want != have)
        .map(|(what, want, have)| format!("{what} is {have}, the program needs {want}"))
}

/// Removes the pins of maps that earlier versions had and this one has not. A program of such
/// a version still attached keeps its own reference; the map goes when that program does.
pub fn remove_retired(pins: &PinLayout) -> Result<(), LayoutError> {
    for name in names::RETIRED {
        let path = pins.map(name);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(map = name, pin = %path.display(), "retired map pin removed"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(LayoutError::Remove { path, source }),
        }
    }
    Ok(())
}

/// Removes every pinned map that does not fit; returns the names of the removed maps.
pub fn remove_incompatible(
    pins: &PinLayout,
    specs: &[MapSpec],
) -> Result<Vec<String>, LayoutError> {
    let mut removed = Vec::new();
    for spec in specs {
        let path = pins.map(&spec.name);
        if !path.exists() {
            continue;
        }
        let reason = match MapInfo::from_pin(&path) {
            Ok(info) => mismatch(spec, &info),
            Err(err) => Some(format!("cannot be opened ({err})")),
        };
        if let Some(reason) = reason {
            tracing::warn!(
                map = %spec.name,
                pin = %path.display(),
                %reason,
                "pinned map has an incompatible layout: recreating it (its contents are lost)"
            );
            std::fs::remove_file(&path).map_err(|source| LayoutError::Remove {
                path: path.clone(),
                source,
            })?;
            removed.push(spec.name.clone());
        }
    }
    Ok(removed)
}
