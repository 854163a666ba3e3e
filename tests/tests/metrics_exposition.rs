//! `/metrics` read from the real kernel maps: blocked SYNs driven through the XDP program with
//! BPF_PROG_TEST_RUN, scraped over HTTP from the in-process telemetry server.

use egress_agent::{
    config::{Hook, ModeSetting},
    status::{AgentStatus, Attachment},
    telemetry::{self, collector},
};
use tests::{
    dataplane::Policy,
    metrics::{
        PinnedDataplane, Served, XDP_DROP, XDP_PASS, default_config, destination,
        promtool_check_metrics, samples, syn_v4, syn_v6, value,
    },
};

const SUBSCRIBER: [u8; 4] = [192, 0, 2, 33];
const V6_SUBSCRIBER: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x99,
];

/// Every metric of the SPEC table with its type.
const FAMILIES: [(&str, &str); 15] = [
    ("egress_smtp_packets_total", "counter"),
    ("egress_smtp_dropped_other_total", "counter"),
    ("egress_packets_malformed_total", "counter"),
    ("egress_subscriber_smtp_attempts_total", "counter"),
    ("egress_subscriber_distinct_destinations", "gauge"),
    ("egress_subscriber_suspected_bot", "gauge"),
    ("egress_suspected_bots", "gauge"),
    ("egress_tracked_subscribers", "gauge"),
    ("egress_allowlist_entries", "gauge"),
    ("egress_attached", "gauge"),
    ("egress_tracked_subscribers_max", "gauge"),
    ("egress_allowlist_drift_total", "counter"),
    ("egress_events_suppressed_total", "counter"),
    ("egress_config_last_reload_successful", "gauge"),
    ("egress_build_info", "gauge"),
];

fn status(dataplane: &PinnedDataplane) -> AgentStatus {
    let root = dataplane.pins().root().display().to_string();
    let mut status = AgentStatus::new(ModeSetting::Enforce, &root, 4096);
    status.allowlist_entries.relay = 2;
    status.allowlist_entries.exempt = 1;
    status.attachments = vec![
        Attachment {
            // Not a real interface name: exercises label escaping end to end.
            interface: "sub\"0\\x\ny".to_owned(),
            hook: Hook::Xdp,
            mode: "native".to_owned(),
            attached: true,
            foreign_program: false,
            method: "xdp-link".to_owned(),
            foreign_filters: Vec::new(),
        },
        Attachment {
            interface: "up0".to_owned(),
            hook: Hook::TcEgress,
            mode: "tcx".to_owned(),
            attached: false,
            // Displaced by another program: reported by egress_foreign_program.
            foreign_program: true,
            method: "tcx".to_owned(),
            foreign_filters: Vec::new(),
        },
    ];
    status
}

