//! The daemon runs the mail audit every `audit_interval_seconds` off its event loop and
//! exports the results: the real agent in a lab, with knot serving its zones in the router's
//! namespace.

use tests::{
    agent::{Agent, AgentFiles, Lab, wait_for},
    mail::{DNS, TempDir, knot, zones::Zones},
    metrics::{http_get, promtool_check_metrics, value},
    netns::{exec_ok, in_netns},
};

const METRICS: &str = "127.0.0.1:9725";

#[test]
fn audit_daemon_exports_checks_and_last_run() {
    let lab = Lab::new();
    exec_ok(
        &lab.rtr,
        &["ip", "addr", "add", &format!("{DNS}/32"), "dev", "lo"],
    );
    let dir = TempDir::new("audit-daemon");
    let _knot = knot::start(&lab.rtr, dir.path(), &Zones::correct().files());
    let files = AgentFiles::new();
    files.write_config(
        &lab,
        &format!(
            "[metrics]\nlisten = \"{METRICS}\"\n\n[allow]\nrelays = [\"192.0.2.25/32\"]\n\n\
             [mail]\ndomains = [\"isp.example\"]\nprimary_mx = [\"mx1.isp.example\"]\n\
             spam_checkers = [\"mx2.isp.example\"]\nresolver = \"{DNS}:53\"\naudit_interval_seconds = 1\n"
        ),
    );
    let agent = Agent::start(&lab, files);
    let scrape = || {
        in_netns(&lab.rtr, || {
            http_get(METRICS.parse().expect("addr"), "/metrics")
        })
    };
    let mut text = String::new();
    wait_for("the first audit in /metrics", 60, || {
        text = scrape().1;
        text.contains("egress_audit_last_run_timestamp_seconds")
    });
    promtool_check_metrics(&text);
    let check = |check: &str, target: &str| {
        value(
            &text,
            "egress_audit_check",
            &[("check", check), ("target", target)],
        )
    };
    assert_eq!(
        check("dns.mx_present", "isp.example"),
        Some(1.0),
        "{text}\n{}",
        agent.log_text()
    );
    assert_eq!(check("dns.relay_fcrdns", "192.0.2.25"), Some(1.0), "{text}");
    assert_eq!(
        check("guard.primary_mx_protected", "192.0.2.30"),
        Some(0.5),
        "{text}"
    );
    // Nothing listens on the relay's address in this lab: its SMTP checks fail.
    assert_eq!(
        check("smtp.relay_banner_matches_ptr", "192.0.2.25"),
        Some(0.0),
        "{text}"
    );
    let first = value(&text, "egress_audit_last_run_timestamp_seconds", &[]).expect("last run");
    // It runs again (every second here), and the control socket answers meanwhile.
    agent.cli_ok(&["status"]);
    wait_for("a second audit", 60, || {
        value(&scrape().1, "egress_audit_last_run_timestamp_seconds", &[])
            .is_some_and(|t| t > first)
    });
}
