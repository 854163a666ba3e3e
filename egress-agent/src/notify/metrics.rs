//! The notification metric families.

use std::sync::atomic::Ordering::Relaxed;

use super::NotifyStats;
use crate::telemetry::exposition::{Exposition, MetricType};

pub fn write(out: &mut Exposition, stats: &NotifyStats) {
    let name = "egress_notifications_total";
    out.family(
        name,
        MetricType::Counter,
        "Evidence report deliveries to the webhook, by result.",
    );
    for (result, counter) in [
        ("delivered", &stats.delivered),
        ("failed_attempt", &stats.failed_attempt),
        ("dropped", &stats.dropped),
    ] {
        out.sample(name, &[("result", result)], counter.load(Relaxed));
    }
    out.single(
        "egress_notifications_queued",
        MetricType::Gauge,
        "Evidence reports stored and waiting for delivery.",
        stats.queued.load(Relaxed),
    );
}