#[test]
fn metrics_exposition_counts_exact_attempts_and_estimates_destinations() {
    const N: usize = 37;
    const D: usize = 23;
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    for i in 0..N {
        let verdict = dataplane.send(&syn_v4(SUBSCRIBER, destination(i % D)));
        assert_eq!(verdict, XDP_DROP, "SYN {i} to port 25 must be dropped");
    }
    for _ in 0..3 {
        let v6 = syn_v6(
            V6_SUBSCRIBER,
            [
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
        );
        assert_eq!(dataplane.send(&v6), XDP_DROP);
    }
    let ctx = dataplane.context(default_config(), status(&dataplane));
    let served = Served::start(ctx.clone());
    let text = served.scrape();
    promtool_check_metrics(&text);

    for (name, kind) in FAMILIES {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n"))
                || text.starts_with(&format!("# HELP {name} ")),
            "{name} lacks `# TYPE {name} {kind}`:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} lacks # HELP"
        );
    }
    let subscriber = [("subscriber", "192.0.2.33")];
    assert_eq!(
        value(&text, "egress_subscriber_smtp_attempts_total", &subscriber),
        Some(N as f64),
        "{text}"
    );
    let estimate = value(
        &text,
        "egress_subscriber_distinct_destinations",
        &subscriber,
    )
    .expect("distinct destinations of the subscriber");
    assert!(
        (estimate - D as f64).abs() <= 0.25 * D as f64,
        "estimate {estimate} not within 25% of {D}"
    );
    let v6 = [("subscriber", "2001:db8:1:2::/64")];
    assert_eq!(
        value(&text, "egress_subscriber_smtp_attempts_total", &v6),
        Some(3.0)
    );
    let dropped = |family| {
        value(
            &text,
            "egress_smtp_packets_total",
            &[("verdict", "dropped"), ("family", family)],
        )
    };
    assert_eq!(dropped("ipv4"), Some(N as f64));
    assert_eq!(dropped("ipv6"), Some(3.0));
    assert_eq!(
        value(
            &text,
            "egress_smtp_packets_total",
            &[("verdict", "monitored"), ("family", "ipv4")]
        ),
        Some(0.0)
    );
    assert_eq!(value(&text, "egress_tracked_subscribers", &[]), Some(2.0));
    assert_eq!(
        value(&text, "egress_tracked_subscribers_max", &[]),
        Some(4096.0)
    );
    assert_eq!(
        value(&text, "egress_allowlist_entries", &[("kind", "relay")]),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "egress_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "egress_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let attached: Vec<_> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "egress_attached")
        .collect();
    assert_eq!(
        attached.len(),
        1,
        "only attached hooks are exported: {attached:?}"
    );
    assert_eq!(attached[0].labels["interface"], "sub\"0\\x\ny");
    assert_eq!(attached[0].labels["hook"], "xdp");
    assert_eq!(attached[0].labels["mode"], "native");
    let foreign: Vec<_> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "egress_foreign_program")
        .collect();
    assert_eq!(foreign.len(), 1, "one displaced hook: {foreign:?}");
    assert_eq!(foreign[0].labels["interface"], "up0");
    assert_eq!(foreign[0].labels["hook"], "tc-egress");
    assert_eq!(foreign[0].value, 1.0);
    assert!(
        text.contains("# HELP egress_foreign_program ")
            && text.contains("\n# TYPE egress_foreign_program gauge\n"),
        "egress_foreign_program lacks HELP/TYPE:\n{text}"
    );
    for reason in ["tiny_fragment", "overlap_fragment", "ipv6_chain"] {
        assert_eq!(
            value(
                &text,
                "egress_smtp_dropped_other_total",
                &[("reason", reason)]
            ),
            Some(0.0)
        );
    }
    // The collector called directly agrees with the HTTP answer on the subscriber.
    let direct = collector::render(&ctx).expect("render the exposition");
    assert_eq!(
        value(
            &direct,
            "egress_subscriber_smtp_attempts_total",
            &subscriber
        ),
        Some(N as f64)
    );
}

#[test]
fn metrics_estimates_stay_within_a_quarter_up_to_64_destinations() {
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    let counts = [1usize, 2, 5, 8, 13, 20, 32, 48, 64];
    for (s, &d) in counts.iter().enumerate() {
        for i in 0..d {
            dataplane.send(&syn_v4([100, 64, 7, s as u8], destination(i + s * 40)));
        }
    }
    let ctx = dataplane.context(default_config(), status(&dataplane));
    let text = collector::render(&ctx).expect("render the exposition");
    for (s, &d) in counts.iter().enumerate() {
        let label = format!("100.64.7.{s}");
        let estimate = value(
            &text,
            "egress_subscriber_distinct_destinations",
            &[("subscriber", &label)],
        )
        .unwrap_or_else(|| panic!("no estimate for {label}"));
        assert!(
            (estimate - d as f64).abs() <= 0.25 * d as f64,
            "{label}: estimate {estimate} for {d} distinct destinations"
        );
    }
}

