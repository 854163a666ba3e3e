//! Nested IPv4 source prefixes through the source index (one slot per /24 plus a hash per
//! longer length): every boundary of a /8, /23, /24, /25, /31 and /32 nest, relays inside
//! exempt ranges and the other way round, judged by XDP and TC exactly as the host model's
//! plain longest-prefix match says. Also: a policy change rewrites the index (nothing
//! left over), and a /24 with long prefixes of several lengths probes them longest first.

use egress_common::PortSet;
use tests::{
    dataplane::{Dataplane, Hook, Policy, model},
    packet::{Eth, Ipv4, Tcp},
};

/// Relays inside exempt ranges inside relays, and back: 100.64.0.0/10 region.
fn nested() -> Policy {
    Policy::default()
        .exempt("100.0.0.0/8")
        .relay("100.64.2.0/23")
        .exempt("100.64.3.0/24")
        .relay("100.64.3.128/25")
        .exempt("100.64.3.192/31")
        .relay("100.64.3.193/32")
        .relay("100.64.9.0/24")
        .exempt("100.64.9.64/26")
        .relay("100.64.9.66/31")
        .exempt("100.64.9.67/32")
        .exempt("100.64.9.200/29")
        .exempt("100.70.0.0/16")
        .relay("100.70.0.0/16")
}

/// Every prefix's first and last address and their neighbours, plus a spread of addresses.
fn probes(policy: &Policy) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    for entry in &policy.allow {
        let ipnet::IpNet::V4(net) = entry.prefix else {
            continue;
        };
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        for addr in [
            first.wrapping_sub(1),
            first,
            first + 1,
            last - 1,
            last,
            last.wrapping_add(1),
        ] {
            out.push(addr.to_be_bytes());
        }
    }
    for n in 0..512u32 {
        out.push((0x6440_0000 + n * 0x1_0101).to_be_bytes());
    }
    out
}

/// Judges every probe address under `applied`, the policy the dataplane holds.
fn check_all(dataplane: &mut Dataplane, applied: &Policy, probes: &[[u8; 4]]) {
    let mut failures = Vec::new();
    for &source in probes {
        let frame = Eth::new().ipv4(Ipv4::new(source, [203, 0, 113, 25]).tcp(Tcp::syn(25)));
        let want = model::judge(&frame, &PortSet::DEFAULT, applied);
        for hook in Hook::BOTH {
            let before = dataplane.counters();
            let verdict = dataplane.run(hook, &frame);
            let counters: Vec<_> = dataplane
                .counters()
                .since(&before)
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            if verdict != want.verdict || counters != want.counters {
                failures.push(format!(
                    "{source:?} {hook:?}: {verdict:?} {counters:?}, model {:?} {:?}",
                    want.verdict, want.counters
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nested_ipv4_sources_agree_with_longest_prefix_match() {
    let mut dataplane = Dataplane::load(&[25]);
    let policy = nested();
    let addresses = probes(&policy);
    dataplane.apply(&policy);
    check_all(&mut dataplane, &policy, &addresses);

    // A narrower policy: what the first one allowed must be gone from the index.
    let narrower = Policy::default()
        .relay("100.64.3.193/32")
        .exempt("100.64.9.0/25");
    dataplane.apply(&narrower);
    check_all(&mut dataplane, &narrower, &addresses);

    // Back to nothing: every probe is dropped.
    dataplane.apply(&Policy::default());
    check_all(&mut dataplane, &Policy::default(), &addresses);
}
