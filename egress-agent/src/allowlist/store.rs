//! Allowlist entries added through the CLI, persisted as JSON under `state_dir`. Every change is
//! written atomically (temporary file, fsync, rename, fsync of the directory) before the map
//! is touched, so a crash at any point leaves either the old or the new list on disk.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::paths::StateLayout;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

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
        let entries = match fs::read(&path) {
            Ok(bytes) => {
                let on_disk: OnDisk =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                on_disk.entries
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
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
        let write_err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&on_disk)
            .map_err(|err| write_err(std::io::Error::other(err)))?;
        write_atomically(&self.path, &bytes).map_err(write_err)?;
        self.entries = on_disk.entries;
        Ok(())
    }
}

/// Writes `bytes` to `path` so a crash leaves the old or the new file, never a torn one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("state file has no parent directory"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
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
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
