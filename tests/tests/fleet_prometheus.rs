//! A real Prometheus scraping the three agents of a fleet: aggregate queries over the
//! `instance`s return the fleet's totals, and a second Prometheus federating from the first
//! (the shipped deploy/prometheus/federation.yml when there is one) returns the same.

use std::net::SocketAddr;

use tests::{
    agent::{RELAY, wait_for},
    etcd::{Etcd, fleet},
    metrics::prometheus::{GLOBAL, PrometheusServer},
};

/// Polls `promql` (bounded) until its single value is `expected`.
fn wait_value(prometheus: &PrometheusServer, promql: &str, expected: f64) {
    wait_for(&format!("{promql} = {expected}"), 60, || {
        prometheus
            .query(promql)
            .first()
            .is_some_and(|(_, value)| *value == expected)
    });
}

/// The federation config: the shipped example when it exists (its targets pointed at the
/// first server), else a minimal `/federate` job of our own.
fn federation_config(source: SocketAddr) -> String {
    let shipped = tests::metrics::prometheus_deploy_dir().join("federation.yml");
    let Ok(text) = std::fs::read_to_string(&shipped) else {
        return format!(
            "{GLOBAL}scrape_configs:\n  - job_name: federate\n    honor_labels: true\n    \
             metrics_path: /federate\n    params:\n      'match[]': ['{{__name__=~\"egress_.*\"}}']\n    \
             static_configs:\n      - targets: ['{source}']\n"
        );
    };
    let mut config: serde_norway::Value = serde_norway::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not YAML: {err}", shipped.display()));
    // Rule files are relative to the shipped file; the config is written elsewhere.
    if let Some(files) = config["rule_files"].as_sequence_mut() {
        for file in files {
            let relative = file.as_str().unwrap_or_default().to_owned();
            *file = shipped
                .with_file_name(relative)
                .to_string_lossy()
                .into_owned()
                .into();
        }
    }
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .unwrap_or_else(|| panic!("{} has no scrape_configs", shipped.display()));
    for job in jobs {
        job["static_configs"] = serde_norway::from_str(&format!("[{{targets: ['{source}']}}]"))
            .expect("static_configs YAML");
        job["scrape_interval"] = "1s".into();
        job["scrape_timeout"] = "1s".into();
    }
    serde_norway::to_string(&config).expect("federation config YAML")
}

#[test]
fn prometheus_aggregates_the_fleet_and_federates_it() {
    let etcd = Etcd::start(1);
    let routers = fleet::routers(&etcd, 3, "");
    routers[0].agent.cli_ok(&["relay", "add", RELAY]);
    routers[1].agent.cli_ok(&["relay", "add", "192.0.2.30"]);
    for (k, router) in routers.iter().enumerate() {
        wait_for(&format!("router {k} applied both relays"), 30, || {
            router.lists_relay("192.0.2.10/32", "fleet")
                && router.lists_relay("192.0.2.30/32", "fleet")
        });
    }
    let revision = etcd.revision() as f64;
    let targets: Vec<SocketAddr> = routers
        .iter()
        .map(|r| format!("{}:9725", r.address).parse().expect("target"))
        .collect();
    let prometheus = PrometheusServer::start_in_scraping(&etcd.hub.ns.path(), &targets);

    wait_value(&prometheus, "count(up{job=\"egress\"} == 1)", 3.0);
    wait_value(
        &prometheus,
        "sum(egress_allowlist_entries{kind=\"relay\"})",
        6.0,
    );
    wait_value(&prometheus, "sum(egress_fleet_connected)", 3.0);
    wait_value(&prometheus, "min(egress_fleet_applied_revision)", revision);
    wait_value(&prometheus, "max(egress_fleet_applied_revision)", revision);
    let per_instance = prometheus.query("egress_fleet_applied_revision");
    assert_eq!(
        per_instance.len(),
        3,
        "one revision per router: {per_instance:?}"
    );

    let federated = PrometheusServer::start_in_with_config(
        &etcd.hub.ns.path(),
        &federation_config(prometheus.addr),
    );
    wait_value(
        &federated,
        "sum(egress_allowlist_entries{kind=\"relay\"})",
        6.0,
    );
    wait_value(&federated, "min(egress_fleet_applied_revision)", revision);
    wait_value(&federated, "count(egress_fleet_connected == 1)", 3.0);
}
