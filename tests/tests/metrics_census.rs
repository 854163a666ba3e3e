//! `/metrics` on a big subscriber table: once a scan of the subscriber map is slower than the
//! budget, a scrape serves the last completed scan (its age exported) and starts the next one,
//! so the numbers catch up one scrape later instead of every scrape waiting for the scan.
//! A zero budget puts a tiny table in that mode; the default keeps it scanning at every scrape.

use std::time::{Duration, Instant};

use tests::{
    dataplane::Policy,
    metrics::{PinnedDataplane, Served, XDP_DROP, default_config, syn_v4, value},
};

const FIRST: [u8; 4] = [100, 64, 0, 1];
const SECOND: [u8; 4] = [100, 64, 0, 2];
const MX: [u8; 4] = [198, 51, 100, 25];

fn attempts(text: &str, subscriber: &str) -> Option<f64> {
    value(
        text,
        "egress_subscriber_smtp_attempts_total",
        &[("subscriber", subscriber)],
    )
}

fn status(dataplane: &PinnedDataplane) -> egress_agent::status::AgentStatus {
    let root = dataplane.pins().root().display().to_string();
    egress_agent::status::AgentStatus::new(egress_agent::config::ModeSetting::Enforce, &root, 4096)
}

#[test]
fn slow_scans_move_scrapes_to_the_last_census_and_it_catches_up() {
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    assert_eq!(dataplane.send(&syn_v4(FIRST, MX)), XDP_DROP);
    let ctx = dataplane
        .context(default_config(), status(&dataplane))
        .with_sync_scan_budget(Duration::ZERO);
    let served = Served::start(ctx);

    // No census yet: the first scrape scans.
    let first = served.scrape();
    assert_eq!(attempts(&first, "100.64.0.1"), Some(1.0), "{first}");
    assert_eq!(value(&first, "egress_tracked_subscribers", &[]), Some(1.0));

    // That scan was "slow": the next scrape shows it again (the dataplane counter is read
    // fresh) and starts a new scan behind it.
    assert_eq!(dataplane.send(&syn_v4(SECOND, MX)), XDP_DROP);
    let second = served.scrape();
    assert_eq!(
        value(&second, "egress_tracked_subscribers", &[]),
        Some(1.0),
        "the second scrape must serve the first census:\n{second}"
    );
    assert_eq!(attempts(&second, "100.64.0.2"), None, "{second}");
    assert_eq!(
        value(
            &second,
            "egress_smtp_packets_total",
            &[("verdict", "dropped"), ("family", "ipv4")]
        ),
        Some(2.0),
        "dataplane counters are read at every scrape:\n{second}"
    );
    let age = value(&second, "egress_subscriber_census_age_seconds", &[])
        .unwrap_or_else(|| panic!("no census age:\n{second}"));
    assert!(age >= 0.0, "{age}");
    assert!(value(&second, "egress_subscriber_census_duration_seconds", &[]).is_some());

    // The background scan lands; a later scrape shows the second subscriber.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = served.scrape();
        if attempts(&text, "100.64.0.2") == Some(1.0) {
            assert_eq!(value(&text, "egress_tracked_subscribers", &[]), Some(2.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background scan never caught up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quick_scans_happen_at_every_scrape() {
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    assert_eq!(dataplane.send(&syn_v4(FIRST, MX)), XDP_DROP);
    let served = Served::start(dataplane.context(default_config(), status(&dataplane)));
    let first = served.scrape();
    assert_eq!(attempts(&first, "100.64.0.1"), Some(1.0), "{first}");
    assert_eq!(dataplane.send(&syn_v4(SECOND, MX)), XDP_DROP);
    let second = served.scrape();
    assert_eq!(attempts(&second, "100.64.0.2"), Some(1.0), "{second}");
    assert_eq!(value(&second, "egress_tracked_subscribers", &[]), Some(2.0));
}
