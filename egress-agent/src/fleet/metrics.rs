//! The fleet metric families, present only with `[fleet]`.

use super::FleetStatus;
use crate::telemetry::exposition::{Exposition, MetricType};

pub fn write(out: &mut Exposition, status: &FleetStatus) {
    out.single(
        "egress_fleet_connected",
        MetricType::Gauge,
        "1 while the agent watches the fleet's etcd; 0 while it enforces its last applied set alone.",
        status.connected,
    );
    out.single(
        "egress_fleet_applied_revision",
        MetricType::Gauge,
        "The etcd revision of the fleet set enforced now.",
        status.applied_revision,
    );
    out.single(
        "egress_fleet_last_sync_timestamp_seconds",
        MetricType::Gauge,
        "When the agent last heard from etcd that its set is current (Unix time; 0: never).",
        status.last_sync_unix_seconds,
    );
    out.single(
        "egress_fleet_sync_errors_total",
        MetricType::Counter,
        "Fleet keys or values refused and skipped, and fleet changes that could not be applied.",
        status.sync_errors,
    );
}
