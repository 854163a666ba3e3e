//! Per-subscriber records and ring-buffer events after blocked SMTP packets.

use crate::frames::*;
use egress_common::{EventKind, SubscriberEvent, destination_bit};
use tests::{
    dataplane::{Dataplane, Hook, Policy, Verdict, ipv4_subscriber, ipv6_subscriber},
    packet::{Eth, Ipv4, Ipv6, Tcp, flags::*},
};

fn widened(address: [u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&address);
    out
}

fn kinds(events: &[SubscriberEvent]) -> Vec<u32> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn blocked_syn_creates_a_record_and_a_first_seen_event() {
    let mut dp = Dataplane::load(&[25]);
    assert_eq!(dp.run(Hook::Xdp, &syn4(25)), Verdict::Drop);
    let key = ipv4_subscriber(SUB4);
    let record = dp
        .subscriber(&key)
        .expect("a record for the blocked subscriber");
    assert_eq!((record.attempts, record.packets, record.bytes), (1, 1, 40));
    assert!(record.first_seen_ns > 0);
    assert_eq!(record.first_seen_ns, record.last_seen_ns);
    assert_ne!(record.destinations, [0, 0], "destination estimate empty");

    let events = dp.drain_events();
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    let event = events[0];
    assert_eq!(event.kind, EventKind::FirstSeen as u32);
    assert_eq!(event.subscriber, key);
    assert_eq!(event.dst_port, 25);
    assert_eq!(event.destination, widened(MX4));
    assert_eq!(event.timestamp_ns, record.first_seen_ns);

    // Later segments update the same record through either program, without new events;
    // only SYN without ACK counts as a connection attempt.
    let segments = [
        (Hook::Tc, ACK, 2, 1),
        (Hook::Xdp, SYN | ECE | CWR, 3, 2),
        (Hook::Tc, SYN | ACK, 4, 2),
        (Hook::Xdp, RST, 5, 2),
        (Hook::Tc, FIN | ACK, 6, 2),
        (Hook::Xdp, SYN | FIN, 7, 3),
    ];
    for (hook, flags, packets, attempts) in segments {
        assert_eq!(
            dp.run(hook, &tcp4(Tcp::syn(25).flags(flags))),
            Verdict::Drop
        );
        let now = dp.subscriber(&key).expect("record kept");
        assert_eq!(
            (now.packets, now.attempts, now.bytes),
            (packets, attempts, 40 * packets),
            "after flags {flags:#04x} via {hook:?}"
        );
        assert_eq!(now.first_seen_ns, record.first_seen_ns);
        assert!(now.last_seen_ns >= record.last_seen_ns);
    }
    let fast_open = tcp4(Tcp::syn(25).payload(&[0x55; 100]));
    dp.run(Hook::Xdp, &fast_open);
    let now = dp.subscriber(&key).expect("record kept");
    assert_eq!((now.attempts, now.bytes), (4, 40 * 7 + 140));
    assert_eq!(
        dp.drain_events(),
        Vec::new(),
        "no event for a known subscriber"
    );
}

#[test]
fn allowed_and_non_smtp_traffic_leaves_no_record() {
    let mut dp = Dataplane::load(&[25]);
    dp.apply(
        &Policy::default()
            .relay("192.0.2.10")
            .destination("203.0.113.99"),
    );
    let relay = Eth::new().ipv4(Ipv4::new(RELAY4, MX4).tcp(Tcp::syn(25)));
    let to_allowed = Eth::new().ipv4(Ipv4::new(SUB4, [203, 0, 113, 99]).tcp(Tcp::syn(25)));
    let tiny = Eth::new().ipv4(ip4().fragment(0, true).payload(6, &[0; 8]));
    for frame in [syn4(80), syn4(587), syn6(465), relay, to_allowed, tiny] {
        for hook in Hook::BOTH {
            dp.run(hook, &frame);
        }
    }
    assert_eq!(dp.subscribers(), Vec::new());
    assert_eq!(dp.drain_events(), Vec::new());
}

#[test]
fn monitor_mode_records_subscribers_too() {
    let mut dp = Dataplane::load(&[25]);
    dp.apply(&Policy::monitor());
    assert_eq!(dp.run(Hook::Tc, &syn4(25)), Verdict::Pass);
    let record = dp
        .subscriber(&ipv4_subscriber(SUB4))
        .expect("record in monitor mode");
    assert_eq!((record.attempts, record.packets), (1, 1));
    assert_eq!(kinds(&dp.drain_events()), [EventKind::FirstSeen as u32]);
}

