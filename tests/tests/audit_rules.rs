//! The mail audit's alert rules are valid and behave as their unit tests say.

use tests::metrics::promtool;

#[test]
fn audit_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "egress-audit.rules.yml"]);
    promtool(&["test", "rules", "egress-audit.rules.test.yml"]);
}
