//! What the periodic check reports: attachment changes and allowlist drift (tries and the
//! IPv4 source index).

use super::Agent;
use crate::{
    allowlist::{AllowKind, Desired, MapContents},
    dataplane::{
        allowlist_maps::{self, Direction},
        source_index,
    },
    status::{Attachment, ByKind},
};

/// Check ticks (seconds) between drift checks for a small allowlist.
const DRIFT_CHECK_TICKS: u32 = 2;
/// Map entries one drift check may read per `DRIFT_CHECK_TICKS`: bigger allowlists are
/// checked less often, so the check never reads more than about 32k entries a second and
/// never holds the event loop for long.
const DRIFT_ENTRIES_PER_CHECK: u64 = 65_536;

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
        log_foreign(now);
    }
    if before.foreign_filters != now.foreign_filters {
        log_foreign_filters(now);
    }
}

/// Other tools' filters next to our cls_bpf filter: kept (never removed silently), said once.
pub(super) fn log_foreign_filters(now: &Attachment) {
    for filter in &now.foreign_filters {
        tracing::warn!(interface = %now.interface, hook = now.hook.as_str(), %filter,
            "foreign TC filter on the hook: kept as it is (egress runs first, at priority 1)");
    }
}

/// A foreign program we are not allowed to replace (or could not): said once per occurrence.
pub(super) fn log_foreign(now: &Attachment) {
    if now.hook == crate::config::Hook::TcEgress {
        tracing::error!(interface = %now.interface, hook = now.hook.as_str(),
            "FOREIGN TC FILTER holds our priority and handle (1, 0x25): it is kept, and port 25 \
             is NOT enforced here by TC");
        return;
    }
    tracing::error!(interface = %now.interface, hook = now.hook.as_str(), mode = %now.mode,
        "FOREIGN XDP PROGRAM holds the hook: port 25 is NOT enforced here \
         (control.reattach = false, or replacing it failed)");
}

/// Entries whose kind bits differ between the map and the desired state, by kind. Both are
/// sorted maps: one merge pass, no allocation.
fn drift(current: &MapContents, desired: &MapContents, drift: &mut ByKind) {
    let mut have = current.iter().peekable();
    let mut want = desired.iter().peekable();
    loop {
        let (have_bits, want_bits) = match (have.peek(), want.peek()) {
            (None, None) => break,
            (Some((h, hb)), Some((w, wb))) if h == w => {
                let bits = (**hb, **wb);
                have.next();
                want.next();
                bits
            }
            (Some((h, hb)), Some((w, _))) if h < w => {
                let bits = (**hb, 0);
                have.next();
                bits
            }
            (Some((_, hb)), None) => {
                let bits = (**hb, 0);
                have.next();
                bits
            }
            (_, Some((_, wb))) => {
                let bits = (0, **wb);
                want.next();
                bits
            }
        };
        for kind in AllowKind::ALL {
            if (have_bits ^ want_bits) & kind.bit() != 0 {
                match kind {
                    AllowKind::Relay => drift.relay += 1,
                    AllowKind::Exempt => drift.exempt += 1,
                    AllowKind::Destination => drift.destination += 1,
                    AllowKind::ProtectedMx => drift.protected_mx += 1,
                    AllowKind::MxSender => drift.mx_sender += 1,
                    AllowKind::ThrottleDestination => drift.throttle_destination += 1,
                }
            }
        }
    }
}

impl Agent {
    /// Ticks until the next drift check: 2 s for up to 65,536 entries, proportionally longer
    /// beyond (a full read of 2 million entries happens about once a minute).
    pub fn drift_check_ticks(&self) -> u32 {
        let entries = self.status_snapshot().allowlist_entries;
        let total = entries.total();
        let spread = total.div_ceil(DRIFT_ENTRIES_PER_CHECK).max(1);
        DRIFT_CHECK_TICKS.saturating_mul(u32::try_from(spread).unwrap_or(u32::MAX))
    }

