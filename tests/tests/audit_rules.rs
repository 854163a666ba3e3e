//! The mail audit's alert rules are valid and behave as their unit tests say.

use std::{path::PathBuf, process::Command};

fn promtool(args: &[&str]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
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
fn audit_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "egress-audit.rules.yml"]);
    promtool(&["test", "rules", "egress-audit.rules.test.yml"]);
}
