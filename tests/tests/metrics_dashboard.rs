//! Every query of the Grafana dashboard (deploy/grafana/egress.json) returns data from a real
//! Prometheus scraping the real agent with traffic. Panels are data: a new panel in the JSON
//! is checked here without touching this file.

use std::{net::SocketAddr, net::TcpStream, time::Duration};

use tests::{
    agent::{Agent, AgentFiles, Lab},
    metrics::prometheus::PrometheusServer,
    netns::in_netns,
};

const METRICS: &str = "127.0.0.1:9725";
const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Program cost is only exported while the kernel counts it; restored on drop.
struct BpfStats(String);

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// `(panel title, expression)` of every target of every panel, rows included.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} has a target without expr", panel["title"]));
            all.push((panel["title"].to_string(), expr.to_owned()));
        }
    }
    all
}

#[test]
fn metrics_dashboard_every_panel_query_returns_data() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/egress.json");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {path}: {err}")),
    )
    .unwrap_or_else(|err| panic!("{path} is not JSON: {err}"));
    let templating = dashboard["templating"]["list"].to_string();
    assert!(templating.contains("\"instance\""), "templated on instance");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 12, "{queries:?}");

    let previous = std::fs::read_to_string(SYSCTL).expect("read the sysctl");
    let _stats = BpfStats(previous.trim().to_owned());
    std::fs::write(SYSCTL, "1").expect("enable bpf stats");

    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(
        &lab,
        &format!("[metrics]\nlisten = \"{METRICS}\"\n\n[detection]\nattempts_threshold = 5\n"),
    );
    let _agent = Agent::start(&lab, files);
    let metrics: SocketAddr = METRICS.parse().expect("addr");
    let prometheus = PrometheusServer::start_in(&lab.rtr.path(), metrics);
    // Traffic for a few scrapes, so rates have two samples that differ.
    for round in 0..4u8 {
        in_netns(&lab.sub, || {
            for i in 0..4u8 {
                let server: SocketAddr = format!("198.51.100.{}:25", 10 + i + 4 * round)
                    .parse()
                    .expect("addr");
                let _ = TcpStream::connect_timeout(&server, Duration::from_millis(300));
            }
        });
    }

    for (title, expr) in &queries {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "15s")
            .replace("$__range", "5m")
            .replace("$instance", METRICS);
        let results = prometheus.wait_for(&promql);
        assert!(
            !results.is_empty(),
            "panel {title}: {promql} returned nothing"
        );
    }
}
