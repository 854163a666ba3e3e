//! Builds the `/metrics` exposition from the pinned maps and the agent's status, at scrape time.

use egress_common::Counter;
use prometheus::proto::MetricFamily;

use super::{
    TelemetryContext, TelemetryError,
    census_cache::Snapshot,
    exposition::{self, Exposition, MetricType},
    limiter, pinned, program_stats, read, subscribers,
};
use crate::status::{AgentStatus, ByKind};

/// `(counter, verdict, family)` for `egress_smtp_packets_total`.
const VERDICTS: [(Counter, &str, &str); 10] = [
    (Counter::AllowedRelayV4, "allowed_relay", "ipv4"),
    (Counter::AllowedRelayV6, "allowed_relay", "ipv6"),
    (Counter::AllowedExemptV4, "allowed_exempt", "ipv4"),
    (Counter::AllowedExemptV6, "allowed_exempt", "ipv6"),
    (Counter::AllowedDestinationV4, "allowed_destination", "ipv4"),
    (Counter::AllowedDestinationV6, "allowed_destination", "ipv6"),
    (Counter::DroppedV4, "dropped", "ipv4"),
    (Counter::DroppedV6, "dropped", "ipv6"),
    (Counter::MonitoredV4, "monitored", "ipv4"),
    (Counter::MonitoredV6, "monitored", "ipv6"),
];

const OTHER_DROPS: [(Counter, &str); 3] = [
    (Counter::TinyFragment, "tiny_fragment"),
    (Counter::OverlapFragment, "overlap_fragment"),
    (Counter::Ipv6Chain, "ipv6_chain"),
];

/// The whole exposition as text, read now. The subscriber families' text is encoded once
/// per census (a million subscribers' census is reused by several scrapes).
pub fn render(ctx: &TelemetryContext) -> Result<String, TelemetryError> {
    let read = Read::now(ctx)?;
    let subscribers = read.snapshot.encoded(encode_census)?;
    let mut text = encode(&read.before.finish())?;
    text.push_str(subscribers);
    text.push_str(&encode(&read.after.finish())?);
    Ok(text)
}

/// The subscriber census's families as exposition text: a thousand series of top offenders
/// and suspected bots, encoded once per census (see `census_cache`).
pub(super) fn encode_census(census: &subscribers::Census) -> Result<String, TelemetryError> {
    let mut out = Exposition::new();
    write_subscribers(&mut out, census);
    encode(&out.finish())
}

fn encode(families: &[MetricFamily]) -> Result<String, TelemetryError> {
    exposition::encode(families).map_err(|err| TelemetryError::Encode(err.to_string()))
}

/// One scrape's reading: the families before the subscriber census's, the census, and the
/// families after it.
struct Read {
    before: Exposition,
    snapshot: std::sync::Arc<Snapshot>,
    after: Exposition,
}

impl Read {
    fn now(ctx: &TelemetryContext) -> Result<Read, TelemetryError> {
        let status = read(&ctx.status).clone();
        let snapshot = ctx.census.current(ctx)?;
        let counters = pinned::counters(&ctx.pins)?;

        let mut before = Exposition::new();
        write_dataplane_counters(&mut before, &counters);
        if let Err(err) = crate::inbound::metrics::write(&mut before, &ctx.pins) {
            tracing::warn!(%err, "cannot read the inbound maps for /metrics");
        }
        let mut after = Exposition::new();
        write_census(&mut after, &snapshot);
        write_agent(&mut after, &status, &counters);
        program_stats::write(&mut after, &ctx.pins);
        if let Some(fleet) = &status.fleet {
            crate::fleet::metrics::write(&mut after, fleet);
        }
        crate::audit::report::write_metrics(&mut after, read(&ctx.audit).as_ref());
        if let Some(trace) = &ctx.traceability {
            trace.write_metrics(&mut after);
        }
        Ok(Read {
            before,
            snapshot,
            after,
        })
    }
}

fn write_dataplane_counters(out: &mut Exposition, counters: &[u64]) {
    let name = "egress_smtp_packets_total";
    out.family(
        name,
        MetricType::Counter,
        "SMTP-bound packets by verdict and IP family.",
    );
    for (counter, verdict, family) in VERDICTS {
        out.sample(
            name,
            &[("verdict", verdict), ("family", family)],
            counters[counter as usize],
        );
    }
    let name = "egress_smtp_dropped_other_total";
    out.family(
        name,
        MetricType::Counter,
        "Packets dropped because they could be SMTP-bound but cannot be judged (RFC 1858 fragments, unwalkable IPv6 chains).",
    );
    for (counter, reason) in OTHER_DROPS {
        out.sample(name, &[("reason", reason)], counters[counter as usize]);
    }
    out.single(
        "egress_packets_malformed_total",
        MetricType::Counter,
        "Packets with malformed or truncated headers.",
        counters[Counter::Malformed as usize],
    );
    out.single(
        "egress_smtp_outside_pools_total",
        MetricType::Counter,
        "Blocked IPv4 SMTP packets whose source is in none of subscribers.pools (on a subscriber-facing interface, a spoofed source); 0 without pools.",
        counters[Counter::OutsidePools as usize],
    );
}

