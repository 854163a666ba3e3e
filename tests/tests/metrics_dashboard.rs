//! Every query of the Grafana dashboard (deploy/grafana/egress.json) returns data from a real
//! Prometheus scraping the real agent with traffic. Panels are data: a new panel in the JSON
//! is checked here without touching this file.

use std::{net::SocketAddr, net::TcpStream, time::Duration};

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER},
    etcd::Etcd,
    mail::{
        DNS, TempDir,
        knot::{self, Knot},
        zones::Zones,
    },
    metrics::prometheus::PrometheusServer,
    netns::{exec_ok, in_netns},
    radius::radclient_ok,
    webhook,
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

const RADIUS_SECRET: &str = "dashboard-radius";

/// What the feature panels need behind the agent: the mail zones for the audit, an etcd for
/// the fleet, a webhook receiver for the evidence reports, RADIUS accounting for identity.
struct Features {
    _knot: Knot,
    _zones: TempDir,
    etcd: Etcd,
    webhook: webhook::Receiver,
}

impl Features {
    fn start(lab: &Lab) -> Features {
        exec_ok(
            &lab.rtr,
            &["ip", "addr", "add", &format!("{DNS}/32"), "dev", "lo"],
        );
        let zones = TempDir::new("dashboard-zones");
        let knot = knot::start(&lab.rtr, zones.path(), &Zones::correct().files());
        let etcd = Etcd::start(1);
        etcd.hub.attach(&lab.rtr, "fh0", "203.0.113.10/24");
        let webhook = webhook::start(&lab.rtr, "127.0.0.1:8089", b"dashboard");
        Features {
            _knot: knot,
            _zones: zones,
            etcd,
            webhook,
        }
    }

    /// `[inbound]`, `[identity]`, `[notify]`, `[mail]` and `[fleet]` tables.
    fn config(&self, files: &AgentFiles) -> String {
        let radius_secret = files.dir.join("radius.secret");
        std::fs::write(&radius_secret, RADIUS_SECRET).expect("RADIUS secret");
        format!(
            "[inbound]\nprotected_mx = [\"198.51.100.25/32\"]\nmx_senders = [\"198.51.100.40/32\"]\n\n\
             [identity]\nradius_listen = \"127.0.0.1:1813\"\nradius_clients = [\"127.0.0.1/32\"]\n\
             radius_secret_file = \"{}\"\n\n\
             [notify]\nwebhook_url = \"{}\"\ntimeout_seconds = 2\n\n\
             [mail]\ndomains = [\"isp.example\"]\nprimary_mx = [\"mx1.isp.example\"]\n\
             spam_checkers = [\"mx2.isp.example\"]\nresolver = \"{DNS}:53\"\naudit_interval_seconds = 5\n\n\
             [fleet]\netcd_endpoints = {}\nkey_prefix = \"/egress/dashboard\"\n",
            radius_secret.display(),
            self.webhook.url(),
            self.etcd.endpoints_toml(),
        )
    }

    /// The BNG tells the agent who holds the subscriber's address.
    fn send_accounting(&self, lab: &Lab, dir: &std::path::Path) {
        radclient_ok(
            &lab.rtr,
            "127.0.0.1:1813",
            RADIUS_SECRET,
            &format!(
                "Acct-Status-Type = Start, Acct-Session-Id = \"sess-dashboard\", \
                 User-Name = \"customer@isp\", Framed-IP-Address = {SUBSCRIBER}"
            ),
            dir,
        );
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
    let features = Features::start(&lab);
    let files = AgentFiles::new();
    files.write_config_for(
        &[
            (&lab.rtr_sub_if, "xdp"),
            (&lab.rtr_up_if, "tc-egress"),
            (&lab.rtr_up_if, "xdp-inbound"),
        ],
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n[detection]\nattempts_threshold = 5\n\n{}",
            features.config(&files)
        ),
    );
    let agent = Agent::start(&lab, files);
    features.send_accounting(&lab, &agent.files.dir);
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
