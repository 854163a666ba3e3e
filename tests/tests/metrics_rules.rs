//! The shipped Prometheus files are valid and the alerting rules behave as their unit tests say.

use std::{path::PathBuf, process::Command};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir())
        .output()
        .expect("promtool is required (Debian package `prometheus`)");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

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