    /// Entries changed behind our back are counted and put back. The check runs on the
    /// daemon's loop (control requests wait for it), so its duration is logged: at info for
    /// big allowlists, where it is what an operator would want to watch.
    pub fn check_drift(&mut self) {
        let started = std::time::Instant::now();
        self.restore_drift();
        let seconds = started.elapsed().as_secs_f64();
        let entries = self.status_snapshot().allowlist_entries;
        let entries = entries.total();
        if entries > DRIFT_ENTRIES_PER_CHECK || seconds >= 1.0 {
            tracing::info!(entries, seconds, "drift check");
        } else {
            tracing::debug!(entries, seconds, "drift check");
        }
    }

    fn restore_drift(&mut self) {
        let built;
        let desired = match &self.applied {
            Some(applied) => applied,
            None => {
                built = Desired::from_entries(&self.desired_entries());
                &built
            }
        };
        let pins = self.dataplane().pins();
        let mut found = ByKind::default();
        for (direction, want) in [
            (Direction::Sources, &desired.sources),
            (Direction::Destinations, &desired.destinations),
            (Direction::ProtectedMx, &desired.protected_mx),
            (Direction::MxSenders, &desired.mx_senders),
            (Direction::Throttled, &desired.throttled),
        ] {
            match allowlist_maps::read(pins, direction) {
                Ok(current) => drift(&current, want, &mut found),
                Err(err) => tracing::warn!(%err, "cannot read allowlist map"),
            }
        }
        let tries_drifted = found != ByKind::default();
        // The index is what IPv4 sources are judged by: a sync against the desired state
        // restores it (only differing words are written) and reports what differed.
        match source_index::sync(pins, &desired.sources) {
            Ok(report) if report.changed() => {
                tracing::warn!(
                    words = report.words_written,
                    long_entries = report.long_written + report.long_removed,
                    "IPv4 source index was changed outside the agent; restored"
                );
                found.relay += report.relay;
                found.exempt += report.exempt;
            }
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "cannot check the IPv4 source index"),
        }
        if found == ByKind::default() {
            return;
        }
        tracing::warn!(
            relay = found.relay,
            exempt = found.exempt,
            destination = found.destination,
            protected_mx = found.protected_mx,
            mx_sender = found.mx_sender,
            throttle_destination = found.throttle_destination,
            "allowlist maps were changed outside the agent; restoring"
        );
        self.update_status(|status| {
            status.allowlist_drift.relay += found.relay;
            status.allowlist_drift.exempt += found.exempt;
            status.allowlist_drift.destination += found.destination;
            status.allowlist_drift.protected_mx += found.protected_mx;
            status.allowlist_drift.mx_sender += found.mx_sender;
            status.allowlist_drift.throttle_destination += found.throttle_destination;
        });
        if tries_drifted && let Err(err) = self.reconcile_allowlists(None) {
            tracing::error!(%err, "cannot restore allowlist maps");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ByKind, MapContents, drift};
    use crate::allowlist::AllowKind;

    fn contents(entries: &[(&str, &[AllowKind])]) -> MapContents {
        entries
            .iter()
            .map(|(prefix, kinds)| {
                let bits = kinds.iter().fold(0, |bits, kind| bits | kind.bit());
                (prefix.parse().expect("prefix"), bits)
            })
            .collect()
    }

    #[test]
    fn drift_counts_every_kind_bit_that_differs_on_either_side() {
        use AllowKind::{Destination, Exempt, Relay};
        let desired = contents(&[
            ("192.0.2.0/28", &[Relay]),
            ("198.51.100.0/24", &[Exempt]),
            ("203.0.113.7/32", &[Relay, Exempt]),
            ("2001:db8::/48", &[Destination]),
        ]);
        let current = contents(&[
            ("100.64.0.0/10", &[Exempt]),  // added behind our back
            ("192.0.2.0/28", &[Relay]),    // as wanted
            ("203.0.113.7/32", &[Exempt]), // relay bit lost
            ("2001:db8::/48", &[Destination]),
            ("2001:db8:1::/48", &[Relay]), // added behind our back
        ]); // 198.51.100.0/24 deleted behind our back
        let mut found = ByKind::default();
        drift(&current, &desired, &mut found);
        assert_eq!((found.relay, found.exempt, found.destination), (2, 2, 0));
        let mut none = ByKind::default();
        drift(&desired, &desired, &mut none);
        assert_eq!(none, ByKind::default());
    }
}
