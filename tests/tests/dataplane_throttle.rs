//! The inbound throttle's token bucket, exactly, in the real kernel. The test run cannot move
//! the kernel's clock, so the config's test clock (`InboundConfig::clock_ns`, which the agent
//! never sets) stands in for it: each SYN is run at a chosen instant and the verdicts must be
//! those of a reference token bucket.

use egress_common::inbound::{InboundCounter, ThrottleBucket};
use tests::{
    dataplane::Verdict,
    inbound::{Inbound, InboundPolicy},
    packet::{Eth, Ipv4, Ipv6, Tcp},
};

const CHECKER4: [u8; 4] = [192, 0, 2, 40];
const CHECKER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40,
];
const T0: u64 = 1_000_000_000_000;
const MS: u64 = 1_000_000;

fn policy() -> InboundPolicy {
    InboundPolicy::default()
        .throttle("192.0.2.40/32")
        .throttle("2001:db8:1::40/128")
        .rate(10, 40)
}

fn syn_from(source: [u8; 4]) -> Vec<u8> {
    Eth::new().ipv4(Ipv4::new(source, CHECKER4).tcp(Tcp::syn(25)))
}

fn syn6_from(source: [u8; 16]) -> Vec<u8> {
    Eth::new().ipv6(Ipv6::new(source, CHECKER6).tcp(Tcp::syn(25)))
}

/// Runs `frame` at `at` ns.
fn at(inbound: &mut Inbound, policy: &InboundPolicy, at: u64, frame: &[u8]) -> Verdict {
    inbound.set_clock(policy, at);
    inbound.run(frame)
}

/// A token bucket counted in nanoseconds of credit: `burst` SYNs of `interval` each, refilled
/// one nanosecond per nanosecond.
struct Reference {
    credit: u64,
    last: u64,
    interval: u64,
    capacity: u64,
}

impl Reference {
    fn new(rate: u64, burst: u64, now: u64) -> Reference {
        let interval = 1_000_000_000 / rate;
        Reference {
            credit: burst * interval,
            last: now,
            interval,
            capacity: burst * interval,
        }
    }
    fn admit(&mut self, now: u64) -> bool {
        self.credit = (self.credit + (now - self.last)).min(self.capacity);
        self.last = now;
        if self.credit >= self.interval {
            self.credit -= self.interval;
            true
        } else {
            false
        }
    }
}

#[test]
fn a_burst_then_one_syn_per_interval() {
    let policy = policy();
    let mut inbound = Inbound::load(&[25], 4096);
    inbound.apply(&policy);
    let source = [203, 0, 113, 7];
    let frame = syn_from(source);
    for n in 0..40 {
        assert_eq!(
            at(&mut inbound, &policy, T0, &frame),
            Verdict::Pass,
            "SYN {n} of the burst"
        );
    }
    assert_eq!(
        at(&mut inbound, &policy, T0, &frame),
        Verdict::Drop,
        "SYN 41 exceeds the burst"
    );
    // Segments other than SYN-without-ACK are never throttled.
    for flags in [0x12u8, 0x10, 0x04, 0x11, 0x18] {
        let other = Eth::new().ipv4(Ipv4::new(source, CHECKER4).tcp(Tcp::syn(25).flags(flags)));
        assert_eq!(
            at(&mut inbound, &policy, T0, &other),
            Verdict::Pass,
            "flags {flags:#x}"
        );
    }
    assert_eq!(
        at(&mut inbound, &policy, T0 + 100 * MS - 1, &frame),
        Verdict::Drop,
        "1 ns early"
    );
    assert_eq!(
        at(&mut inbound, &policy, T0 + 100 * MS, &frame),
        Verdict::Pass,
        "one token back"
    );
    assert_eq!(
        at(&mut inbound, &policy, T0 + 100 * MS, &frame),
        Verdict::Drop,
        "and only one"
    );
    // Another source has its own bucket.
    assert_eq!(
        at(
            &mut inbound,
            &policy,
            T0 + 100 * MS,
            &syn_from([203, 0, 113, 8])
        ),
        Verdict::Pass
    );
    // A long pause refills to the burst, not beyond.
    let later = T0 + 3600 * 1000 * MS;
    for n in 0..40 {
        assert_eq!(
            at(&mut inbound, &policy, later, &frame),
            Verdict::Pass,
            "refilled SYN {n}"
        );
    }
    assert_eq!(
        at(&mut inbound, &policy, later, &frame),
        Verdict::Drop,
        "capped at the burst"
    );
    let counters = inbound.counters();
    assert_eq!(counters.get(InboundCounter::ThrottledV4), 4);
    assert_eq!(counters.get(InboundCounter::DroppedV4), 0);
    let bucket = inbound
        .buckets()
        .into_iter()
        .find(|(key, _)| key.addr[..4] == source)
        .map(|(_, bucket)| bucket);
    assert!(
        matches!(bucket, Some(ThrottleBucket { throttled: 4, .. })),
        "{bucket:?}"
    );
}

