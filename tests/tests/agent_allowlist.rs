//! Relay and exempt entries added through the CLI open port 25 for exactly those sources,
//! removing them closes it again, and they survive an agent restart.
use tests::agent::{
    Agent, AgentFiles, EXEMPT, Lab, RELAY, SUBSCRIBER,
    traffic::{connects, smtp_listener},
};

#[test]
fn relay_and_exempt_added_by_cli_pass_and_removed_are_blocked() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let agent = Agent::start(&lab, files);

    assert!(
        !connects(&lab, RELAY),
        "relay must be blocked before it is allowlisted"
    );
    assert!(!connects(&lab, SUBSCRIBER), "subscriber must be blocked");

    agent.cli_ok(&["relay", "add", RELAY, "--comment", "smart relay"]);
    assert!(
        connects(&lab, RELAY),
        "relay added by CLI must reach port 25"
    );
    assert!(
        !connects(&lab, SUBSCRIBER),
        "other subscribers stay blocked"
    );

    agent.cli_ok(&["exempt", "add", &format!("{EXEMPT}/32")]);
    assert!(
        connects(&lab, EXEMPT),
        "exempt customer added by CLI must reach port 25"
    );

    let list = agent.cli_ok(&["relay", "list"]);
    assert!(
        list.contains("PREFIX") && list.contains("192.0.2.10/32") && list.contains("smart relay"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("192.0.2.10/32") && l.contains("cli")),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&agent.cli_ok(&["exempt", "list", "--json"])).expect("json");
    assert_eq!(json[0]["prefix"], "192.0.2.20/32", "{json}");

    agent.cli_ok(&["relay", "remove", RELAY]);
    assert!(
        !connects(&lab, RELAY),
        "removed relay must be blocked again"
    );
    agent.cli_ok(&["exempt", "remove", EXEMPT]);
    assert!(
        !connects(&lab, EXEMPT),
        "removed exempt customer must be blocked again"
    );
}

#[test]
fn cli_entries_survive_an_agent_restart() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let mut agent = Agent::start(&lab, files);
    agent.cli_ok(&["relay", "add", RELAY, "--comment", "kept"]);

    assert!(agent.stop_with(libc::SIGTERM).success(), "SIGTERM exits 0");
    // The pinned maps keep enforcing while no agent runs.
    assert!(
        connects(&lab, RELAY),
        "relay passes while the agent is down"
    );
    assert!(
        !connects(&lab, SUBSCRIBER),
        "subscriber blocked while the agent is down"
    );

    // Wipe the maps' contents: the restarted agent must restore the entry from state_dir.
    let pin_dir = agent.files.pin_dir.clone();
    let detached = tests::agent::cli(&[
        "detach",
        "--pin-dir",
        pin_dir.to_str().expect("utf-8"),
        "--socket",
        agent.files.socket(),
    ]);
    assert!(detached.status.success());
    agent.restart(&lab);
    let list = agent.cli_ok(&["relay", "list"]);
    assert!(
        list.contains("192.0.2.10/32") && list.contains("kept"),
        "{list}"
    );
    assert!(
        connects(&lab, RELAY),
        "persisted relay passes after restart"
    );
    assert!(!connects(&lab, SUBSCRIBER));
}
