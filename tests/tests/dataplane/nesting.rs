//! Nested IPv4 source prefixes through the source index (DIR-24-8: one slot per /24, a block
//! of 256 entries for a /24 that holds longer prefixes): every boundary of a /8, /23, /24,
//! /25, /31 and /32 nest, relays inside exempt ranges and the other way round, judged by XDP
//! and TC exactly as the host model's plain longest-prefix match says. Also: a policy change
//! rewrites the index (nothing left over), the second-level blocks follow each prefix's
//! removal, and a /24 beyond the last block is judged by the trie.

use egress_common::{PortSet, index};
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

/// A /16 covering a /24 that holds a /25, a /28 and a /32, each of another kind.
const BLOCK_NEST: [(&str, bool); 5] = [
    ("100.66.0.0/16", false),
    ("100.66.7.0/24", true),
    ("100.66.7.128/25", false),
    ("100.66.7.240/28", true),
    ("100.66.7.247/32", false),
];

fn block_nest(skip: Option<usize>) -> Policy {
    BLOCK_NEST
        .iter()
        .enumerate()
        .filter(|(n, _)| Some(*n) != skip)
        .fold(Policy::default(), |policy, (_, (cidr, relay))| {
            if *relay {
                policy.relay(cidr)
            } else {
                policy.exempt(cidr)
            }
        })
}

#[test]
fn second_level_blocks_follow_each_prefix_removed_and_put_back() {
    let mut dataplane = Dataplane::load(&[25]);
    let all = block_nest(None);
    let addresses = probes(&all);
    dataplane.apply(&all);
    check_all(&mut dataplane, &all, &addresses);
    let in_the_24 = [100, 66, 7, 1];
    assert!(
        index::is_indirect(dataplane.index_slot(in_the_24)),
        "the /24 holding longer prefixes has a block"
    );
    for gone in 0..BLOCK_NEST.len() {
        let without = block_nest(Some(gone));
        dataplane.apply(&without);
        check_all(&mut dataplane, &without, &addresses);
        dataplane.apply(&all);
        check_all(&mut dataplane, &all, &addresses);
    }
    // Only the /24 and the /16 left: the /24 needs no block any more.
    let short_only = Policy::default()
        .exempt("100.66.0.0/16")
        .relay("100.66.7.0/24");
    dataplane.apply(&short_only);
    check_all(&mut dataplane, &short_only, &addresses);
    assert!(!index::is_indirect(dataplane.index_slot(in_the_24)));
}

#[test]
fn a_24_beyond_the_last_block_is_judged_by_the_trie() {
    let mut dataplane = Dataplane::load(&[25]);
    // One /32 relay in each of BLOCKS + 1 /24s of 100.64.0.0/10, an exempt /16 around the last.
    let mut policy = (0..=index::BLOCKS).fold(Policy::default(), |policy, n| {
        let addr = 0x6440_0001u32 + (n << 8);
        policy.relay(&format!("{}/32", std::net::Ipv4Addr::from(addr)))
    });
    let last = 0x6440_0001u32 + (index::BLOCKS << 8);
    let last_16 = std::net::Ipv4Addr::from(last & 0xffff_0000);
    policy = policy.exempt(&format!("{last_16}/16"));
    dataplane.apply(&policy);
    assert_eq!(dataplane.index_slot(last.to_be_bytes()), index::TRIE);
    let addresses: Vec<[u8; 4]> = [0x6440_0001, 0x6440_0002, last, last + 1, last - 1]
        .iter()
        .map(|a: &u32| a.to_be_bytes())
        .collect();
    check_all(&mut dataplane, &policy, &addresses);
}
