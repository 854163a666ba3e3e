//! The inbound metric families, written into the scrape's exposition.

use egress_common::inbound::InboundCounter;

use crate::{
    dataplane::maps::MapsError,
    paths::PinLayout,
    telemetry::exposition::{Exposition, MetricType},
};

/// `egress_inbound_smtp_packets_total{verdict,family}` and `egress_inbound_throttled_sources`.
pub fn write(out: &mut Exposition, pins: &PinLayout) -> Result<(), MapsError> {
    let counters = super::maps::read_counters(pins)?;
    let throttled = super::maps::throttled_sources(pins, crate::clock::monotonic_ns())?;
    write_values(out, &counters, throttled);
    Ok(())
}

fn write_values(out: &mut Exposition, counters: &[(InboundCounter, u64)], throttled: u64) {
    let name = "egress_inbound_smtp_packets_total";
    out.family(
        name,
        MetricType::Counter,
        "Inbound SMTP packets to the protected primary MX and the throttled spam checkers, by verdict and IP family.",
    );
    for (counter, value) in counters {
        out.sample(
            name,
            &[("verdict", counter.verdict()), ("family", counter.family())],
            *value,
        );
    }
    out.single(
        "egress_inbound_throttled_sources",
        MetricType::Gauge,
        "Sources whose SYN token bucket towards a throttled destination is empty right now.",
        throttled,
    );
}
