//! The growth row: the blocked path with the smallest and the largest allowlist, measured in
//! interleaved runs of the same bench (two loaded copies of the program, each with its own
//! maps), so this machine's slow swings in speed fall on both alike. Comparing two medians
//! taken minutes apart made the ratio swing between 0.5 and 2.4 from run to run.

use std::os::fd::AsFd;

use anyhow::Result;

use super::{
    Scale,
    cases::{self, Case, XDP_DROP},
    dataplane::Dataplane,
    measure::{Stats, warm_up},
    report::{Row, Target},
    rotate::Rotated,
    rows::short,
};

pub fn row(small: &Dataplane, large: &Dataplane, scale: &Scale) -> Result<Row> {
    let frames = cases::frames(Case::BlockedTrackedV4, scale, &[]);
    let name = Case::BlockedTrackedV4.name();
    let empty = super::bpf_sys::load_empty_xdp()?;
    let mut rotated = Vec::new();
    for dataplane in [small, large] {
        let program = dataplane.xdp_fd()?;
        warm_up(name, program, empty.as_fd(), &frames, XDP_DROP)?;
        rotated.push(Rotated::new(program, &frames)?);
    }
    let (mut ratios, mut small_ns, mut large_ns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..scale.runs {
        let repeat = scale.steady.hot_repeat;
        let at_small = rotated[0].measure(name, 1, repeat, XDP_DROP)?.median;
        let at_large = rotated[1].measure(name, 1, repeat, XDP_DROP)?.median;
        ratios.push(at_large / at_small);
        small_ns.push(at_small);
        large_ns.push(at_large);
    }
    let (from, to) = (short(small.prefixes), short(large.prefixes));
    Ok(Row::measured(
        format!("growth {from} -> {to} prefixes, blocked SYN IPv4"),
        &Stats::of(ratios),
        "x",
        Target::AtMost(2.0),
    )
    .with_note(format!(
        "median of per-run ratios, runs interleaved: {:.0} ns [{from} pfx] -> {:.0} ns [{to} pfx]",
        Stats::of(small_ns).median,
        Stats::of(large_ns).median
    )))
}
