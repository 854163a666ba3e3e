//! The demo's temporary directory, and the check that a finished demo left nothing behind.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// `/tmp/egress-demo-<tag>`, removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn create(tag: u32) -> Result<WorkDir> {
        let path = path(tag);
        if path.exists() {
            // A run with the same pid that was killed before it could clean up.
            fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        // Postfix and smtp-sink drop root; they must be able to reach their directories.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: cannot remove {}: {err}", self.path.display());
        }
    }
}

fn path(tag: u32) -> PathBuf {
    std::env::temp_dir().join(format!("egress-demo-{tag}"))
}

/// What a demo with this tag left behind: namespaces, pins, the directory, processes.
pub fn leftovers(tag: u32) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = format!("egress-demo-{tag}-");
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                found.push(format!("network namespace {name}"));
            }
        }
    }
    let pins = PathBuf::from(format!("/sys/fs/bpf/egress-demo-{tag}"));
    let dir = path(tag);
    for path in [&pins, &dir] {
        if path.exists() {
            found.push(path.display().to_string());
        }
    }
    found.extend(processes_mentioning(&dir.to_string_lossy()));
    found
}

/// Processes whose command line or environment names `needle` (the agent, smtp-sink and
/// Postfix's daemons, which get their config directory through MAIL_CONFIG).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|entry| {
            ["cmdline", "environ"].iter().any(|file| {
                fs::read(entry.path().join(file))
                    .map(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
                    .unwrap_or(false)
            })
        })
        .map(|entry| {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            format!(
                "process {} ({})",
                entry.file_name().to_string_lossy(),
                cmdline.trim()
            )
        })
        .collect()
}
