//! Subscriber records: their labels, the suspected-bot test, the worst offenders, and the
//! views `top` and `subscriber` show.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use egress_common::{SubscriberKey, SubscriberRecord, subscriber::bits_set};

use super::{SubscriberView, TelemetryContext, TelemetryError, read, scan};
use crate::{
    clock::{self, Clocks},
    estimate,
};

/// `203.0.113.7` for IPv4, `2001:db8:1:2::/64` for an IPv6 prefix.
pub fn label(key: &SubscriberKey) -> String {
    if key.family == 4 {
        let [a, b, c, d, ..] = key.addr;
        Ipv4Addr::new(a, b, c, d).to_string()
    } else {
        format!("{}/{}", Ipv6Addr::from(key.addr), key.prefix_len)
    }
}

/// The key under which the dataplane records `address`.
pub fn key_of(address: IpAddr, ipv6_prefix_len: u8) -> SubscriberKey {
    match address {
        IpAddr::V4(v4) => SubscriberKey::ipv4(v4.octets()),
        IpAddr::V6(v6) => SubscriberKey::ipv6(v6.octets(), ipv6_prefix_len),
    }
}

/// Decides "suspected bot" the way the dataplane flags: over a threshold within the window.
#[derive(Clone, Copy, Debug)]
pub struct Detector {
    pub now_monotonic_ns: u64,
    pub window_ns: u64,
}

impl Detector {
    pub fn now(ctx: &TelemetryContext) -> Detector {
        let window_seconds = read(&ctx.config).detection.window_seconds;
        Detector {
            now_monotonic_ns: clock::monotonic_ns(),
            window_ns: window_seconds.saturating_mul(1_000_000_000),
        }
    }

    pub fn suspected(&self, record: &SubscriberRecord) -> bool {
        record.flagged_ns != 0
            && self.now_monotonic_ns.saturating_sub(record.flagged_ns) <= self.window_ns
    }
}

/// Estimated distinct destinations of a bitmap, rounded.
pub fn distinct_destinations(bitmap: &[u64; 2]) -> u64 {
    estimate::distinct_destinations(bits_set(bitmap)).round() as u64
}

/// One pass over the subscriber map.
pub struct Census {
    pub tracked: u64,
    /// The most attempts first.
    pub top: Vec<(SubscriberKey, SubscriberRecord)>,
    pub suspected: Vec<(SubscriberKey, SubscriberRecord)>,
}

/// Streams the map once, keeping only the `top_n` with most attempts and the suspected bots.
pub fn census(
    ctx: &TelemetryContext,
    top_n: usize,
    detector: &Detector,
) -> Result<Census, TelemetryError> {
    let mut top = TopN::new(top_n);
    let mut suspected = Vec::new();
    let tracked = scan::for_each_subscriber(&ctx.pins, |key, record| {
        top.offer(key, record);
        if detector.suspected(record) {
            suspected.push((*key, *record));
        }
    })?;
    Ok(Census {
        tracked,
        top: top.into_sorted(),
        suspected,
    })
}

pub fn view(
    key: &SubscriberKey,
    record: &SubscriberRecord,
    clocks: &Clocks,
    detector: &Detector,
) -> SubscriberView {
    SubscriberView {
        subscriber: label(key),
        attempts: record.attempts,
        packets: record.packets,
        bytes: record.bytes,
        distinct_destinations: distinct_destinations(&record.destinations),
        first_seen: clock::rfc3339(clocks.wall_of(record.first_seen_ns)),
        last_seen: clock::rfc3339(clocks.wall_of(record.last_seen_ns)),
        suspected_bot: detector.suspected(record),
        window_attempts: record.window_attempts,
        window_distinct_destinations: distinct_destinations(&record.window_destinations),
        identity: None,
        identity_now: None,
    }
}

pub fn top(ctx: &TelemetryContext, n: usize) -> Result<Vec<SubscriberView>, TelemetryError> {
    let detector = Detector::now(ctx);
    let census = census(ctx, n, &detector)?;
    let clocks = Clocks::now();
    Ok(census
        .top
        .iter()
        .map(|(key, record)| with_identity(ctx, key, record, &clocks, &detector))
        .collect())
}

