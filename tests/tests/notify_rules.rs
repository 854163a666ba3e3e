//! The traceability alert rules (RADIUS accounting refused; notification queue growing;
//! reports dropped) behave as their promtool unit tests say.

use std::{path::PathBuf, process::Command};

#[test]
fn notify_traceability_alert_rules_pass_their_unit_tests() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        &["check", "rules", "egress.rules.yml"][..],
        &["test", "rules", "egress.rules.traceability.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
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
    let rules = std::fs::read_to_string(dir.join("egress.rules.yml")).expect("rules");
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
