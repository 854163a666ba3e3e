//! `detach`: removing every link, program and map pin under a pin directory. Programs and maps
//! are freed by the kernel once their last pin and fd are gone.

use std::path::{Path, PathBuf};

use super::tc_legacy;
use crate::{config::Hook, paths::PinLayout};

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not on bpffs; refusing to delete files there")]
    NotBpffs { path: PathBuf },
    #[error("{interface}: cannot remove the legacy TC filter: {source}")]
    Filter {
        interface: String,
        source: std::io::Error,
    },
    #[error(
        "the legacy TC filter on {} is still attached: no such interface in this network \
         namespace; run `egress-agent detach` in the agent's namespace (or delete the interface)",
        interfaces.join(", ")
    )]
    Unreachable { interfaces: Vec<String> },
}

/// What `detach` removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub links: Vec<String>,
    pub maps: Vec<String>,
    /// Legacy TC filters (and qdiscs egress created) removed, one line each.
    pub filters: Vec<String>,
}

/// Removes links first (enforcement stops), then maps, then the directories.
pub fn remove_all(pins: &PinLayout) -> Result<Removed, TeardownError> {
    let mut removed = Removed::default();
    if !pins.root().exists() {
        return Ok(removed);
    }
    if !super::bpffs::is_bpffs(pins.root()) {
        return Err(TeardownError::NotBpffs {
            path: pins.root().to_owned(),
        });
    }
    let unreachable = remove_legacy_filters(pins, &mut removed)?;
    for hook in Hook::ALL {
        let dir = pins.hook_dir(hook.as_str());
        for name in remove_files_in(&dir)? {
            removed.links.push(format!(
                "{} {}",
                PinLayout::link_interface(&name),
                hook.as_str()
            ));
        }
        remove_dir(&dir)?;
    }
    removed.maps = remove_files_in(&pins.maps_dir())?;
    if !unreachable.is_empty() {
        return Err(TeardownError::Unreachable {
            interfaces: unreachable,
        });
    }
    for dir in [pins.links_dir(), pins.maps_dir(), pins.root().to_owned()] {
        remove_dir(&dir)?;
    }
    Ok(removed)
}

/// Removes our cls_bpf filters (and the clsact qdiscs egress created, when nothing foreign is
/// on them); returns the interfaces not reachable from this network namespace.
fn remove_legacy_filters(
    pins: &PinLayout,
    removed: &mut Removed,
) -> Result<Vec<String>, TeardownError> {
    let mut unreachable = Vec::new();
    for interface in tc_legacy::recorded(pins) {
        let removal =
            tc_legacy::remove(pins, &interface).map_err(|source| TeardownError::Filter {
                interface: interface.clone(),
                source,
            })?;
        match removal {
            tc_legacy::Removal::Removed { qdisc } => removed.filters.push(format!(
                "{interface} tc-egress: cls_bpf filter{}",
                if qdisc { " and clsact qdisc" } else { "" }
            )),
            tc_legacy::Removal::QdiscKept { foreign } => removed.filters.push(format!(
                "{interface} tc-egress: cls_bpf filter; clsact qdisc kept for foreign filters: {}",
                foreign.join("; ")
            )),
            tc_legacy::Removal::NoInterface => unreachable.push(interface),
        }
    }
    if unreachable.is_empty() {
        remove_dir(&tc_legacy::state_root(pins))?;
    }
    Ok(unreachable)
}

fn remove_files_in(dir: &Path) -> Result<Vec<String>, TeardownError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| TeardownError::Remove { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err(dir))?;
        let path = entry.path();
        std::fs::remove_file(&path).map_err(err(&path))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn remove_dir(dir: &Path) -> Result<(), TeardownError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TeardownError::Remove {
            path: dir.to_owned(),
            source,
        }),
    }
}
