//! What the periodic check reports: attachment changes and allowlist drift.

use super::Agent;
use crate::{
    allowlist::{AllowKind, Desired, MapContents},
    dataplane::allowlist_maps::{self, Direction},
    status::{Attachment, ByKind},
};

pub(super) fn interface_missing(name: &str) -> bool {
    crate::dataplane::attach::ifindex(name) == 0
}

pub(super) fn log_transition(before: &Attachment, now: &Attachment) {
    let (interface, hook) = (&now.interface, now.hook.as_str());
    if before.attached && !now.attached && !now.foreign_program {
        tracing::warn!(%interface, hook, "interface gone or link lost: not enforcing here");
    } else if !before.attached && now.attached {
        tracing::info!(%interface, hook, mode = %now.mode, "re-attached");
    }
    if !before.foreign_program && now.foreign_program {
        tracing::warn!(%interface, hook, "a foreign program replaced ours (control.reattach = false: leaving it)");
    }
}

/// Entries whose kind bits differ between the map and the desired state, by kind.
fn drift(current: &MapContents, desired: &MapContents, drift: &mut ByKind) {
    let keys = current.keys().chain(desired.keys());
    let mut seen = std::collections::BTreeSet::new();
    for prefix in keys {
        if !seen.insert(*prefix) {
            continue;
        }
        let have = current.get(prefix).copied().unwrap_or(0);
        let want = desired.get(prefix).copied().unwrap_or(0);
        for kind in AllowKind::ALL {
            if (have ^ want) & kind.bit() != 0 {
                match kind {
                    AllowKind::Relay => drift.relay += 1,
                    AllowKind::Exempt => drift.exempt += 1,
                    AllowKind::Destination => drift.destination += 1,
                }
            }
        }
    }
}

impl Agent {
    /// Entries changed behind our back are counted and put back.
    pub fn check_drift(&mut self) {
        let desired = Desired::from_entries(&self.desired_entries());
        let pins = self.dataplane().pins();
        let mut found = ByKind::default();
        for (direction, want) in [
            (Direction::Sources, &desired.sources),
            (Direction::Destinations, &desired.destinations),
        ] {
            match allowlist_maps::read(pins, direction) {
                Ok(current) => drift(&current, want, &mut found),
                Err(err) => tracing::warn!(%err, "cannot read allowlist map"),
            }
        }
        if found == ByKind::default() {
            return;
        }
        tracing::warn!(
            relay = found.relay,
            exempt = found.exempt,
            destination = found.destination,
            "allowlist maps were changed outside the agent; restoring"
        );
        self.update_status(|status| {
            status.allowlist_drift.relay += found.relay;
            status.allowlist_drift.exempt += found.exempt;
            status.allowlist_drift.destination += found.destination;
        });
        if let Err(err) = self.reconcile_allowlists(None) {
            tracing::error!(%err, "cannot restore allowlist maps");
        }
    }
}
