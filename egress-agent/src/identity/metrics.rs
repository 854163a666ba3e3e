//! The identity metric families. No identity ever enters a label: only the result.

use std::sync::atomic::Ordering::Relaxed;

use super::RadiusStats;
use crate::telemetry::exposition::{Exposition, MetricType};

pub fn write(out: &mut Exposition, stats: &RadiusStats) {
    let name = "egress_radius_requests_total";
    out.family(
        name,
        MetricType::Counter,
        "RADIUS accounting requests received, by what became of them.",
    );
    for (result, counter) in [
        ("stored", &stats.stored),
        ("duplicate", &stats.duplicate),
        ("bad_authenticator", &stats.bad_authenticator),
        ("unknown_client", &stats.unknown_client),
        ("malformed", &stats.malformed),
    ] {
        out.sample(name, &[("result", result)], counter.load(Relaxed));
    }
    out.single(
        "egress_identity_sessions_open",
        MetricType::Gauge,
        "RADIUS sessions open (started, not stopped) in the history.",
        stats.sessions_open.load(Relaxed).max(0),
    );
}
