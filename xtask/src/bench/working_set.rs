//! How the blocked path's cost grows with the number of distinct subscribers the measured
//! packets cycle through, for egress (with its records in the LRU map, and with the sources in
//! a subscriber pool, `subscriber_pools.rs`) and for the floor program (`floor.rs`: one lookup
//! in an LRU hash of the same capacity, plus an add), on the same frames in the same run. It
//! separates what egress's own code costs from what the kernel's hash map costs once the
//! subscribers' buckets and records stop fitting the TLB and caches. The programs take turns
//! run by run, so this machine's slow swings in speed fall on all of them alike, and the ratio
//! rows divide figures of the same moment.

use std::os::fd::AsFd;

use anyhow::{Result, ensure};
use egress_common::DEFAULT_MAX_TRACKED;

use super::{
    Scale,
    cases::{self, XDP_DROP},
    dataplane::Dataplane,
    floor::{Floor, Geometry},
    frames,
    measure::{Stats, warm_up},
    report::{Row, Target},
    rotate::Rotated,
    subscriber_pools::{self, PoolPath, with_pools},
};

/// Distinct sources per measurement; 4,096 is the spec's minimum and the main rows' figure.
pub fn sizes(scale: &Scale) -> Vec<usize> {
    if scale.quick {
        vec![64, 4_096]
    } else {
        vec![64, 512, 4_096, 32_768]
    }
}

/// Issue 15's targets for the blocked path against the smallest floor: 64 subscribers
/// (everything cached) and 4,096, both with the smallest allowlist.
fn ratio_target(count: usize, smallest_allowlist: bool) -> Target {
    if smallest_allowlist && matches!(count, 64 | 4_096) {
        Target::AtMost(1.5)
    } else {
        Target::Info
    }
}

/// The rows at the current allowlist size; `tracked` subscribers are already in our table and
/// in the pool (the floor's map gets as many, so both tables hold the same number of entries).
/// `smallest_allowlist`: the step the ratio targets are set at.
pub fn rows(
    dataplane: &mut Dataplane,
    scale: &Scale,
    label: &str,
    tracked: u32,
    smallest_allowlist: bool,
) -> Result<Vec<Row>> {
    let sizes = sizes(scale);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let prefill = (largest as u32).max(tracked);
    let sources = || (0..prefill).map(|n| frames::subscriber_v4(cases::tracked_index(n as usize)));
    let new_floor = |geometry| -> Result<Floor> {
        let floor = Floor::new(DEFAULT_MAX_TRACKED, geometry)?;
        floor.track(sources())?;
        Ok(floor)
    };
    // The smallest element's floor last: the ratio rows divide by it.
    let floors = [
        (
            new_floor(Geometry::OURS)?,
            "our key and record, 168-byte elements",
        ),
        (
            new_floor(Geometry::MINIMAL)?,
            "4-byte key, 8-byte value, 64-byte elements",
        ),
    ];
    let program = dataplane.xdp_fd()?.try_clone_to_owned()?;
    let empty = super::bpf_sys::load_empty_xdp()?;
    let pools = dataplane.has_pools();
    let mut rows = Vec::new();
    for count in sizes {
        let frames = cases::blocked_v4(count);
        let name = format!("blocked SYN IPv4, {count} sources");
        warm_up(&name, program.as_fd(), empty.as_fd(), &frames, XDP_DROP)?;
        if pools {
            with_pools(dataplane, |_| {
                warm_up(&name, program.as_fd(), empty.as_fd(), &frames, XDP_DROP)
            })?;
        }
        let ours = Rotated::new(program.as_fd(), &frames)?;
        let rotated_floors = floors
            .iter()
            .map(|(floor, _)| Rotated::new(floor.fd(), &frames))
            .collect::<Result<Vec<_>>>()?;
        let mut path = if pools {
            Some(PoolPath::watch(
                dataplane,
                subscriber_pools::sources(count),
            )?)
        } else {
            None
        };
        let repeat = scale.steady.hot_repeat;
        let once = |rotated: &Rotated| one_run(rotated, &name, repeat);
        let (mut lru_ns, mut pool_ns) = (Vec::new(), Vec::new());
        let mut floor_ns = vec![Vec::new(); floors.len()];
        for _ in 0..scale.runs {
            lru_ns.push(once(&ours)?);
            if let Some(path) = &mut path {
                let gained = path.gained(dataplane, &name)?;
                ensure!(
                    gained == 0,
                    "{name}: {gained} packets reached the pool records with the pools off"
                );
                pool_ns.push(with_pools(dataplane, |_| once(&ours))?);
                let gained = path.gained(dataplane, &name)?;
                ensure!(
                    gained == u64::from(repeat),
                    "{name}: the pool records gained {gained} packets in {repeat} executions with the pools on: not every packet took the pool path"
                );
            }
            for (rotated, ns) in rotated_floors.iter().zip(&mut floor_ns) {
                ns.push(once(rotated)?);
            }
        }
        let ns_row = |what: String, ns: &[f64], note: &str| {
            Row::measured(
                format!("working set: {what}, {count} sources [{label}]"),
                &Stats::of(ns.to_vec()),
                "ns",
                Target::Info,
            )
            .with_note(note)
        };
        let rotated_note = "rotated, repeat as the main rows";
        rows.push(ns_row(
            "ours, blocked SYN IPv4".into(),
            &lru_ns,
            rotated_note,
        ));
        if pools {
            rows.push(ns_row(
                "ours with pools, blocked SYN IPv4".into(),
                &pool_ns,
                "rotated, the sources' records in the pool (array), not the LRU map",
            ));
        }
        for ((_, what), ns) in floors.iter().zip(&floor_ns) {
            rows.push(ns_row(
                format!("floor, {what}"),
                ns,
                "LRU-hash lookup + add, 1,048,576 entries as ours, same frames",
            ));
        }
        let smallest = floor_ns.last().map(Vec::as_slice).unwrap_or_default();
        let mut ratios = vec![("ours", &lru_ns)];
        if pools {
            ratios.push(("ours with pools", &pool_ns));
        }
        for (what, ns) in ratios {
            let per_run: Vec<f64> = ns.iter().zip(smallest).map(|(a, b)| a / b).collect();
            rows.push(
                Row::measured(
                    format!("working set: {what} / smallest floor, {count} sources [{label}]"),
                    &Stats::of(per_run),
                    "x",
                    ratio_target(count, smallest_allowlist),
                )
                .with_note(format!(
                    "median of per-run ratios, runs interleaved: {:.0} ns / {:.0} ns",
                    Stats::of(ns.clone()).median,
                    Stats::of(smallest.to_vec()).median
                )),
            );
        }
    }
    Ok(rows)
}

/// One rotated run of `repeat` executions: ns above the empty program.
fn one_run(rotated: &Rotated, name: &str, repeat: u32) -> Result<f64> {
    Ok(rotated.measure(name, 1, repeat, XDP_DROP)?.median)
}
