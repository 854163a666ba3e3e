//! Allowlist drift: entries changed behind the agent's back (in the tries, the inbound lists
//! or the IPv4 source index) are counted and put back. The check only reads, so it runs on
//! the blocking pool while the daemon goes on answering; a repair, when one is needed, runs
//! on the daemon's loop like every other change. A change applied while a check runs makes
//! its report stale (the generation moved), and a stale report is dropped.

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::oneshot;

use super::Agent;
use crate::{
    allowlist::{AllowKind, Desired, MapContents, merge},
    dataplane::{
        allowlist_maps::{self, Direction},
        host_table,
        maps::MapsError,
        source_filter, source_hosts, source_index,
    },
    paths::PinLayout,
    status::ByKind,
};

/// Check ticks (seconds) between drift checks for a small allowlist.
const DRIFT_CHECK_TICKS: u32 = 2;
/// Map entries one drift check may read per `DRIFT_CHECK_TICKS`: bigger allowlists are
/// checked less often, so the check reads about 32k entries a second at most.
const DRIFT_ENTRIES_PER_CHECK: u64 = 65_536;

/// What one check found, against the applied state of `generation`.
pub struct DriftReport {
    generation: u64,
    found: ByKind,
    /// The tries or inbound lists differ (a reconcile repairs them and the index).
    tries: bool,
    /// The IPv4 source index or the IPv6 source filter differs (a sync repairs both).
    index: bool,
    /// A host table (IPv4 destinations', inbound lists') differs (a sync repairs them).
    hosts: bool,
    entries: u64,
    seconds: f64,
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

    /// Starts a read-only check of the maps against the applied state on the blocking pool;
    /// its report comes on the receiver.
    pub fn start_drift_check(&self) -> oneshot::Receiver<DriftReport> {
        let (report, receiver) = oneshot::channel();
        let pins = self.dataplane().pins().clone();
        let applied = self.applied.clone();
        let generation = self.generation;
        let entries = self.status_snapshot().allowlist_entries.total();
        if entries > DRIFT_ENTRIES_PER_CHECK {
            tracing::info!(entries, "drift check started, beside the daemon");
        } else {
            tracing::debug!(entries, "drift check started, beside the daemon");
        }
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let (found, tries, index, hosts) = match &applied {
                Some(desired) => examine(&pins, desired),
                None => (ByKind::default(), false, false, false),
            };
            let _ = report.send(DriftReport {
                generation,
                found,
                tries,
                index,
                hosts,
                entries,
                seconds: started.elapsed().as_secs_f64(),
            });
        });
        receiver
    }

    /// A check's report: logged, counted, and what it found put back, unless a change was
    /// applied meanwhile (that change reconciled the maps itself).
    pub fn finish_drift_check(&mut self, report: DriftReport) {
        let DriftReport {
            entries, seconds, ..
        } = report;
        if entries > DRIFT_ENTRIES_PER_CHECK || seconds >= 1.0 {
            tracing::info!(entries, seconds, "drift check");
        } else {
            tracing::debug!(entries, seconds, "drift check");
        }
        if report.generation != self.generation {
            tracing::debug!("drift check overtaken by a change; its report is dropped");
            return;
        }
        let found = report.found;
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
        if report.tries {
            // The maps no longer hold what was applied: the repair reads them back.
            self.maps_hold_applied = false;
            if let Err(err) = self.reconcile_allowlists(None) {
                tracing::error!(%err, "cannot restore allowlist maps");
            }
            return;
        }
        let Some(applied) = self.applied.clone() else {
            return;
        };
        let pins = self.dataplane().pins();
        if report.index {
            if let Err(err) = source_index::sync(pins, &applied.sources) {
                tracing::error!(%err, "cannot restore the IPv4 source index");
            }
            if let Err(err) = source_filter::sync(pins, &applied.sources) {
                tracing::error!(%err, "cannot restore the IPv6 source filter");
            }
            if let Err(err) = source_hosts::sync(pins, &applied.sources) {
                tracing::error!(%err, "cannot restore the IPv6 source hosts' table");
            }
        }
        if report.hosts {
            if let Err(err) = host_table::sync_destinations(pins, &applied.destinations) {
                tracing::error!(%err, "cannot restore the IPv4 destinations' host table");
            }
            if let Err(err) = crate::inbound::hosts::sync(pins, &applied) {
                tracing::error!(%err, "cannot restore the inbound host table");
            }
        }
    }
}