#[test]
fn verdicts_follow_a_reference_bucket_over_irregular_spacing() {
    let policy = policy().rate(7, 5);
    let mut inbound = Inbound::load(&[25], 4096);
    inbound.apply(&policy);
    let frame = syn_from([203, 0, 113, 9]);
    let mut reference = Reference::new(7, 5, T0);
    let mut now = T0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut passed, mut dropped) = (0, 0);
    for n in 0..2000 {
        // Gaps from 0 to about 300 ms, many of them zero: bursts and lulls.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let gap = match seed >> 60 {
            0..=5 => 0,
            _ => (seed >> 20) % (300 * MS),
        };
        now += gap;
        let want = if reference.admit(now) {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        assert_eq!(
            at(&mut inbound, &policy, now, &frame),
            want,
            "SYN {n} at +{} ns",
            now - T0
        );
        match want {
            Verdict::Pass => passed += 1,
            Verdict::Drop => dropped += 1,
        }
    }
    assert!(
        passed > 100 && dropped > 100,
        "the sequence exercised both: {passed} / {dropped}"
    );
    assert_eq!(inbound.counters().get(InboundCounter::ThrottledV4), dropped);
}

#[test]
fn ipv6_sources_share_a_bucket_per_slash_64_and_monitor_mode_passes() {
    let policy = policy().rate(1, 2).monitor();
    let mut inbound = Inbound::load(&[25], 4096);
    inbound.apply(&policy);
    let a = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let mut b = a;
    b[15] = 2; // same /64
    let mut c = a;
    c[7] = 2; // another /64
    for frame in [syn6_from(a), syn6_from(b), syn6_from(a), syn6_from(c)] {
        assert_eq!(
            at(&mut inbound, &policy, T0, &frame),
            Verdict::Pass,
            "monitor mode passes"
        );
    }
    // a, b used the /64's burst of 2; the third SYN (a again) was over it; c has its own.
    assert_eq!(inbound.counters().get(InboundCounter::ThrottledV6), 1);
    assert_eq!(inbound.buckets().len(), 2);
    let enforce = InboundPolicy {
        mode: egress_common::Mode::Enforce,
        ..policy
    };
    assert_eq!(at(&mut inbound, &enforce, T0, &syn6_from(b)), Verdict::Drop);
}

#[test]
fn spoofed_sources_stay_within_the_bounded_map() {
    const MAX_SOURCES: u32 = 16_384;
    const SPOOFED: u32 = 200_000;
    let policy = policy().rate(1, 1);
    let mut inbound = Inbound::load(&[25], MAX_SOURCES);
    inbound.apply(&policy);
    inbound.set_clock(&policy, T0);
    let mut frame = syn_from([100, 64, 0, 0]);
    let source_at = 14 + 12;
    for n in 0..SPOOFED {
        // 100.64.0.0/10 holds 4M addresses: every SYN comes from a new source.
        let address = u32::from_be_bytes([100, 64, 0, 0]) + n;
        frame[source_at..source_at + 4].copy_from_slice(&address.to_be_bytes());
        assert_eq!(
            inbound.run(&frame),
            Verdict::Pass,
            "first SYN of spoofed source {n}"
        );
    }
    let held = inbound.buckets().len() as u32;
    assert!(
        held <= MAX_SOURCES && held > MAX_SOURCES / 2,
        "{held} buckets for max {MAX_SOURCES}"
    );
    // The newest sources are remembered: a second SYN from the last one is over its burst of 1.
    assert_eq!(inbound.run(&frame), Verdict::Drop);
    assert_eq!(inbound.counters().get(InboundCounter::ThrottledV4), 1);
}