pub fn find(
    ctx: &TelemetryContext,
    address: IpAddr,
) -> Result<Option<SubscriberView>, TelemetryError> {
    let key = key_of(address, read(&ctx.config).subscribers.ipv6_prefix_len);
    let detector = Detector::now(ctx);
    let clocks = Clocks::now();
    Ok(scan::lookup(&ctx.pins, &key)?
        .map(|record| with_identity(ctx, &key, &record, &clocks, &detector)))
}

/// `view`, plus the RADIUS identity when traceability is configured.
fn with_identity(
    ctx: &TelemetryContext,
    key: &SubscriberKey,
    record: &SubscriberRecord,
    clocks: &Clocks,
    detector: &Detector,
) -> SubscriberView {
    let mut view = view(key, record, clocks, detector);
    if let Some(trace) = &ctx.traceability {
        trace.enrich(&mut view, key, record, clocks);
    }
    view
}

/// Ranks by attempts, then packets, then key, so equal counts order the same every time.
struct Ranked(SubscriberKey, SubscriberRecord);

impl Ranked {
    fn rank(&self) -> (u64, u64, u8, [u8; 16]) {
        (self.1.attempts, self.1.packets, self.0.family, self.0.addr)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The `n` highest-ranked entries seen, in O(n) memory.
struct TopN {
    n: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl TopN {
    fn new(n: usize) -> TopN {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n.min(1 << 16) + 1),
        }
    }

    fn offer(&mut self, key: &SubscriberKey, record: &SubscriberRecord) {
        if self.n == 0 {
            return;
        }
        let candidate = Ranked(*key, *record);
        if self.heap.len() < self.n {
            self.heap.push(Reverse(candidate));
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse(smallest)| candidate > *smallest)
        {
            self.heap.pop();
            self.heap.push(Reverse(candidate));
        }
    }

    fn into_sorted(self) -> Vec<(SubscriberKey, SubscriberRecord)> {
        // Ascending order of Reverse is descending rank.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(Ranked(key, record))| (key, record))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attempts: u64) -> SubscriberRecord {
        SubscriberRecord {
            attempts,
            ..SubscriberRecord::default()
        }
    }

    #[test]
    fn telemetry_labels_show_ipv4_addresses_and_ipv6_prefixes() {
        let v4 = key_of("203.0.113.7".parse().expect("address"), 64);
        assert_eq!(label(&v4), "203.0.113.7");
        let v6 = key_of("2001:db8:1:2:aa:bb:cc:dd".parse().expect("address"), 64);
        assert_eq!(label(&v6), "2001:db8:1:2::/64");
        let v6_48 = key_of("2001:db8:1:2::1".parse().expect("address"), 48);
        assert_eq!(label(&v6_48), "2001:db8:1::/48");
    }

    #[test]
    fn telemetry_top_n_keeps_the_most_attempts_in_order() {
        let mut top = TopN::new(3);
        for (i, attempts) in [5u64, 1, 9, 7, 3, 9].into_iter().enumerate() {
            let key = key_of(IpAddr::from([192, 0, 2, i as u8]), 64);
            top.offer(&key, &record(attempts));
        }
        let attempts: Vec<u64> = top.into_sorted().iter().map(|(_, r)| r.attempts).collect();
        assert_eq!(attempts, vec![9, 9, 7]);
        let mut none = TopN::new(0);
        none.offer(&SubscriberKey::default(), &record(1));
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn telemetry_suspected_only_within_the_window() {
        let detector = Detector {
            now_monotonic_ns: 1_000_000_000_000,
            window_ns: 300_000_000_000,
        };
        let mut flagged = record(1);
        assert!(!detector.suspected(&flagged));
        flagged.flagged_ns = 800_000_000_000;
        assert!(detector.suspected(&flagged));
        flagged.flagged_ns = 600_000_000_000;
        assert!(!detector.suspected(&flagged));
    }
}