fn write_subscribers(out: &mut Exposition, census: &subscribers::Census) {
    let labels: Vec<String> = census
        .top
        .iter()
        .map(|(key, _)| subscribers::label(key))
        .collect();
    let name = "egress_subscriber_smtp_attempts_total";
    out.family(
        name,
        MetricType::Counter,
        "Blocked SMTP connection attempts (SYN without ACK) of the subscribers with the most attempts.",
    );
    for (label, (_, record)) in labels.iter().zip(&census.top) {
        out.sample(name, &[("subscriber", label)], record.attempts);
    }
    let name = "egress_subscriber_distinct_destinations";
    out.family(
        name,
        MetricType::Gauge,
        "Estimated distinct destinations of the subscribers with the most attempts.",
    );
    for (label, (_, record)) in labels.iter().zip(&census.top) {
        let estimate = subscribers::distinct_destinations(&record.destinations);
        out.sample(name, &[("subscriber", label)], estimate);
    }
    let name = "egress_subscriber_suspected_bot";
    out.family(
        name,
        MetricType::Gauge,
        "1 for every subscriber over a detection threshold within the detection window.",
    );
    for (key, _) in &census.suspected {
        out.sample(name, &[("subscriber", &subscribers::label(key))], 1);
    }
    out.single(
        "egress_suspected_bots",
        MetricType::Gauge,
        "Subscribers currently suspected to be bots.",
        census.suspected.len(),
    );
    out.single(
        "egress_tracked_subscribers",
        MetricType::Gauge,
        "Subscribers with a record in the subscriber map.",
        census.tracked,
    );
}

fn write_census(out: &mut Exposition, snapshot: &Snapshot) {
    out.single(
        "egress_subscriber_census_age_seconds",
        MetricType::Gauge,
        "Seconds since the subscriber-map scan behind the per-subscriber series, egress_suspected_bots and egress_tracked_subscribers started: every scrape scans while scans take under 100 ms, else it shows the last scan and starts the next.",
        millis(snapshot.age()),
    );
    out.single(
        "egress_subscriber_census_duration_seconds",
        MetricType::Gauge,
        "How long that scan took.",
        millis(snapshot.took),
    );
}

fn write_agent(out: &mut Exposition, status: &AgentStatus, counters: &[u64]) {
    let name = "egress_allowlist_entries";
    out.family(name, MetricType::Gauge, "Allowlist entries by kind.");
    write_by_kind(out, name, status.allowlist_entries);
    let name = "egress_attached";
    out.family(
        name,
        MetricType::Gauge,
        "1 for every interface and hook our program is attached to.",
    );
    for attachment in status.attachments.iter().filter(|a| a.attached) {
        out.sample(
            name,
            &[
                ("interface", &attachment.interface),
                ("hook", attachment.hook.as_str()),
                ("mode", &attachment.mode),
            ],
            1,
        );
    }
    let name = "egress_foreign_program";
    out.family(
        name,
        MetricType::Gauge,
        "1 for every interface and hook where a program that is not ours displaced ours (replaced when control.reattach is true).",
    );
    for attachment in status.attachments.iter().filter(|a| a.foreign_program) {
        out.sample(
            name,
            &[
                ("interface", &attachment.interface),
                ("hook", attachment.hook.as_str()),
            ],
            1,
        );
    }
    out.single(
        "egress_tracked_subscribers_max",
        MetricType::Gauge,
        "Subscriber records the dataplane can hold: subscribers.max_tracked, plus one per address of subscribers.pools.",
        status.record_capacity(),
    );
    let name = "egress_allowlist_drift_total";
    out.family(
        name,
        MetricType::Counter,
        "Allowlist entries found changed behind the agent's back and reverted, by kind.",
    );
    write_by_kind(out, name, status.allowlist_drift);
    out.single(
        "egress_events_suppressed_total",
        MetricType::Counter,
        "Subscriber events not logged: ring buffer full in the dataplane, or over the agent's log rate limit.",
        counters[Counter::EventsSuppressed as usize].wrapping_add(limiter::suppressed()),
    );
    out.single(
        "egress_config_last_reload_successful",
        MetricType::Gauge,
        "1 when the last configuration (re)load succeeded, else 0.",
        u8::from(status.config_last_reload_successful),
    );
    let name = "egress_build_info";
    out.family(
        name,
        MetricType::Gauge,
        "Always 1; the version of the agent.",
    );
    out.sample(name, &[("version", &status.version)], 1);
}

fn write_by_kind(out: &mut Exposition, name: &str, counts: ByKind) {
    for (kind, value) in [
        ("relay", counts.relay),
        ("exempt", counts.exempt),
        ("destination", counts.destination),
        ("protected_mx", counts.protected_mx),
        ("mx_sender", counts.mx_sender),
    ] {
        out.sample(name, &[("kind", kind)], value);
    }
}

/// Seconds, rounded to the millisecond.
fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}
