//! The whole bench in order: grow the allowlists through the spec's sizes, time every case at
//! each, run the peers beside them, then fill the subscriber table; derive the ratio rows.

use std::{
    os::fd::{AsFd, BorrowedFd},
    path::Path,
    time::Instant,
};

use anyhow::Result;
use egress_common::allow_kind;

use super::{
    Scale, agent, bpf_sys,
    cases::{self, Case, XDP_DROP},
    dataplane::Dataplane,
    measure::{Measured, NoHooks, Stats, measure},
    prefixes,
    report::{Row, Target},
    veth, xdp_filter,
};

pub fn collect(object: &Path, scale: &Scale) -> Result<Vec<Row>> {
    let empty = bpf_sys::load_empty_xdp()?;
    let largest = scale.prefix_steps.iter().copied().max().unwrap_or(10);
    let exempt_v4 = prefixes::exempt_v4(largest - 1);
    let exempt_v6 = prefixes::exempt_v6(largest - 1);
    let mut dataplane = Dataplane::load(object)?;
    let mut rows = Vec::new();
    let mut blocked = Vec::new();
    for (step, &size) in scale.prefix_steps.iter().enumerate() {
        let fresh = dataplane.prefixes - 1..size - 1;
        let started = Instant::now();
        dataplane.allow_v4(&exempt_v4[fresh.clone()], allow_kind::EXEMPT)?;
        dataplane.allow_v6(&exempt_v6[fresh.clone()], allow_kind::EXEMPT)?;
        dataplane.prefixes = size;
        rows.push(seconds_row(
            format!(
                "setup: insert {} IPv4 + {} IPv6 prefixes (map updates)",
                fresh.len(),
                fresh.len()
            ),
            started.elapsed().as_secs_f64(),
        ));
        let label = format!("{} pfx", short(size));
        let exempt = &exempt_v4[..size - 1];
        println!("measuring with {size} prefixes per family...");
        for case in Case::ALL {
            let measured = cases::run(case, &mut dataplane, empty.as_fd(), scale, exempt)?;
            if step == 0 && case == Case::FastTcp80V4 {
                rows.push(Row::measured(
                    "empty XDP program (harness, subtracted)",
                    &measured.empty,
                    "ns",
                    Target::Info,
                ));
            }
            if case == Case::BlockedTrackedV4 {
                blocked.push(measured.above_empty.median);
            }
            rows.push(case_row(
                case,
                &label,
                &measured,
                target(case, step == 0, false),
            ));
        }
        if step == 0 {
            let ours = last_median(&rows, Case::BlockedTrackedV4);
            rows.extend(peers(&mut dataplane, empty.as_fd(), scale, exempt, ours)?);
        }
        if size == scale.veth_step {
            println!("veth drop rate against nftables ({size} prefixes)...");
            rows.extend(veth_rows(
                &mut dataplane,
                &exempt_v4[..size - 1],
                &exempt_v6[..size - 1],
                scale,
            )?);
        }
    }
    rows.extend(growth(&blocked, scale));

    println!(
        "filling the subscriber table with {} records...",
        scale.tracked
    );
    let fill = dataplane.track_v4(scale.tracked)?;
    rows.push(seconds_row(
        format!(
            "setup: insert {} subscriber records (map updates)",
            scale.tracked
        ),
        fill.as_secs_f64(),
    ));
    let label = format!(
        "{} pfx + {} subs",
        short(largest),
        short(scale.tracked as usize)
    );
    let exempt = &exempt_v4[..largest - 1];
    for case in Case::ALL.into_iter().filter(|case| {
        case.is_fast_path()
            || matches!(
                case,
                Case::BlockedTrackedV4
                    | Case::BlockedTrackedV6
                    | Case::BlockedNewV4
                    | Case::BlockedNewV6
            )
    }) {
        let measured = cases::run(case, &mut dataplane, empty.as_fd(), scale, exempt)?;
        rows.push(case_row(case, &label, &measured, target(case, false, true)));
    }
    rows.extend(agent::rows());
    Ok(rows)
}

fn target(case: Case, smallest: bool, full_tables: bool) -> Target {
    match case {
        _ if case.is_fast_path() => Target::AtMost(5.0),
        Case::RelayV4 | Case::RelayV6 if smallest => Target::AtMost(40.0),
        Case::BlockedTrackedV4 | Case::BlockedTrackedV6 if smallest => Target::AtMost(40.0),
        Case::BlockedTrackedV4 | Case::BlockedTrackedV6 if full_tables => Target::AtMost(120.0),
        _ => Target::Info,
    }
}

