//! The inbound lists are checked for drift like the allowlists: a protected primary MX
//! deleted from its pinned trie behind the agent's back (with bpftool), or a rogue spam
//! checker inserted, is put back within seconds and counted under its own kind. So is the
//! IPv4 host table the program reads instead of the tries: wiped, it is rewritten.
use std::net::Ipv4Addr;

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY,
    kernel::{bpftool_ok, has_key, host_table_header, lpm_v4_key, wipe_host_table},
    wait_for, wait_until,
};

#[test]
fn inbound_list_drift_is_reverted_and_counted_by_kind() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config_for(
        &[(&lab.rtr_up_if, "xdp-inbound")],
        &format!("[inbound]\nprotected_mx = [\"{RELAY}/32\"]\nmx_senders = [\"198.51.100.40/32\"]"),
    );
    let agent = Agent::start(&lab, files);
    let maps = agent.files.pin_dir.join("maps");
    let protected = maps.join("EGRESS_PROTECTED_MX_V4");
    let protected = protected.to_str().expect("utf-8");
    let senders = maps.join("EGRESS_MX_SENDERS_V4");
    let senders = senders.to_str().expect("utf-8");
    let mx_key = lpm_v4_key(RELAY.parse::<Ipv4Addr>().expect("MX"), 32);
    let rogue_key = lpm_v4_key(Ipv4Addr::new(198, 51, 100, 66), 32);
    assert!(
        has_key(protected, &mx_key),
        "the primary MX is in its trie before attach"
    );
    let drift = |kind: &str| agent.status()["allowlist_drift"][kind].as_u64();
    assert_eq!(
        (drift("protected_mx"), drift("mx_sender")),
        (Some(0), Some(0))
    );

    let mut delete = vec!["map", "delete", "pinned", protected, "key", "hex"];
    delete.extend(mx_key.iter().map(String::as_str));
    bpftool_ok(&delete);
    wait_for("the deleted primary MX to be restored", 15, || {
        has_key(protected, &mx_key)
    });
    assert_eq!(drift("protected_mx"), Some(1));

    let mut update = vec!["map", "update", "pinned", senders, "key", "hex"];
    update.extend(rogue_key.iter().map(String::as_str));
    update.extend(["value", "hex", "10", "00", "00", "00"]);
    bpftool_ok(&update);
    wait_for("the rogue sender to be removed", 15, || {
        !has_key(senders, &rogue_key)
    });
    assert_eq!(drift("mx_sender"), Some(1));
    assert_eq!(
        drift("relay"),
        Some(0),
        "drift is counted under the inbound kinds only"
    );

    // Every slot of the host table's half in use wiped: the program would find no protected
    // host.
    let hosts = maps.join("EGRESS_INBOUND_HOSTS_V4");
    let hosts = hosts.to_str().expect("utf-8");
    let written = wipe_host_table(hosts);
    let rewritten = wait_until(15, || drift("protected_mx") == Some(2));
    assert!(
        rewritten,
        "the host table was not rewritten: drift {:?}, header {:?}\nagent log:\n{}",
        agent.status()["allowlist_drift"],
        host_table_header(hosts),
        agent.log_text()
    );
    let repaired = host_table_header(hosts);
    assert_ne!(repaired[0], 0, "the host table is on again: {repaired:?}");
    assert_ne!(
        repaired[1], written[1],
        "the header names the rewritten half"
    );
}
