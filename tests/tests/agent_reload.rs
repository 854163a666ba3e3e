//! SIGHUP applies a good config and keeps the old one when the new one is bad.
use std::{thread::sleep, time::Duration};

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY,
    traffic::{connects, smtp_listener},
};

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..50 {
        if condition() {
            return;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, "");
    let agent = Agent::start(&lab, files);
    assert!(!connects(&lab, RELAY));

    agent
        .files
        .write_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    agent.signal(libc::SIGHUP);
    wait_for("the relay from the reloaded config", || {
        agent.cli_ok(&["relay", "list"]).contains("192.0.2.10/32")
    });
    assert!(
        connects(&lab, RELAY),
        "relay from the reloaded config passes"
    );
    assert_eq!(agent.status()["config_last_reload_successful"], true);

    // Bad: a submission port in blocked_ports, and the relay gone. Nothing may change.
    let good = std::fs::read_to_string(&agent.files.config).expect("config");
    std::fs::write(
        &agent.files.config,
        format!("blocked_ports = [25, 587]\n{good}")
            .replace("relays = [\"192.0.2.10/32\"]", "relays = []"),
    )
    .expect("write bad config");
    agent.signal(libc::SIGHUP);
    wait_for("the failed reload to be reported", || {
        agent.status()["config_last_reload_successful"] == false
    });
    assert!(
        connects(&lab, RELAY),
        "the old config stays in force after a bad reload"
    );
    assert!(agent.cli_ok(&["relay", "list"]).contains("192.0.2.10/32"));
    assert!(
        agent.log_text().contains("blocked_ports[1]"),
        "the log names the bad key:\n{}",
        agent.log_text()
    );

    // Mode change through the config map.
    std::fs::write(&agent.files.config, format!("mode = \"monitor\"\n{good}")).expect("write");
    agent.signal(libc::SIGHUP);
    wait_for("monitor mode", || agent.status()["mode"] == "monitor");
    assert_eq!(agent.status()["config_last_reload_successful"], true);
    assert!(
        connects(&lab, tests::agent::SUBSCRIBER),
        "monitor mode lets SMTP through"
    );
}
