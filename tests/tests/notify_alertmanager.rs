//! The Prometheus path to the abuse desk: a real Prometheus scrapes the real agent and
//! evaluates the shipped rules; a real Alertmanager routes the suspected-bot alert for the
//! subscriber flagged in the lab (real SYNs through XDP) to a webhook receiver.

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use tests::{
    agent::{Agent, AgentFiles, Lab, SUBSCRIBER},
    alerting::{alertmanager, prometheus_with_rules},
    netns::in_netns,
    webhook,
};

const METRICS: &str = "127.0.0.1:9725";

#[test]
fn notify_alertmanager_routes_the_shipped_suspected_bot_alert_to_a_receiver() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_xdp_only_config(
        &lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n\
             [detection]\nwindow_seconds = 300\nattempts_threshold = 5\ndistinct_destinations_threshold = 50\n"
        ),
    );
    let agent = Agent::start(&lab, files);
    let receiver = webhook::start(&lab.rtr, "127.0.0.1:0", b"unused");
    let manager = alertmanager(&lab.rtr, &format!("http://{}/alerts", receiver.addr));
    let metrics: SocketAddr = METRICS.parse().expect("addr");
    let prometheus = prometheus_with_rules(&lab.rtr, metrics, manager.addr);

    in_netns(&lab.sub, || {
        for i in 0..8 {
            let server: SocketAddr = format!("198.51.100.{}:25", 10 + i).parse().expect("addr");
            assert!(TcpStream::connect_timeout(&server, Duration::from_millis(300)).is_err());
        }
    });

    let bot_alert = |body: &str| {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
            return false;
        };
        json["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == "EgressSuspectedBot"
                    && a["labels"]["subscriber"] == SUBSCRIBER
                    && a["status"] == "firing"
            })
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !receiver.deliveries().iter().any(|d| bot_alert(&d.body)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no EgressSuspectedBot alert for {SUBSCRIBER} reached the receiver in 120 s\n\
             received: {:?}\nprometheus: {}\nalertmanager: {}\nagent: {}",
            receiver.deliveries(),
            prometheus.log(),
            manager.log(),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let delivery = receiver
        .deliveries()
        .into_iter()
        .find(|d| bot_alert(&d.body))
        .expect("found above");
    assert_eq!(delivery.path, "/alerts");
    let json: serde_json::Value = serde_json::from_str(&delivery.body).expect("json");
    assert_eq!(json["receiver"], "abuse-desk", "{json}");
    let alert = &json["alerts"][0];
    assert_eq!(alert["labels"]["job"], "egress", "{json}");
    assert_eq!(alert["labels"]["severity"], "warning", "{json}");
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert_eq!(
        summary,
        format!("Subscriber {SUBSCRIBER} is a suspected bot")
    );
    // Only the flagged subscriber alerts: no alert names anyone else.
    std::thread::sleep(Duration::from_secs(3));
    for delivery in receiver.deliveries() {
        let json: serde_json::Value = serde_json::from_str(&delivery.body).expect("json");
        for alert in json["alerts"].as_array().into_iter().flatten() {
            if alert["labels"]["alertname"] == "EgressSuspectedBot" {
                assert_eq!(alert["labels"]["subscriber"], SUBSCRIBER, "{json}");
            }
        }
    }
}
