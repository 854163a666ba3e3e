//! `detach`: removing every link, program and map pin under a pin directory. Programs and maps
//! are freed by the kernel once their last pin and fd are gone.

use std::path::{Path, PathBuf};

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
}

/// What `detach` removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub links: Vec<String>,
    pub maps: Vec<String>,
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
    for dir in [pins.links_dir(), pins.maps_dir(), pins.root().to_owned()] {
        remove_dir(&dir)?;
    }
    Ok(removed)
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
