//! The shipped Prometheus files are valid and the alerting rules behave as their unit tests say.

use tests::metrics::{prometheus_deploy_dir as deploy_dir, promtool};

#[test]
fn metrics_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "egress.rules.yml"]);
    promtool(&["test", "rules", "egress.rules.test.yml"]);
}

#[test]
fn metrics_scrape_example_is_a_valid_prometheus_config() {
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn metrics_rules_cover_the_required_alerts() {
    let rules = std::fs::read_to_string(deploy_dir().join("egress.rules.yml"))
        .expect("read deploy/prometheus/egress.rules.yml");
    for alert in [
        "EgressSuspectedBot",
        "EgressAgentDown",
        "EgressProgramNotAttached",
        "EgressSubscriberMapNearlyFull",
        "EgressConfigReloadFailed",
        "EgressForeignProgram",
        "EgressSpamCheckerThrottled",
        "EgressPrimaryMxDropFlood",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "missing alert {alert}"
        );
    }
}
