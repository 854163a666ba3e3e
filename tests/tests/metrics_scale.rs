//! Scrape cost with 1,000,000 tracked subscribers. Timing is printed, never asserted (the
//! bench owns timings); run with `cargo test -p tests --test metrics_scale -- --ignored --nocapture`.

use std::time::Instant;

use aya::maps::HashMap;
use egress_agent::{config::ModeSetting, status::AgentStatus, telemetry::collector};
use egress_common::{SubscriberKey, SubscriberRecord, names};
use tests::{
    dataplane::Policy,
    metrics::{PinnedDataplane, default_config, samples},
};

const SUBSCRIBERS: u32 = 1_000_000;

#[test]
#[ignore = "fills a 1M-entry map; a measurement, run on demand"]
fn metrics_scrape_of_a_million_subscribers() {
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 1 << 20);
    let started = Instant::now();
    {
        let map = dataplane
            .ebpf()
            .map_mut(names::SUBSCRIBERS)
            .expect("subscriber map");
        let mut map: HashMap<_, SubscriberKey, SubscriberRecord> =
            HashMap::try_from(map).expect("hash map");
        for i in 0..SUBSCRIBERS {
            let mut addr = [0u8; 16];
            // 100.64.0.0/10 holds 4M addresses.
            addr[..4].copy_from_slice(&(0x6440_0000u32 + i).to_be_bytes());
            let key = SubscriberKey {
                family: 4,
                prefix_len: 32,
                _pad: [0; 2],
                addr,
            };
            let record = SubscriberRecord {
                attempts: u64::from(i % 9973),
                packets: u64::from(i % 9973),
                first_seen_ns: 1,
                last_seen_ns: 2,
                flagged_ns: u64::from(i % 100_000 == 0),
                ..SubscriberRecord::default()
            };
            map.insert(key, record, 0).expect("insert subscriber");
        }
    }
    println!(
        "filled {SUBSCRIBERS} subscribers in {:?}",
        started.elapsed()
    );
    let ctx = dataplane.context(
        default_config(),
        AgentStatus::new(ModeSetting::Enforce, "/unused", 1 << 20),
    );
    for run in 0..3 {
        let started = Instant::now();
        let mut seen = 0u64;
        egress_agent::telemetry::scan::for_each_subscriber(&ctx.pins, |_, _| seen += 1)
            .expect("scan");
        println!("bare scan {run}: {:?} for {seen}", started.elapsed());
        let started = Instant::now();
        let text = collector::render(&ctx).expect("render");
        let elapsed = started.elapsed();
        let series = samples(&text)
            .iter()
            .filter(|s| s.name == "egress_subscriber_smtp_attempts_total")
            .count();
        let tracked = samples(&text)
            .into_iter()
            .find(|s| s.name == "egress_tracked_subscribers")
            .map(|s| s.value);
        println!(
            "scrape {run}: {elapsed:?}, {} bytes, {series} subscriber series, tracked {tracked:?}",
            text.len()
        );
        assert_eq!(series, 1000);
    }
}
