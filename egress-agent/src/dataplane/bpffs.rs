//! Making sure the pin directory lives on a mounted bpffs.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use crate::paths::BPFFS_ROOT;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    #[error(
        "pin_dir {pin_dir} is not on a bpffs, and only {BPFFS_ROOT} can be mounted automatically"
    )]
    NotBpffs { pin_dir: PathBuf },
    #[error("cannot mount bpffs on {BPFFS_ROOT} (needs CAP_SYS_ADMIN): {source}")]
    Mount { source: std::io::Error },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// True when `path` (or its nearest existing ancestor) is on bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    let mut probe = path;
    while !probe.exists() {
        match probe.parent() {
            Some(parent) => probe = parent,
            None => return false,
        }
    }
    let Ok(c_path) = CString::new(probe.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we pass; the path is NUL-terminated.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs on /sys/fs/bpf when the pin directory needs it, then creates the pin
/// directory. Logs what it did.
pub fn ensure(pin_dir: &Path) -> Result<(), BpffsError> {
    if !is_bpffs(pin_dir) {
        if !pin_dir.starts_with(BPFFS_ROOT) {
            return Err(BpffsError::NotBpffs {
                pin_dir: pin_dir.to_owned(),
            });
        }
        mount_root()?;
        tracing::info!(path = BPFFS_ROOT, "mounted bpffs");
    }
    std::fs::create_dir_all(pin_dir).map_err(|source| BpffsError::CreateDir {
        path: pin_dir.to_owned(),
        source,
    })
}

fn mount_root() -> Result<(), BpffsError> {
    let to_c = |s: &str| CString::new(s).map_err(|e| BpffsError::Mount { source: e.into() });
    let (source, target, fstype) = (to_c("bpf")?, to_c(BPFFS_ROOT)?, to_c("bpf")?);
    // SAFETY: all strings are NUL-terminated and outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(BpffsError::Mount {
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
