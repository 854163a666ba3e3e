//! How the blocked path's cost grows with the number of distinct subscribers the measured
//! packets cycle through, for egress and for the floor program (`floor.rs`: one lookup in an
//! LRU hash of the same capacity, plus an add), on the same frames in the same run. It
//! separates what egress's own code costs from what the kernel's hash map costs once the
//! subscribers' buckets and records stop fitting the TLB and caches.

use std::os::fd::AsFd;

use anyhow::Result;
use egress_common::DEFAULT_MAX_TRACKED;

use super::{
    Scale,
    cases::{self, XDP_DROP},
    dataplane::Dataplane,
    floor::{Floor, Geometry},
    frames,
    measure::warm_up,
    report::{Row, Target},
    rotate::Rotated,
};

/// Distinct sources per measurement; 4,096 is the spec's minimum and the main rows' figure.
pub fn sizes(scale: &Scale) -> Vec<usize> {
    if scale.quick {
        vec![64, 4_096]
    } else {
        vec![64, 512, 4_096, 32_768]
    }
}

/// The rows at the current allowlist size; `tracked` subscribers are already in our table
/// (the floor's map gets as many, so both tables hold the same number of entries).
pub fn rows(
    dataplane: &mut Dataplane,
    scale: &Scale,
    label: &str,
    tracked: u32,
) -> Result<Vec<Row>> {
    let sizes = sizes(scale);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let prefill = (largest as u32).max(tracked);
    let sources = || (0..prefill).map(|n| frames::subscriber_v4(cases::tracked_index(n as usize)));
    let floors = [
        (Geometry::OURS, "our key and record, 168-byte elements"),
        (
            Geometry::MINIMAL,
            "4-byte key, 8-byte value, 64-byte elements",
        ),
    ]
    .into_iter()
    .map(|(geometry, what)| {
        let floor = Floor::new(DEFAULT_MAX_TRACKED, geometry)?;
        floor.track(sources())?;
        Ok((floor, what))
    })
    .collect::<Result<Vec<_>>>()?;
    let program = dataplane.xdp_fd()?.try_clone_to_owned()?;
    let empty = super::bpf_sys::load_empty_xdp()?;
    let mut rows = Vec::new();
    for count in sizes {
        let frames = cases::blocked_v4(count);
        let name = format!("blocked SYN IPv4, {count} sources");
        warm_up(&name, program.as_fd(), empty.as_fd(), &frames, XDP_DROP)?;
        let repeat = scale.steady.hot_repeat;
        let ours =
            Rotated::new(program.as_fd(), &frames)?.measure(&name, scale.runs, repeat, XDP_DROP)?;
        rows.push(
            Row::measured(
                format!("working set: ours, blocked SYN IPv4, {count} sources [{label}]"),
                &ours,
                "ns",
                Target::Info,
            )
            .with_note("rotated, repeat as the main rows"),
        );
        for (floor, what) in &floors {
            let kernel =
                Rotated::new(floor.fd(), &frames)?.measure(&name, scale.runs, repeat, XDP_DROP)?;
            rows.push(
                Row::measured(
                    format!("working set: floor, {what}, {count} sources [{label}]"),
                    &kernel,
                    "ns",
                    Target::Info,
                )
                .with_note("LRU-hash lookup + add, 1,048,576 entries as ours, same frames"),
            );
        }
    }
    Ok(rows)
}
