//! A real Prometheus server scrapes the real `egress-agent run`: both run inside the lab's
//! router namespace (the agent's metrics listen on that namespace's loopback), the subscriber
//! sends blocked SYNs, and Prometheus's query API returns the counts the kernel made.

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER},
    metrics::{http_get, prometheus::PrometheusServer, value},
    netns::in_netns,
};

const METRICS: &str = "127.0.0.1:9725";
/// Blocked SYNs, spread over `DESTINATIONS` mail servers.
const ATTEMPTS: u8 = 12;
const DESTINATIONS: u8 = 6;

#[test]
fn prometheus_scrapes_the_real_agents_subscriber_counts() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(
        &lab,
        &format!("[metrics]\nlisten = \"{METRICS}\"\nmax_subscriber_series = 10\n"),
    );
    let agent = Agent::start(&lab, files);

    // One SYN per connect: the timeout is shorter than the first retransmission.
    in_netns(&lab.sub, || {
        for i in 0..ATTEMPTS {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i % DESTINATIONS)
                .parse()
                .expect("server address");
            let connected = TcpStream::connect_timeout(&server, Duration::from_millis(300));
            assert!(connected.is_err(), "SYN {i} to {server} must be dropped");
        }
    });
    let metrics: SocketAddr = METRICS.parse().expect("metrics address");
    let (status, text) = in_netns(&lab.rtr, || http_get(metrics, "/metrics"));
    assert_eq!(status, 200, "{text}\nagent log:\n{}", agent.log_text());
    let subscriber = [("subscriber", SUBSCRIBER)];
    let exported = value(
        &text,
        "egress_subscriber_distinct_destinations",
        &subscriber,
    )
    .unwrap_or_else(|| panic!("no estimate for {SUBSCRIBER} in the agent's exposition:\n{text}"));

    let prometheus = PrometheusServer::start_in(&lab.rtr.path(), metrics);
    let attempts = prometheus.wait_for(&format!(
        r#"egress_subscriber_smtp_attempts_total{{subscriber="{SUBSCRIBER}"}}"#
    ));
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].0["job"], "egress", "{attempts:?}");
    assert_eq!(attempts[0].1, f64::from(ATTEMPTS), "{attempts:?}");

    let distinct = prometheus.wait_for(&format!(
        r#"egress_subscriber_distinct_destinations{{subscriber="{SUBSCRIBER}"}}"#
    ));
    let estimate = distinct[0].1;
    let truth = f64::from(DESTINATIONS);
    assert!(
        (estimate - truth).abs() <= 0.25 * truth,
        "estimate {estimate} not within 25% of {DESTINATIONS}"
    );
    assert_eq!(estimate, exported, "Prometheus and the agent disagree");

    let dropped =
        prometheus.wait_for(r#"egress_smtp_packets_total{verdict="dropped",family="ipv4"}"#);
    assert_eq!(dropped[0].1, f64::from(ATTEMPTS), "{dropped:?}");
    let up = prometheus.wait_for(r#"up{job="egress"}"#);
    assert_eq!(up[0].1, 1.0, "Prometheus scrapes the agent: {up:?}");
}
