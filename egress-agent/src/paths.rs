//! Every filesystem path the agent uses, in one place.

use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/egress/egress.toml";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/egress";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/egress";
pub const DEFAULT_SOCKET: &str = "/run/egress/egress.sock";
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Layout under `pin_dir`: `maps/<MAP NAME>`, `links/<hook>/<interface>`.
///
/// bpffs refuses names containing '.', which interface names may have (`eth0.100`), so a
/// '.' in an interface name is stored as ':' (which interface names never contain).
#[derive(Clone, Debug)]
pub struct PinLayout {
    root: PathBuf,
}

impl PinLayout {
    pub fn new(pin_dir: impl Into<PathBuf>) -> Self {
        PinLayout {
            root: pin_dir.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    /// Pin of a map, by its name in the eBPF object (see `egress_common::names`).
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    pub fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    /// Directory of the link pins for one hook (`xdp` or `tc-egress`).
    pub fn hook_dir(&self, hook: &str) -> PathBuf {
        self.links_dir().join(hook)
    }

    /// Pin of the link attaching our program to `interface` at `hook` (`xdp` or `tc-egress`).
    pub fn link(&self, interface: &str, hook: &str) -> PathBuf {
        self.hook_dir(hook).join(interface.replace('.', ":"))
    }

    /// The interface a link pin's file name stands for.
    pub fn link_interface(file_name: &str) -> String {
        file_name.replace(':', ".")
    }
}

/// Files under `state_dir`.
#[derive(Clone, Debug)]
pub struct StateLayout {
    root: PathBuf,
}

impl StateLayout {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        StateLayout {
            root: state_dir.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Allowlist entries added through the CLI.
    pub fn allowlist(&self) -> PathBuf {
        self.root.join("allowlist.json")
    }

    /// The last applied fleet set (`[fleet]`) and its etcd revision.
    pub fn fleet(&self) -> PathBuf {
        self.root.join("fleet.json")
    }
}
