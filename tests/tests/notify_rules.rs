//! The traceability alert rules (RADIUS accounting refused; notification queue growing;
//! reports dropped) behave as their promtool unit tests say.

use tests::metrics::{prometheus_deploy_dir, promtool};

#[test]
fn notify_traceability_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "egress.rules.yml"]);
    promtool(&["test", "rules", "egress.rules.traceability.test.yml"]);
    let rules =
        std::fs::read_to_string(prometheus_deploy_dir().join("egress.rules.yml")).expect("rules");
    for alert in [
        "EgressRadiusAuthenticationFailing",
        "EgressNotificationQueueGrowing",
        "EgressNotificationsDropped",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "missing {alert}"
        );
    }
}
