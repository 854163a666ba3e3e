//! The fleet's alert and recording rules are valid and behave as their unit tests say, and
//! the shipped Prometheus configs that load them are valid.

use tests::metrics::promtool;

#[test]
fn fleet_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "egress-fleet.rules.yml"]);
    promtool(&["test", "rules", "egress-fleet.rules.test.yml"]);
}

#[test]
fn shipped_prometheus_configs_are_valid() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "config", "federation.yml"]);
}
