//! A real Prometheus server scrapes the telemetry endpoint and answers queries with the values
//! the kernel counted.

use egress_agent::{config::ModeSetting, status::AgentStatus};
use tests::{
    dataplane::Policy,
    metrics::{
        PinnedDataplane, Served, default_config, destination, prometheus::PrometheusServer,
        promtool_check_metrics, syn_v4, syn_v6, value,
    },
};

#[test]
fn metrics_prometheus_scrapes_the_same_subscriber_values() {
    const N: usize = 29;
    const D: usize = 17;
    let mut dataplane = PinnedDataplane::load(&Policy::default(), 4096);
    for i in 0..N {
        dataplane.send(&syn_v4([192, 0, 2, 44], destination(i % D)));
    }
    let v6_source = [0x20, 0x01, 0x0d, 0xb8, 0, 7, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1];
    let v6_destination = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];
    for _ in 0..4 {
        dataplane.send(&syn_v6(v6_source, v6_destination));
    }
    let status = AgentStatus::new(ModeSetting::Enforce, "/unused", 4096);
    let served = Served::start(dataplane.context(default_config(), status));
    let text = served.scrape();
    promtool_check_metrics(&text);
    let subscriber = [("subscriber", "192.0.2.44")];
    let estimate = value(
        &text,
        "egress_subscriber_distinct_destinations",
        &subscriber,
    )
    .expect("estimate in the exposition");

    let prometheus = PrometheusServer::start(served.addr);
    let attempts =
        prometheus.wait_for(r#"egress_subscriber_smtp_attempts_total{subscriber="192.0.2.44"}"#);
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].1, N as f64);
    assert_eq!(attempts[0].0["job"], "egress");
    let distinct =
        prometheus.wait_for(r#"egress_subscriber_distinct_destinations{subscriber="192.0.2.44"}"#);
    assert_eq!(distinct[0].1, estimate);
    let v6 = prometheus
        .wait_for(r#"egress_subscriber_smtp_attempts_total{subscriber="2001:db8:7:9::/64"}"#);
    assert_eq!(v6[0].1, 4.0);
    let dropped =
        prometheus.wait_for(r#"egress_smtp_packets_total{verdict="dropped",family="ipv4"}"#);
    assert_eq!(dropped[0].1, N as f64);
    let up = prometheus.wait_for(r#"up{job="egress"}"#);
    assert_eq!(up[0].1, 1.0);
}
