//! What the IPv4 destinations' host table gains: SMTP from subscribers to an allowed
//! destination host (`allow.destinations`, the ISP's relay beyond the edge), rotated over 4,096
//! subscribers and timed above the empty program, once with the host table the agent writes
//! and once with the table off, so the programs ask the destination trie.

use std::{net::Ipv4Addr, os::fd::AsFd, path::Path};

use anyhow::Result;

use super::{
    Scale,
    cases::XDP_PASS,
    dataplane::Dataplane,
    frames::{self, L4},
    measure::{NoHooks, Stats, measure, warm_up},
    report::{Row, Target},
};

/// The ISP's relay beyond the edge, and a second allowed host beside it.
const DESTINATIONS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 25),
    Ipv4Addr::new(203, 0, 113, 9),
];
const SUBSCRIBERS: u32 = 4_096;

pub fn rows(object: &Path, scale: &Scale) -> Result<Vec<Row>> {
    println!("allowed destinations: host table and trie, {SUBSCRIBERS} subscribers...");
    let empty = super::bpf_sys::load_empty_xdp()?;
    let frames: Vec<Vec<u8>> = (0..SUBSCRIBERS)
        .map(|n| {
            let smtp = L4::TcpSyn { dst_port: 25 };
            frames::ipv4(frames::subscriber_v4(n), DESTINATIONS[0], smtp)
        })
        .collect();
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for (host_table, how) in [(true, "host table"), (false, "trie")] {
        let mut dataplane = Dataplane::load(object)?;
        dataplane.allow_destination_hosts(&DESTINATIONS, host_table)?;
        let name = format!("allowed SMTP to a destination host IPv4, {how}");
        let program = dataplane.xdp_fd()?;
        warm_up(&name, program, empty.as_fd(), &frames, XDP_PASS)?;
        let measured = measure(
            &name,
            program,
            empty.as_fd(),
            &frames,
            scale.steady,
            XDP_PASS,
            &mut NoHooks,
        )?;
        medians.push(measured.headline().median);
        rows.push(
            Row::measured(
                format!("{name} [{SUBSCRIBERS} subscribers]"),
                measured.headline(),
                "ns",
                Target::Info,
            )
            .with_context(&measured),
        );
    }
    rows.push(
        Row::measured(
            "allowed destination host: trie - host table".to_string(),
            &Stats::of(vec![medians[1] - medians[0]]),
            "ns",
            Target::Info,
        )
        .with_note("what the host table saves on every SMTP packet to an allowed destination"),
    );
    Ok(rows)
}
