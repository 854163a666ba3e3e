//! The real `egress-agent run` in a namespace lab: blocked SYNs from a subscriber show up in its
//! `/metrics`, its log, and `top`/`subscriber`.

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER},
    metrics::{http_get, promtool_check_metrics, value},
    netns::in_netns,
};

const METRICS: &str = "127.0.0.1:9725";

#[test]
fn metrics_of_the_real_agent_count_blocked_syns_and_flag_the_subscriber() {
    const N: u8 = 8;
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(
        &lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\nmax_subscriber_series = 10\n\n\
             [detection]\nwindow_seconds = 300\nattempts_threshold = 5\ndistinct_destinations_threshold = 50\n"
        ),
    );
    let agent = Agent::start(&lab, files);

    // One SYN per connect: the timeout is shorter than the first retransmission.
    in_netns(&lab.sub, || {
        for i in 0..N {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i).parse().expect("addr");
            let connected = TcpStream::connect_timeout(&server, Duration::from_millis(300));
            assert!(connected.is_err(), "SYN to {server} must be dropped");
        }
    });

    let (status, text) = in_netns(&lab.rtr, || {
        http_get(METRICS.parse().expect("addr"), "/metrics")
    });
    assert_eq!(status, 200, "{text}\nagent log:\n{}", agent.log_text());
    promtool_check_metrics(&text);
    let subscriber = [("subscriber", SUBSCRIBER)];
    assert_eq!(
        value(&text, "egress_subscriber_smtp_attempts_total", &subscriber),
        Some(f64::from(N)),
        "{text}"
    );
    let estimate = value(
        &text,
        "egress_subscriber_distinct_destinations",
        &subscriber,
    )
    .expect("distinct destinations");
    assert!(
        (estimate - f64::from(N)).abs() <= 0.25 * f64::from(N),
        "{estimate}"
    );
    assert_eq!(
        value(&text, "egress_subscriber_suspected_bot", &subscriber),
        Some(1.0)
    );
    assert_eq!(value(&text, "egress_suspected_bots", &[]), Some(1.0));
    assert_eq!(
        value(
            &text,
            "egress_smtp_packets_total",
            &[("verdict", "dropped"), ("family", "ipv4")]
        ),
        Some(f64::from(N))
    );
    let xdp = text
        .lines()
        .find(|l| {
            l.starts_with("egress_attached{")
                && l.contains(&format!("interface=\"{}\"", lab.rtr_sub_if))
        })
        .unwrap_or_else(|| panic!("no egress_attached for {}:\n{text}", lab.rtr_sub_if));
    assert!(xdp.contains("hook=\"xdp\"") && xdp.ends_with(" 1"), "{xdp}");

    let top: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["top", "-n", "5", "--json"])).expect("top --json");
    assert_eq!(top[0]["subscriber"], SUBSCRIBER, "{top}");
    assert_eq!(top[0]["attempts"], u64::from(N));
    assert_eq!(top[0]["suspected_bot"], true);
    let one: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["subscriber", SUBSCRIBER, "--json"]))
            .expect("subscriber --json");
    let record = if one.is_array() { &one[0] } else { &one };
    assert_eq!(record["attempts"], u64::from(N), "{one}");
    assert!(
        record["first_seen"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{one}"
    );

    // The agent logs the first sighting and the flag (bounded wait for the event drain).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let log = agent.log_text();
        let has = |needle: &str| {
            log.lines()
                .any(|l| l.contains(needle) && l.contains(SUBSCRIBER))
        };
        if has("first_seen") && has("flagged") && has("suspected_bot") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing event log lines:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
