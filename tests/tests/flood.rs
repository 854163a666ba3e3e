//! Spoofed flood (issue 7 item 3, dataplane part): 200,000 distinct sources, half IPv4, half
//! IPv6 (each in its own /64, so aggregation cannot fold them), send SYNs to port 25 through
//! the XDP program with BPF_PROG_TEST_RUN. Every packet must be dropped, the subscriber map
//! must stay within its capacity, and every first-seen insertion must be either delivered as
//! a ring-buffer event or counted as suppressed: the ring buffer is bounded and loses nothing
//! silently.

use egress_common::{Counter, EventKind, SubscriberEvent};
use tests::{
    dataplane::{Dataplane, Hook, TEST_MAX_TRACKED, Verdict, ipv4_subscriber, ipv6_subscriber},
    packet::{Eth, Ipv4, Ipv6, Tcp},
};

const SOURCES_PER_FAMILY: u32 = 100_000;
/// How often the map is counted and, in the first half, the ring buffer drained.
const CHECK_EVERY: u32 = 1_000;
const MX_V4: [u8; 4] = [198, 51, 100, 25];
const MX_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25,
];

/// Distinct sources in 100.64.0.0/10 (shared address space, as behind a CGNAT).
fn ipv4_source(n: u32) -> [u8; 4] {
    let host = 0x6440_0000 | (n + 1);
    host.to_be_bytes()
}

/// Distinct /64s in 2001:db8::/32.
fn ipv6_source(n: u32) -> [u8; 16] {
    let mut address = [0u8; 16];
    address[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    address[4..8].copy_from_slice(&n.to_be_bytes());
    address[15] = 1;
    address
}

struct Flood {
    dataplane: Dataplane,
    delivered: Vec<SubscriberEvent>,
    largest_map: usize,
}

impl Flood {
    fn send(&mut self, frame: &[u8], index: u32, drain: bool) {
        assert_eq!(
            self.dataplane.run(Hook::Xdp, frame),
            Verdict::Drop,
            "spoofed SYN #{index} to port 25 was not dropped"
        );
        if index.is_multiple_of(CHECK_EVERY) {
            self.largest_map = self.largest_map.max(self.dataplane.subscribers().len());
            if drain {
                let events = self.dataplane.drain_events();
                self.delivered.extend(events);
            }
        }
    }
}

#[test]
fn spoofed_sources_are_dropped_and_bounded() {
    let mut flood = Flood {
        dataplane: Dataplane::load(&[25]),
        delivered: Vec::new(),
        largest_map: 0,
    };
    let v4_template = Eth::new().ipv4(Ipv4::new(ipv4_source(0), MX_V4).tcp(Tcp::syn(25)));
    let v6_template = Eth::new().ipv6(Ipv6::new(ipv6_source(0), MX_V6).tcp(Tcp::syn(25)));
    // Source offsets in the untagged frames: IPv4 at 14 + 12, IPv6 at 14 + 8.
    let (mut v4, mut v6) = (v4_template.clone(), v6_template.clone());
    for n in 0..SOURCES_PER_FAMILY {
        // Drain the ring in the first half only, so the second half overflows it.
        let drain = n < SOURCES_PER_FAMILY / 2;
        v4[26..30].copy_from_slice(&ipv4_source(n));
        flood.send(&v4, n, drain);
        v6[22..38].copy_from_slice(&ipv6_source(n));
        flood.send(&v6, n, drain);
    }
    flood.delivered.extend(flood.dataplane.drain_events());

    let counters = flood.dataplane.counters();
    let sent = u64::from(SOURCES_PER_FAMILY);
    assert_eq!(counters.get(Counter::DroppedV4), sent, "IPv4 drops counted");
    assert_eq!(counters.get(Counter::DroppedV6), sent, "IPv6 drops counted");

    let tracked = flood.dataplane.subscribers().len();
    let capacity = TEST_MAX_TRACKED as usize;
    assert!(
        flood.largest_map <= capacity && tracked <= capacity,
        "subscriber map grew past its capacity {capacity}: largest {} seen, {tracked} at the end",
        flood.largest_map
    );
    assert!(
        tracked >= capacity / 2,
        "only {tracked} subscribers tracked after 200,000 distinct sources"
    );

    // A full map evicts the least recently seen: the newest sources are there, the first gone.
    let last = SOURCES_PER_FAMILY - 1;
    let dataplane = &flood.dataplane;
    assert!(
        dataplane
            .subscriber(&ipv4_subscriber(ipv4_source(last)))
            .is_some()
    );
    assert!(
        dataplane
            .subscriber(&ipv6_subscriber(ipv6_source(last), 64))
            .is_some()
    );
    assert!(
        dataplane
            .subscriber(&ipv4_subscriber(ipv4_source(0)))
            .is_none()
    );
    assert!(
        dataplane
            .subscriber(&ipv6_subscriber(ipv6_source(0), 64))
            .is_none()
    );

    // Every source was new, so every packet inserted a record and owed one first-seen event.
    let suppressed = counters.get(Counter::EventsSuppressed);
    let delivered = flood.delivered.len() as u64;
    assert!(
        flood
            .delivered
            .iter()
            .all(|event| event.kind == EventKind::FirstSeen as u32 && event.dst_port == 25),
        "only first-seen events for port 25 expected"
    );
    assert_eq!(
        delivered + suppressed,
        2 * sent,
        "first-seen insertions = delivered ({delivered}) + suppressed ({suppressed}) events"
    );
    assert!(
        suppressed > 0,
        "the undrained half must overflow the bounded ring buffer"
    );
    assert!(
        delivered >= sent,
        "the drained half's events must be delivered"
    );
}
