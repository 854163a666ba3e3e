//! The last applied fleet set and its revision, persisted under `state_dir` (`fleet.json`)
//! after every change: an agent started while etcd is down enforces it at once.

use serde::{Deserialize, Serialize};

use super::FleetEntry;
use crate::{allowlist::Entry, paths::StateLayout, state_file};

pub use state_file::StateFileError as SnapshotError;

const FORMAT_VERSION: u32 = 1;

/// The fleet's entries at one etcd revision, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetSet {
    pub revision: i64,
    pub entries: Vec<FleetEntry>,
}

impl FleetSet {
    /// The allowlist entries, for the desired state and the listings.
    pub fn allowlist_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().map(|e| &e.entry)
    }

    /// Same entries (the revision aside): applying `other` would change no map.
    pub fn same_entries(&self, other: &FleetSet) -> bool {
        self.entries == other.entries
    }
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    revision: i64,
    entries: Vec<OnDiskEntry>,
}

#[derive(Serialize, Deserialize)]
struct OnDiskEntry {
    key: String,
    #[serde(flatten)]
    entry: Entry,
}

/// Reads the persisted set; none yet (first start with `[fleet]`) is an empty set at 0.
pub fn load(layout: &StateLayout) -> Result<FleetSet, SnapshotError> {
    let Some(on_disk) = state_file::read::<OnDisk>(&layout.fleet())? else {
        return Ok(FleetSet::default());
    };
    Ok(FleetSet {
        revision: on_disk.revision,
        entries: on_disk
            .entries
            .into_iter()
            .map(|e| FleetEntry {
                key: e.key,
                entry: e.entry,
            })
            .collect(),
    })
}

/// Writes `set` durably before returning.
pub fn save(layout: &StateLayout, set: &FleetSet) -> Result<(), SnapshotError> {
    let on_disk = OnDisk {
        version: FORMAT_VERSION,
        revision: set.revision,
        entries: set
            .entries
            .iter()
            .map(|e| OnDiskEntry {
                key: e.key.clone(),
                entry: e.entry.clone(),
            })
            .collect(),
    };
    state_file::write(&layout.fleet(), &on_disk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::{AllowKind, Source};

    #[test]
    fn round_trips_with_its_revision() {
        let dir = std::env::temp_dir().join(format!("egress-fleet-{}", std::process::id()));
        let layout = StateLayout::new(&dir);
        assert_eq!(
            load(&layout).expect("missing is empty"),
            FleetSet::default()
        );
        let set = FleetSet {
            revision: 42,
            entries: vec![FleetEntry {
                key: "/egress/x/exempt/198.51.100.64/26".into(),
                entry: Entry {
                    prefix: "198.51.100.64/26".parse().expect("prefix"),
                    kind: AllowKind::Exempt,
                    source: Source::Fleet,
                    comment: "business".into(),
                    added: "2026-12-02T00:00:00Z".into(),
                    added_by: "rtr2".into(),
                },
            }],
        };
        save(&layout, &set).expect("save");
        assert_eq!(load(&layout).expect("load"), set);
        std::fs::write(layout.fleet(), b"{").expect("corrupt it");
        let err = load(&layout).expect_err("corrupt").to_string();
        assert!(err.contains("fleet.json is corrupt"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
