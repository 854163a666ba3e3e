//! What the running agent knows about itself, shared between the daemon (which writes it) and
//! the metrics endpoint and control socket (which read it).

use serde::{Deserialize, Serialize};

use crate::config::{Hook, ModeSetting};

/// One program attachment the agent manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub interface: String,
    pub hook: Hook,
    /// `native`, `skb` for XDP; `tcx` for TC.
    pub mode: String,
    /// Our program is attached right now.
    pub attached: bool,
    /// A program that is not ours holds the hook (reported, and replaced when `reattach`).
    pub foreign_program: bool,
    /// `xdp-link`, `tcx` or `tc-legacy` (a cls_bpf filter on clsact, kernels before 6.6).
    #[serde(default)]
    pub method: String,
    /// tc-legacy: other tools' filters on the same hook, kept as they are.
    #[serde(default)]
    pub foreign_filters: Vec<String>,
}

/// Allowlist entry counts or drift counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByKind {
    pub relay: u64,
    pub exempt: u64,
    pub destination: u64,
    #[serde(default)]
    pub protected_mx: u64,
    #[serde(default)]
    pub mx_sender: u64,
    #[serde(default)]
    pub throttle_destination: u64,
}

impl ByKind {
    /// Entries of every kind together.
    pub const fn total(&self) -> u64 {
        self.relay
            + self.exempt
            + self.destination
            + self.protected_mx
            + self.mx_sender
            + self.throttle_destination
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub mode: ModeSetting,
    pub pin_dir: String,
    pub attachments: Vec<Attachment>,
    pub allowlist_entries: ByKind,
    /// Entries changed behind the agent's back and reverted.
    pub allowlist_drift: ByKind,
    pub config_last_reload_successful: bool,
    pub max_tracked: u32,
    /// Record slots of `subscribers.pools`, one per address, beside the LRU map's
    /// `max_tracked`.
    #[serde(default)]
    pub pool_addresses: u32,
    /// The running kernel, and one line per feature it lacks (see dataplane::features).
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub missing_kernel_features: Vec<String>,
    /// `[fleet]`: the etcd connection and the applied revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetStatus>,
}

impl AgentStatus {
    /// Records the dataplane can hold: the LRU map's and the pools'.
    pub fn record_capacity(&self) -> u64 {
        u64::from(self.max_tracked) + u64::from(self.pool_addresses)
    }

    pub fn new(mode: ModeSetting, pin_dir: &str, max_tracked: u32) -> Self {
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            mode,
            pin_dir: pin_dir.to_owned(),
            attachments: Vec::new(),
            allowlist_entries: ByKind::default(),
            allowlist_drift: ByKind::default(),
            config_last_reload_successful: true,
            max_tracked,
            pool_addresses: 0,
            kernel: String::new(),
            missing_kernel_features: Vec::new(),
            fleet: None,
        }
    }
}