#[test]
fn metrics_monitor_mode_counts_without_dropping() {
    const N: usize = 11;
    let mut dataplane = PinnedDataplane::load(&Policy::monitor(), 4096);
    for i in 0..N {
        assert_eq!(
            dataplane.send(&syn_v4(SUBSCRIBER, destination(i))),
            XDP_PASS,
            "monitor mode must pass SYN {i}"
        );
    }
    let ctx = dataplane.context(default_config(), status(&dataplane));
    let text = collector::render(&ctx).expect("render the exposition");
    promtool_check_metrics(&text);
    let family = |verdict| {
        value(
            &text,
            "egress_smtp_packets_total",
            &[("verdict", verdict), ("family", "ipv4")],
        )
    };
    assert_eq!(family("monitored"), Some(N as f64));
    assert_eq!(family("dropped"), Some(0.0));
    assert_eq!(
        value(
            &text,
            "egress_subscriber_smtp_attempts_total",
            &[("subscriber", "192.0.2.33")]
        ),
        Some(N as f64)
    );
}

#[test]
fn metrics_subscriber_series_are_capped_and_top_and_find_answer() {
    const SOURCES: usize = 5000;
    const SERIES: usize = 100;
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 16384);
    for i in 0..SOURCES {
        let source = [
            100,
            64 + (i / 65536) as u8,
            (i / 256 % 256) as u8,
            (i % 256) as u8,
        ];
        dataplane.send(&syn_v4(source, destination(i % 512)));
    }
    let heavy = [[203, 0, 113, 10], [203, 0, 113, 11], [203, 0, 113, 12]];
    for (rank, source) in heavy.iter().enumerate() {
        for i in 0..(10 - rank) {
            dataplane.send(&syn_v4(*source, destination(i)));
        }
    }
    let mut config = default_config();
    config.metrics.max_subscriber_series = SERIES;
    let ctx = dataplane.context(config, status(&dataplane));
    let text = collector::render(&ctx).expect("render the exposition");
    promtool_check_metrics(&text);
    let all = samples(&text);
    let count = |name: &str| all.iter().filter(|s| s.name == name).count();
    assert_eq!(count("egress_subscriber_smtp_attempts_total"), SERIES);
    assert_eq!(count("egress_subscriber_distinct_destinations"), SERIES);
    assert_eq!(
        value(&text, "egress_tracked_subscribers", &[]),
        Some((SOURCES + heavy.len()) as f64)
    );
    for (rank, label) in ["203.0.113.10", "203.0.113.11", "203.0.113.12"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            value(
                &text,
                "egress_subscriber_smtp_attempts_total",
                &[("subscriber", label)]
            ),
            Some((10 - rank) as f64)
        );
    }

    let top = telemetry::top(&ctx, 3).expect("top");
    let names: Vec<&str> = top.iter().map(|v| v.subscriber.as_str()).collect();
    assert_eq!(names, ["203.0.113.10", "203.0.113.11", "203.0.113.12"]);
    assert_eq!(top[0].attempts, 10);
    assert_eq!(top[0].packets, 10);
    assert_eq!(top[0].bytes, 10 * 40);
    assert!(
        !top[0].suspected_bot,
        "detection is disabled in the dataplane config"
    );

    let found = telemetry::find(&ctx, "203.0.113.11".parse().expect("address"))
        .expect("find")
        .expect("the subscriber has a record");
    assert_eq!(found.attempts, 9);
    assert!(
        found.distinct_destinations >= 7 && found.distinct_destinations <= 11,
        "{found:?}"
    );
    assert!(
        found.first_seen.ends_with('Z') && found.first_seen.len() == 24,
        "{found:?}"
    );
    assert!(found.first_seen <= found.last_seen, "{found:?}");
    let missing = telemetry::find(&ctx, "198.51.100.200".parse().expect("address")).expect("find");
    assert_eq!(missing, None);
}

#[test]
fn metrics_find_aggregates_ipv6_to_the_prefix() {
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    dataplane.send(&syn_v6(
        V6_SUBSCRIBER,
        [
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ],
    ));
    let ctx = dataplane.context(default_config(), status(&dataplane));
    let other_host = "2001:db8:1:2:dead:beef::1".parse().expect("address");
    let found = telemetry::find(&ctx, other_host)
        .expect("find")
        .expect("same /64");
    assert_eq!(found.subscriber, "2001:db8:1:2::/64");
    assert_eq!(found.attempts, 1);
}
