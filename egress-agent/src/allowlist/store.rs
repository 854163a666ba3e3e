//! Allowlist entries added through the CLI, persisted as JSON under `state_dir`. Every change is
//! written durably ([`crate::state_file`]) before the map is touched.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::{paths::StateLayout, state_file};

pub use state_file::StateFileError as StoreError;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    entries: Vec<Entry>,
}

/// The persisted CLI entries.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Store {
    /// Loads the store; a missing file is an empty list (first start).
    pub fn load(layout: &StateLayout) -> Result<Store, StoreError> {
        let path = layout.allowlist();
        let entries = state_file::read::<OnDisk>(&path)?.map_or_else(Vec::new, |d| d.entries);
        Ok(Store { path, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Replaces the stored list, durably, before returning.
    pub fn replace(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let on_disk = OnDisk {
            version: FORMAT_VERSION,
            entries,
        };
        state_file::write(&self.path, &on_disk)?;
        self.entries = on_disk.entries;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::{AllowKind, Source};

    #[test]
    fn round_trips_and_survives_reload() {
        let dir = std::env::temp_dir().join(format!("egress-store-{}", std::process::id()));
        let layout = StateLayout::new(&dir);
        let mut store = Store::load(&layout).expect("empty store loads");
        assert!(store.entries().is_empty());
        let entry = Entry {
            prefix: "192.0.2.10/32".parse().expect("prefix"),
            kind: AllowKind::Relay,
            source: Source::Cli,
            comment: "relay 1".into(),
            added: "2026-01-01T00:00:00Z".into(),
            added_by: String::new(),
        };
        store.replace(vec![entry.clone()]).expect("write");
        let again = Store::load(&layout).expect("reload");
        assert_eq!(again.entries(), &[entry]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