fn case_row(case: Case, label: &str, measured: &Measured, target: Target) -> Row {
    Row::measured(
        format!("{} [{label}]", case.name()),
        &measured.above_empty,
        "ns",
        target,
    )
    .with_hot(measured.hot_above_empty.as_ref())
}

fn last_median(rows: &[Row], case: Case) -> f64 {
    rows.iter()
        .rev()
        .find(|row| row.case.starts_with(case.name()))
        .and_then(|row| row.median)
        .unwrap_or(f64::NAN)
}

fn seconds_row(case: String, seconds: f64) -> Row {
    Row::measured(case, &Stats::of(vec![seconds]), "s", Target::Info).with_note("one run")
}

/// xdp-filter timed on our blocked-path frames, and the ratio of the two costs above empty.
fn peers(
    dataplane: &mut Dataplane,
    empty: BorrowedFd<'_>,
    scale: &Scale,
    exempt: &[(std::net::Ipv4Addr, u8)],
    ours: f64,
) -> Result<Vec<Row>> {
    let _ = dataplane;
    let frames = cases::frames(Case::BlockedTrackedV4, scale, exempt);
    let mut rows = Vec::new();
    for (features, name, ratio_target) in [
        (None, "xdp-filter (default features)", Target::AtMost(0.3)),
        (Some("tcp"), "xdp-filter -f tcp", Target::Info),
    ] {
        println!("measuring {name} with one dst-port-25 rule...");
        let program = xdp_filter::load(features)?;
        let measured = measure(
            name,
            program.as_fd(),
            empty,
            &frames,
            scale.steady,
            XDP_DROP,
            &mut NoHooks,
        )?;
        rows.push(
            Row::measured(
                format!("{name}, port 25 rule, same SYN frames"),
                &measured.above_empty,
                "ns",
                Target::Info,
            )
            .with_hot(measured.hot_above_empty.as_ref()),
        );
        let ratio = Stats::of(vec![ours / measured.above_empty.median]);
        rows.push(
            Row::measured(
                format!("ours / {name} (blocked SYN, above empty)"),
                &ratio,
                "x",
                ratio_target,
            )
            .with_note("ratio of medians"),
        );
    }
    Ok(rows)
}

fn veth_rows(
    dataplane: &mut Dataplane,
    allow_v4: &[(std::net::Ipv4Addr, u8)],
    allow_v6: &[(std::net::Ipv6Addr, u8)],
    scale: &Scale,
) -> Result<Vec<Row>> {
    let mut all_v4 = vec![super::frames::RELAY_PREFIX_V4];
    all_v4.extend_from_slice(allow_v4);
    let mut all_v6 = vec![super::frames::RELAY_PREFIX_V6];
    all_v6.extend_from_slice(allow_v6);
    let rates = veth::compare(dataplane, &all_v4, &all_v6, &scale.blast, scale.runs)?;
    let ratios: Vec<f64> = rates
        .xdp
        .iter()
        .zip(&rates.nftables)
        .map(|(xdp, nft)| xdp / nft)
        .collect();
    let mpps = |rates: &[f64]| Stats::of(rates.iter().map(|rate| rate / 1e6).collect());
    let size = short(all_v4.len());
    Ok(vec![
        Row::measured(
            format!("veth drop rate, ours (native XDP) [{size} pfx]"),
            &mpps(&rates.xdp),
            "Mpps",
            Target::Info,
        ),
        Row::measured(
            format!("veth drop rate, nftables netdev ingress [{size} pfx]"),
            &mpps(&rates.nftables),
            "Mpps",
            Target::Info,
        ),
        Row::measured(
            "veth drop rate, ours / nftables",
            &Stats::of(ratios),
            "x",
            Target::AtLeast(2.0),
        )
        .with_note("per-round ratios"),
    ])
}

fn growth(blocked: &[f64], scale: &Scale) -> Vec<Row> {
    match (
        blocked.first(),
        blocked.last(),
        scale.prefix_steps.first(),
        scale.prefix_steps.last(),
    ) {
        (Some(small), Some(large), Some(from), Some(to)) if blocked.len() > 1 => vec![
            Row::measured(
                format!(
                    "growth {} -> {} prefixes, blocked SYN IPv4",
                    short(*from),
                    short(*to)
                ),
                &Stats::of(vec![large / small]),
                "x",
                Target::AtMost(2.0),
            )
            .with_note("ratio of medians"),
        ],
        _ => Vec::new(),
    }
}

/// 10, 10k, 1M.
fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