fn syn_from6(source: [u8; 16]) -> Vec<u8> {
    Eth::new().ipv6(Ipv6::new(source, MX6).tcp(Tcp::syn(25)))
}

#[test]
fn ipv6_subscribers_aggregate_to_64_by_default() {
    let mut dp = Dataplane::load(&[25]);
    let same_64 = v6([0x2001, 0xdb8, 0x100, 1, 0xaaaa, 0, 0, 9]);
    let other_64 = v6([0x2001, 0xdb8, 0x100, 2, 0, 0, 0, 7]);
    for source in [SUB6, same_64, other_64] {
        assert_eq!(dp.run(Hook::Xdp, &syn_from6(source)), Verdict::Drop);
    }
    let key = ipv6_subscriber(SUB6, 64);
    assert_eq!(key.addr, v6([0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0]));
    let record = dp.subscriber(&key).expect("one record for the /64");
    assert_eq!((record.attempts, record.packets, record.bytes), (2, 2, 120));
    assert!(dp.subscriber(&ipv6_subscriber(other_64, 64)).is_some());
    assert_eq!(dp.subscribers().len(), 2);
    let events = dp.drain_events();
    assert_eq!(events.len(), 2, "one FirstSeen per /64: {events:?}");
    assert_eq!(events[0].subscriber, key);
}

#[test]
fn ipv6_aggregation_follows_the_configured_length() {
    let mut dp = Dataplane::load(&[25]);
    dp.apply(&Policy {
        ipv6_prefix_len: 56,
        ..Policy::default()
    });
    let same_56 = v6([0x2001, 0xdb8, 0x100, 0xff, 0, 0, 0, 1]);
    let other_56 = v6([0x2001, 0xdb8, 0x100, 0x100, 0, 0, 0, 1]);
    for source in [SUB6, same_56, other_56] {
        dp.run(Hook::Tc, &syn_from6(source));
    }
    let key = ipv6_subscriber(SUB6, 56);
    assert_eq!(key.prefix_len, 56);
    let record = dp.subscriber(&key).expect("one record for the /56");
    assert_eq!(record.packets, 2);
    assert!(dp.subscriber(&ipv6_subscriber(other_56, 56)).is_some());
    assert!(dp.subscriber(&ipv6_subscriber(SUB6, 64)).is_none());
}

#[test]
fn crossing_the_attempts_threshold_emits_one_flagged_event() {
    let mut dp = Dataplane::load(&[25]);
    dp.apply(&Policy {
        attempts_threshold: 3,
        ..Policy::default()
    });
    for _ in 0..2 {
        dp.run(Hook::Xdp, &syn4(25));
    }
    // ACKs are not attempts and must not flag.
    dp.run(Hook::Xdp, &tcp4(Tcp::syn(25).flags(ACK)));
    assert_eq!(kinds(&dp.drain_events()), [EventKind::FirstSeen as u32]);
    dp.run(Hook::Xdp, &syn4(25));
    let events = dp.drain_events();
    assert_eq!(kinds(&events), [EventKind::Flagged as u32]);
    assert_eq!(events[0].subscriber, ipv4_subscriber(SUB4));
    for _ in 0..3 {
        dp.run(Hook::Tc, &syn4(25));
    }
    assert_eq!(dp.drain_events(), Vec::new(), "flagged once per window");
    let record = dp.subscriber(&ipv4_subscriber(SUB4)).expect("record");
    assert_ne!(record.flagged_ns, 0);
    assert_eq!(record.window_attempts, 6);
}

#[test]
fn crossing_the_destination_threshold_emits_a_flagged_event() {
    let mut dp = Dataplane::load(&[25]);
    dp.apply(&Policy {
        destination_bits_threshold: 4,
        ..Policy::default()
    });
    // Four destinations that land on four different bitmap bits.
    let mut bits = Vec::new();
    let destinations: Vec<[u8; 4]> = (1..=250u8)
        .map(|host| [203, 0, 113, host])
        .filter(|d| {
            let bit = destination_bit(&widened(*d));
            let new = !bits.contains(&bit);
            bits.push(bit);
            new
        })
        .take(4)
        .collect();
    for (i, destination) in destinations.iter().enumerate() {
        dp.run(
            Hook::Xdp,
            &Eth::new().ipv4(Ipv4::new(SUB4, *destination).tcp(Tcp::syn(25))),
        );
        let expected = if i < 3 {
            vec![]
        } else {
            vec![EventKind::Flagged as u32]
        };
        let mut got = kinds(&dp.drain_events());
        got.retain(|&k| k != EventKind::FirstSeen as u32);
        assert_eq!(got, expected, "after destination {}", i + 1);
    }
}
