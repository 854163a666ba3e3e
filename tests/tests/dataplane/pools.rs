//! Subscriber pools: a blocked packet from a pool address is recorded in that address's slot
//! of the pools' records, with the events and thresholds of the LRU map's records; a source
//! outside every pool is counted and recorded in the LRU map.

use crate::frames::*;
use egress_common::{Counter, EventKind, SubscriberRecord, pools::PoolTable};
use tests::{
    dataplane::{Dataplane, Hook, Policy, Verdict, ipv4_subscriber, ipv6_subscriber},
    packet::{Tcp, flags::*},
};

/// 100.64.1.0/24 (holds SUB4 = 100.64.1.7, slot 7) after 192.0.2.0/24 (slots 0..256).
fn pools() -> PoolTable {
    PoolTable::of([(0xc000_0200, 24), (u32::from_be_bytes([100, 64, 1, 0]), 24)])
}

const SUB4_SLOT: u32 = 256 + 7;

fn kinds(dp: &mut Dataplane) -> Vec<u32> {
    dp.drain_events().iter().map(|e| e.kind).collect()
}

#[test]
fn a_pool_subscriber_is_recorded_in_its_slot_not_in_the_lru_map() {
    let mut dp = Dataplane::load_with_pools(&[25], &pools());
    assert_eq!(dp.pool_record(SUB4_SLOT), SubscriberRecord::default());
    assert_eq!(dp.run(Hook::Xdp, &syn4(25)), Verdict::Drop);
    let record = dp.pool_record(SUB4_SLOT);
    assert_eq!((record.attempts, record.packets, record.bytes), (1, 1, 40));
    assert!(record.first_seen_ns > 0);
    assert_ne!(record.destinations, [0, 0]);
    assert_eq!(
        dp.subscriber(&ipv4_subscriber(SUB4)),
        None,
        "not in the LRU map"
    );
    let events = dp.drain_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::FirstSeen as u32);
    assert_eq!(events[0].subscriber, ipv4_subscriber(SUB4));

    assert_eq!(
        dp.run(Hook::Tc, &tcp4(Tcp::syn(25).flags(ACK))),
        Verdict::Drop
    );
    let now = dp.pool_record(SUB4_SLOT);
    assert_eq!((now.attempts, now.packets, now.bytes), (1, 2, 80));
    assert_eq!(now.first_seen_ns, record.first_seen_ns);
    assert_eq!(
        kinds(&mut dp),
        Vec::<u32>::new(),
        "no event for a known subscriber"
    );
    assert_eq!(dp.pool_record(SUB4_SLOT - 1), SubscriberRecord::default());
    assert_eq!(dp.pool_record(SUB4_SLOT + 1), SubscriberRecord::default());
    assert_eq!(dp.counters().get(Counter::OutsidePools), 0);
    assert_eq!(dp.counters().get(Counter::DroppedV4), 2);
}

#[test]
fn a_source_outside_the_pools_is_counted_and_kept_in_the_lru_map() {
    let outside = PoolTable::of([(0xc000_0200, 24)]);
    let mut dp = Dataplane::load_with_pools(&[25], &outside);
    assert_eq!(dp.run(Hook::Xdp, &syn4(25)), Verdict::Drop);
    let record = dp
        .subscriber(&ipv4_subscriber(SUB4))
        .expect("an LRU record");
    assert_eq!(record.packets, 1);
    assert_eq!(dp.counters().get(Counter::OutsidePools), 1);
    assert_eq!(kinds(&mut dp), [EventKind::FirstSeen as u32]);
    // IPv6 has no pools: not counted as outside them.
    assert_eq!(dp.run(Hook::Xdp, &syn6(25)), Verdict::Drop);
    assert!(dp.subscriber(&ipv6_subscriber(SUB6, 64)).is_some());
    assert_eq!(dp.counters().get(Counter::OutsidePools), 1);
}

#[test]
fn without_pools_nothing_is_counted_outside_them() {
    let mut dp = Dataplane::load(&[25]);
    assert_eq!(dp.run(Hook::Xdp, &syn4(25)), Verdict::Drop);
    assert!(dp.subscriber(&ipv4_subscriber(SUB4)).is_some());
    assert_eq!(dp.counters().get(Counter::OutsidePools), 0);
}

#[test]
fn a_pool_subscriber_crosses_the_attempts_threshold_once() {
    let mut dp = Dataplane::load_with_pools(&[25], &pools());
    dp.apply(&Policy {
        attempts_threshold: 3,
        ..Policy::default()
    });
    for _ in 0..2 {
        dp.run(Hook::Xdp, &syn4(25));
    }
    assert_eq!(kinds(&mut dp), [EventKind::FirstSeen as u32]);
    dp.run(Hook::Xdp, &syn4(25));
    let events = dp.drain_events();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Flagged as u32]
    );
    assert_eq!(events[0].subscriber, ipv4_subscriber(SUB4));
    for _ in 0..3 {
        dp.run(Hook::Tc, &syn4(25));
    }
    assert_eq!(kinds(&mut dp), Vec::<u32>::new(), "flagged once per window");
    let record = dp.pool_record(SUB4_SLOT);
    assert_ne!(record.flagged_ns, 0);
    assert_eq!(record.window_attempts, 6);
}

#[test]
fn a_first_packet_over_a_threshold_flags_at_once_in_either_store() {
    for pools in [PoolTable::default(), pools()] {
        let mut dp = Dataplane::load_with_pools(&[25], &pools);
        dp.apply(&Policy {
            attempts_threshold: 1,
            ..Policy::default()
        });
        dp.run(Hook::Xdp, &syn4(25));
        assert_eq!(
            kinds(&mut dp),
            [EventKind::FirstSeen as u32, EventKind::Flagged as u32],
            "pools: {}",
            pools.count
        );
        dp.run(Hook::Xdp, &syn4(25));
        assert_eq!(kinds(&mut dp), Vec::<u32>::new(), "pools: {}", pools.count);
    }
}

#[test]
fn an_allowed_pool_source_leaves_its_slot_empty() {
    let mut dp = Dataplane::load_with_pools(&[25], &pools());
    dp.apply(&Policy::default().exempt("100.64.1.7/32"));
    assert_eq!(dp.run(Hook::Xdp, &syn4(25)), Verdict::Pass);
    assert_eq!(dp.pool_record(SUB4_SLOT), SubscriberRecord::default());
    assert_eq!(dp.drain_events(), Vec::new());
}
