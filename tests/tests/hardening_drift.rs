//! Allowlist entries inserted into or deleted from the pinned maps behind the agent's back
//! (with bpftool) are put back within seconds and counted in status (`allowlist_drift`, which
//! the metrics export as egress_allowlist_drift_total).
use std::net::Ipv4Addr;

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY, SUBSCRIBER,
    kernel::{bpftool_ok, has_key, lpm_v4_key},
    traffic::{connects, smtp_listener},
    wait_for,
};

#[test]
fn allowlist_drift_is_reverted_and_counted() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    files.write_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    let agent = Agent::start(&lab, files);
    let map_path = agent.files.pin_dir.join("maps/EGRESS_SOURCES_V4");
    let map = map_path.to_str().expect("utf-8");
    let relay_key = lpm_v4_key(RELAY.parse::<Ipv4Addr>().expect("relay"), 32);
    let rogue_key = lpm_v4_key(SUBSCRIBER.parse::<Ipv4Addr>().expect("subscriber"), 32);
    assert!(has_key(map, &relay_key) && connects(&lab, RELAY));
    let drift = |agent: &Agent| agent.status()["allowlist_drift"]["relay"].as_u64();
    assert_eq!(drift(&agent), Some(0));

    // Deleted behind our back: the relay is briefly blocked, then restored.
    let mut delete = vec!["map", "delete", "pinned", map, "key", "hex"];
    delete.extend(relay_key.iter().map(String::as_str));
    bpftool_ok(&delete);
    wait_for("the deleted relay to be restored", 10, || {
        has_key(map, &relay_key)
    });
    assert_eq!(drift(&agent), Some(1));
    assert!(connects(&lab, RELAY), "the relay passes again");

    // Inserted behind our back: the rogue entry lets the subscriber through until removed.
    let mut update = vec!["map", "update", "pinned", map, "key", "hex"];
    update.extend(rogue_key.iter().map(String::as_str));
    update.extend(["value", "hex", "01", "00", "00", "00"]);
    bpftool_ok(&update);
    wait_for("the inserted entry to be removed", 10, || {
        !has_key(map, &rogue_key)
    });
    assert_eq!(drift(&agent), Some(2));
    assert!(
        !connects(&lab, SUBSCRIBER),
        "the subscriber is blocked again"
    );
    assert!(
        agent.log_text().contains("changed outside the agent"),
        "drift is logged:\n{}",
        agent.log_text()
    );
    // The relay list itself never changed.
    assert!(agent.cli_ok(&["relay", "list"]).contains("192.0.2.10/32"));
}
