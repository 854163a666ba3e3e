//! What the lookups in front of the tries save, each measured with and without it on the same
//! frames (rotated over 4,096 subscribers, timed above the empty program):
//!
//! - the IPv4 destinations' host table: SMTP from subscribers to an allowed destination host
//!   (`allow.destinations`, the ISP's relay beyond the edge), against the destination trie;
//! - the IPv6 source filter: blocked SYNs from tracked IPv6 subscribers with 10 source
//!   prefixes, against the source trie walk it lets them skip.

use std::{net::Ipv4Addr, os::fd::AsFd, path::Path};

use anyhow::Result;

use super::{
    Scale,
    cases::{XDP_DROP, XDP_PASS},
    dataplane::Dataplane,
    frames::{self, L4},
    measure::{NoHooks, Stats, measure, warm_up},
    prefixes,
    report::{Row, Target},
};

/// The ISP's relay beyond the edge, and a second allowed host beside it.
const DESTINATIONS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 25),
    Ipv4Addr::new(203, 0, 113, 9),
];
const SUBSCRIBERS: u32 = 4_096;
const SMTP: L4 = L4::TcpSyn { dst_port: 25 };

pub fn rows(object: &Path, scale: &Scale) -> Result<Vec<Row>> {
    println!("lookups in front of the tries, with and without, {SUBSCRIBERS} subscribers...");
    let to_destination: Vec<Vec<u8>> = (0..SUBSCRIBERS)
        .map(|n| frames::ipv4(frames::subscriber_v4(n), DESTINATIONS[0], SMTP))
        .collect();
    let blocked_v6: Vec<Vec<u8>> = (0..SUBSCRIBERS)
        .map(|n| frames::ipv6(frames::subscriber_v6(n), frames::destination_v6(n), SMTP))
        .collect();
    let mut rows = Vec::new();
    let mut destination = Vec::new();
    for (with, how) in [(true, "host table"), (false, "trie")] {
        let mut dataplane = Dataplane::load(object)?;
        dataplane.allow_destination_hosts(&DESTINATIONS, with)?;
        let name = format!("allowed SMTP to a destination host IPv4, {how}");
        let program = dataplane.xdp_fd()?;
        destination.push(time(
            &mut rows,
            &name,
            program,
            &to_destination,
            XDP_PASS,
            scale,
        )?);
    }
    rows.push(saving(
        "allowed destination host: trie - host table",
        &destination,
        "what the host table saves on every SMTP packet to an allowed destination",
    ));
    let mut source = Vec::new();
    for (with, how) in [(true, "IPv6 source filter"), (false, "trie")] {
        let mut dataplane = Dataplane::load(object)?;
        dataplane.allow_v6(&prefixes::exempt_v6(9), egress_common::allow_kind::EXEMPT)?;
        if with {
            dataplane.sync_source_index()?;
        } else {
            dataplane.without_source_filter()?;
        }
        let name = format!("blocked SYN tracked subscriber IPv6, 10 prefixes, {how}");
        let program = dataplane.xdp_fd()?;
        source.push(time(
            &mut rows,
            &name,
            program,
            &blocked_v6,
            XDP_DROP,
            scale,
        )?);
    }
    rows.push(saving(
        "blocked IPv6 SYN: trie - source filter",
        &source,
        "what the filter saves on every SMTP packet from an IPv6 source in no listed /48",
    ));
    let from_relay: Vec<Vec<u8>> = (0..SUBSCRIBERS)
        .map(|n| {
            let relay = frames::relay_v6(n % frames::RELAY_COUNT);
            frames::ipv6(relay, frames::destination_v6(n), SMTP)
        })
        .collect();
    let mut relay = Vec::new();
    for (with, how) in [(true, "IPv6 source hosts' table"), (false, "trie")] {
        let mut dataplane = Dataplane::load(object)?;
        dataplane.allow_v6(&prefixes::exempt_v6(9), egress_common::allow_kind::EXEMPT)?;
        if with {
            dataplane.sync_source_index()?;
        } else {
            dataplane.without_source_hosts()?;
        }
        let name = format!("allowed SMTP from relay IPv6, 10 prefixes, {how}");
        let program = dataplane.xdp_fd()?;
        relay.push(time(
            &mut rows,
            &name,
            program,
            &from_relay,
            XDP_PASS,
            scale,
        )?);
    }
    rows.push(saving(
        "allowed IPv6 relay: trie - source hosts' table",
        &relay,
        "what the table saves on every SMTP packet from an IPv6 relay (a /124 of 16 here)",
    ));
    Ok(rows)
}

/// Times `frames` through `program` (after a warm-up pass that also tracks the subscribers),
/// adds the row, and returns its median.
fn time(
    rows: &mut Vec<Row>,
    name: &str,
    program: std::os::fd::BorrowedFd<'_>,
    frames: &[Vec<u8>],
    verdict: u32,
    scale: &Scale,
) -> Result<f64> {
    let empty = super::bpf_sys::load_empty_xdp()?;
    warm_up(name, program, empty.as_fd(), frames, verdict)?;
    let measured = measure(
        name,
        program,
        empty.as_fd(),
        frames,
        scale.steady,
        verdict,
        &mut NoHooks,
    )?;
    rows.push(
        Row::measured(
            format!("{name} [{SUBSCRIBERS} subscribers]"),
            measured.headline(),
            "ns",
            Target::Info,
        )
        .with_context(&measured),
    );
    Ok(measured.headline().median)
}

/// The trie's median minus the shortcut's (`medians`: with, then without).
fn saving(name: &str, medians: &[f64], note: &str) -> Row {
    Row::measured(
        name.to_string(),
        &Stats::of(vec![medians[1] - medians[0]]),
        "ns",
        Target::Info,
    )
    .with_note(note)
}