/// Reads every allowlist map, the IPv4 source index and the host tables and compares them
/// with `desired`: what differs, by kind; whether the tries, the index, a table do.
fn examine(pins: &PinLayout, desired: &Arc<Desired>) -> (ByKind, bool, bool, bool) {
    let mut found = ByKind::default();
    for (direction, want) in [
        (Direction::Sources, &desired.sources),
        (Direction::Destinations, &desired.destinations),
        (Direction::ProtectedMx, &desired.protected_mx),
        (Direction::MxSenders, &desired.mx_senders),
        (Direction::Throttled, &desired.throttled),
    ] {
        match allowlist_maps::read_sorted(pins, direction) {
            Ok(current) => drift(current.iter().map(|(p, v)| (p, v)), want, &mut found),
            Err(err) => tracing::warn!(%err, "cannot read allowlist map"),
        }
    }
    let tries = found != ByKind::default();
    let index = match source_index::check(pins, &desired.sources) {
        Ok(report) if report.changed() => {
            tracing::warn!(
                words = report.words_written,
                block_words = report.block_words_written,
                "IPv4 source index was changed outside the agent"
            );
            found.relay += report.relay;
            found.exempt += report.exempt;
            true
        }
        Ok(_) => false,
        Err(err) => {
            tracing::error!(%err, "cannot check the IPv4 source index");
            false
        }
    };
    // Which kind a filter word's bits stand for is not known: counted as exempt, like the
    // index's own kind-less differences.
    let filter = source_filter::check(pins, &desired.sources).map(|words| ByKind {
        exempt: words,
        ..ByKind::default()
    });
    let filter = derived("the IPv6 source filter", filter, &mut found);
    let v6_hosts = source_hosts::check(pins, &desired.sources).map(|slots| ByKind {
        exempt: slots,
        ..ByKind::default()
    });
    let v6_hosts = derived("the IPv6 source hosts' table", v6_hosts, &mut found);
    let destinations =
        host_table::check_destinations(pins, &desired.destinations).map(|hosts| ByKind {
            destination: hosts,
            ..ByKind::default()
        });
    let destinations = derived(
        "the IPv4 destinations' host table",
        destinations,
        &mut found,
    );
    let inbound = crate::inbound::hosts::check(pins, desired);
    let inbound = derived("the inbound host table", inbound, &mut found);
    (
        found,
        tries,
        index || filter || v6_hosts,
        destinations || inbound,
    )
}

/// A map derived from the tries (the IPv6 filter, a host table), checked: what differs is added to
/// `found`, and the answer is whether it needs a sync.
fn derived(what: &str, checked: Result<ByKind, MapsError>, found: &mut ByKind) -> bool {
    match checked {
        Ok(differ) if differ != ByKind::default() => {
            tracing::warn!(
                map = what,
                "a map derived from the allowlists was changed outside the agent"
            );
            found.relay += differ.relay;
            found.exempt += differ.exempt;
            found.destination += differ.destination;
            found.protected_mx += differ.protected_mx;
            found.mx_sender += differ.mx_sender;
            found.throttle_destination += differ.throttle_destination;
            true
        }
        Ok(_) => false,
        Err(err) => {
            tracing::error!(%err, map = what, "cannot check a map derived from the allowlists");
            false
        }
    }
}

/// Entries whose kind bits differ between the map (sorted) and the desired state, by kind:
/// one merge pass.
fn drift<'a>(
    current: impl Iterator<Item = (&'a IpNet, &'a u32)>,
    desired: &'a MapContents,
    drift: &mut ByKind,
) {
    for (_, have, want) in merge::join(current, desired.iter()) {
        let (have_bits, want_bits) = (have.unwrap_or(0), want.unwrap_or(0));
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
        drift(current.iter(), &desired, &mut found);
        assert_eq!((found.relay, found.exempt, found.destination), (2, 2, 0));
        let mut none = ByKind::default();
        drift(desired.iter(), &desired, &mut none);
        assert_eq!(none, ByKind::default());
    }
}
