//! A foreign XDP program that takes the hook behind the agent's back is reported in `status`;
//! with `control.reattach = false` it stays (and port 25 leaks, which the status says), with
//! `reattach = true` the agent detaches it and puts its own program back. XDP only (no tcx
//! backstop), so traffic shows whose program holds the hook. The metrics report it too.
use std::{thread::sleep, time::Duration};

use tests::{
    agent::{
        Agent, AgentFiles, Lab, SUBSCRIBER,
        foreign::ForeignXdp,
        kernel::xdp_prog_id,
        traffic::{connects, smtp_listener},
        wait_for,
    },
    metrics::{http_get, value},
    netns::in_netns,
};

/// `egress_foreign_program{interface,hook="xdp"}` scraped from the agent (default listen, on
/// the router's loopback).
fn foreign_gauge(lab: &Lab) -> Option<f64> {
    let metrics = "127.0.0.1:9725".parse().expect("metrics address");
    let (status, text) = in_netns(&lab.rtr, || http_get(metrics, "/metrics"));
    assert_eq!(status, 200, "{text}");
    let labels = [("interface", lab.rtr_sub_if.as_str()), ("hook", "xdp")];
    value(&text, "egress_foreign_program", &labels)
}

#[test]
fn foreign_xdp_program_is_reported_and_replaced_when_reattach_is_on() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_xdp_only_config(&lab, "reattach = false");
    let agent = Agent::start(&lab, files);
    let our_link = agent.files.pin_dir.join("links/xdp").join(&lab.rtr_sub_if);
    assert!(!connects(&lab, SUBSCRIBER), "port 25 blocked to begin with");

    let foreign = ForeignXdp::load();
    foreign.displace(&our_link, &lab.rtr, &lab.rtr_sub_if);
    wait_for("status to report the foreign program", 10, || {
        let a = agent.attachment(&lab.rtr_sub_if);
        a["foreign_program"] == true && a["attached"] == false
    });
    assert!(
        agent.cli_ok(&["status"]).contains("foreign program"),
        "the human status shows it"
    );
    // reattach = false: reported, never replaced, over several checks.
    sleep(Duration::from_millis(2500));
    assert_eq!(xdp_prog_id(&lab.rtr, &lab.rtr_sub_if), Some(foreign.id()));
    assert_eq!(agent.attachment(&lab.rtr_sub_if)["foreign_program"], true);
    assert!(
        connects(&lab, SUBSCRIBER),
        "the pass-all foreign program really holds the hook"
    );
    assert!(agent.log_text().contains("FOREIGN XDP PROGRAM"));
    assert_eq!(foreign_gauge(&lab), Some(1.0), "metrics report it");

    // Turning reattach on (SIGHUP) replaces it.
    agent.files.write_xdp_only_config(&lab, "reattach = true");
    agent.signal(libc::SIGHUP);
    wait_for("our program back on the hook", 10, || {
        let a = agent.attachment(&lab.rtr_sub_if);
        a["attached"] == true && a["foreign_program"] == false
    });
    let ours = xdp_prog_id(&lab.rtr, &lab.rtr_sub_if);
    assert!(ours.is_some() && ours != Some(foreign.id()));
    assert!(our_link.exists(), "the new link is pinned");
    assert!(!connects(&lab, SUBSCRIBER), "port 25 blocked again");
    assert_eq!(foreign_gauge(&lab), None, "no foreign program any more");

    // With reattach on, the periodic check replaces the next intruder by itself.
    foreign.displace(&our_link, &lab.rtr, &lab.rtr_sub_if);
    wait_for(
        "the periodic check to replace the foreign program",
        10,
        || {
            xdp_prog_id(&lab.rtr, &lab.rtr_sub_if).is_some_and(|id| id != foreign.id())
                && our_link.exists()
        },
    );
    assert!(!connects(&lab, SUBSCRIBER), "port 25 blocked again");
    let log = agent.log_text();
    assert!(
        log.matches("detaching it and attaching ours").count() >= 2,
        "each replacement is logged loudly:\n{log}"
    );
}
