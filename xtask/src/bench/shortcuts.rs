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
    let destination = with_and_without(
        &mut rows,
        object,
        scale,
        ("allowed SMTP to a destination host IPv4", "host table"),
        (&to_destination, XDP_PASS),
        |dataplane, with| dataplane.allow_destination_hosts(&DESTINATIONS, with),
    )?;
    rows.push(saving(
        "allowed destination host: trie - host table",
        &destination,
        "what the host table saves on every SMTP packet to an allowed destination",
    ));
    let source = with_and_without(
        &mut rows,
        object,
        scale,
        (
            "blocked SYN tracked subscriber IPv6, 10 prefixes",
            "IPv6 source filter",
        ),
        (&blocked_v6, XDP_DROP),
        |dataplane, with| {
            dataplane.allow_v6(&prefixes::exempt_v6(9), egress_common::allow_kind::EXEMPT)?;
            if with {
                dataplane.sync_source_index()
            } else {
                dataplane.without_source_filter()
            }
        },
    )?;
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
    let relay = with_and_without(
        &mut rows,
        object,
        scale,
        (
            "allowed SMTP from relay IPv6, 10 prefixes",
            "IPv6 source hosts' table",
        ),
        (&from_relay, XDP_PASS),
        |dataplane, with| {
            dataplane.allow_v6(&prefixes::exempt_v6(9), egress_common::allow_kind::EXEMPT)?;
            if with {
                dataplane.sync_source_index()
            } else {
                dataplane.without_source_hosts()
            }
        },
    )?;
    rows.push(saving(
        "allowed IPv6 relay: trie - source hosts' table",
        &relay,
        "what the table saves on every SMTP packet from an IPv6 relay (a /124 of 16 here)",
    ));
    Ok(rows)
}

/// Times `frames` (with their verdict) on a fresh dataplane set up with the shortcut
/// (`setup(dataplane, true)`) and without it, one row each named `case, shortcut` and
/// `case, trie`; returns the two medians, with first.
fn with_and_without(
    rows: &mut Vec<Row>,
    object: &Path,
    scale: &Scale,
    (case, shortcut): (&str, &str),
    (frames, verdict): (&[Vec<u8>], u32),
    setup: impl Fn(&mut Dataplane, bool) -> Result<()>,
) -> Result<Vec<f64>> {
    let mut medians = Vec::new();
    for (with, how) in [(true, shortcut), (false, "trie")] {
        let mut dataplane = Dataplane::load(object)?;
        setup(&mut dataplane, with)?;
        let program = dataplane.xdp_fd()?;
        let name = format!("{case}, {how}");
        medians.push(time(rows, &name, program, frames, verdict, scale)?);
    }
    Ok(medians)
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
