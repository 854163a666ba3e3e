//! Bot detection end to end: thresholds crossed in the kernel → suspected-bot gauge, the
//! event and flag log lines; a quiet window → un-flagged and logged.

use std::time::Duration;

use egress_agent::{config::ModeSetting, estimate, status::AgentStatus};
use tests::{
    dataplane::Policy,
    metrics::{PinnedDataplane, Served, default_config, destination, logs, syn_v4, value},
};

const WINDOW_SECONDS: u64 = 5;

#[test]
fn metrics_thresholds_flag_log_and_clear_suspected_bots() {
    logs::capture();
    let mut config = default_config();
    config.detection.window_seconds = WINDOW_SECONDS;
    config.detection.attempts_threshold = 20;
    config.detection.distinct_destinations_threshold = 5;
    let policy = Policy {
        window_ns: WINDOW_SECONDS * 1_000_000_000,
        attempts_threshold: 20,
        destination_bits_threshold: estimate::bits_threshold(5),
        ..Policy::default()
    };
    let mut dataplane = PinnedDataplane::load(&policy, 4096);
    let status = AgentStatus::new(ModeSetting::Enforce, "/unused", 4096);
    let served = Served::start(dataplane.context(config, status));

    // Over the attempts threshold: 25 SYNs to one destination.
    for _ in 0..25 {
        dataplane.send(&syn_v4([203, 0, 113, 77], destination(0)));
    }
    // Over the distinct-destination threshold with few attempts.
    for i in 0..8 {
        dataplane.send(&syn_v4([203, 0, 113, 78], destination(i)));
    }
    // Below both.
    for _ in 0..3 {
        dataplane.send(&syn_v4([203, 0, 113, 79], destination(0)));
    }

    let text = served.scrape();
    let suspected = |text: &str, who: &str| {
        value(
            text,
            "egress_subscriber_suspected_bot",
            &[("subscriber", who)],
        )
    };
    assert_eq!(suspected(&text, "203.0.113.77"), Some(1.0), "{text}");
    assert_eq!(suspected(&text, "203.0.113.78"), Some(1.0), "{text}");
    assert_eq!(suspected(&text, "203.0.113.79"), None, "{text}");
    assert_eq!(value(&text, "egress_suspected_bots", &[]), Some(2.0));

    let wait = Duration::from_secs(15);
    for who in ["203.0.113.77", "203.0.113.78", "203.0.113.79"] {
        logs::wait_for_line(&["first_seen", &format!("subscriber={who}")], wait);
    }
    for who in ["203.0.113.77", "203.0.113.78"] {
        let line = logs::wait_for_line(&["event=\"flagged\"", &format!("subscriber={who}")], wait);
        assert!(line.contains("dst_port=25"), "{line}");
        logs::wait_for_line(
            &["event=\"suspected_bot\"", &format!("subscriber={who}")],
            wait,
        );
    }

    // The window passes quietly: no longer suspected, and the transition is logged.
    std::thread::sleep(Duration::from_secs(WINDOW_SECONDS + 1));
    let text = served.scrape();
    assert_eq!(suspected(&text, "203.0.113.77"), None, "{text}");
    assert_eq!(value(&text, "egress_suspected_bots", &[]), Some(0.0));
    for who in ["203.0.113.77", "203.0.113.78"] {
        logs::wait_for_line(
            &[
                "event=\"suspected_bot_cleared\"",
                &format!("subscriber={who}"),
            ],
            wait,
        );
    }
    assert_eq!(
        logs::find_line(&["suspected_bot", "subscriber=203.0.113.79"]),
        None,
        "203.0.113.79 was never over a threshold"
    );
}
