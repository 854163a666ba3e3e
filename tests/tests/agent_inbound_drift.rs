//! The inbound lists are checked for drift like the allowlists: a protected primary MX
//! deleted from its pinned trie behind the agent's back (with bpftool), or a rogue spam
//! checker inserted, is put back within seconds and counted under its own kind. So is the
//! IPv4 host table the program reads instead of the tries: wiped, it is rewritten.
use std::net::Ipv4Addr;

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY,
    kernel::{bpftool_json, bpftool_ok, has_key, lpm_v4_key},
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

    // The host table (`egress_common::inbound_hosts`): element 0 is its header.
    let hosts = maps.join("EGRESS_INBOUND_HOSTS_V4");
    let hosts = hosts.to_str().expect("utf-8");
    let header = || -> Vec<u8> {
        let entry = bpftool_json(&[
            "map", "lookup", "pinned", hosts, "key", "hex", "00", "00", "00", "00",
        ]);
        entry["value"]
            .as_array()
            .unwrap_or_else(|| panic!("bpftool printed no value bytes: {entry}"))
            .iter()
            .map(|byte| {
                let text = byte.as_str().unwrap_or_default().trim_start_matches("0x");
                u8::from_str_radix(text, 16)
                    .unwrap_or_else(|err| panic!("value byte {byte}: {err}"))
            })
            .collect()
    };
    let written = header();
    assert_ne!(
        written[0], 0,
        "a protected /32 puts the host table on: {written:?}"
    );
    // Every slot of the half in use wiped: the program would find no protected host.
    let base = 1 + u32::from(written[1] & 1) * egress_common::inbound_hosts::HALF;
    for index in base..base + (1 << written[0]) {
        let key: Vec<String> = index
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut update = vec!["map", "update", "pinned", hosts, "key", "hex"];
        update.extend(key.iter().map(String::as_str));
        update.extend([
            "value", "hex", "00", "00", "00", "00", "00", "00", "00", "00",
        ]);
        bpftool_ok(&update);
    }
    let rewritten = wait_until(15, || drift("protected_mx") == Some(2));
    assert!(
        rewritten,
        "the host table was not rewritten: drift {:?}, header {:?}\nagent log:\n{}",
        agent.status()["allowlist_drift"],
        header(),
        agent.log_text()
    );
    let repaired = header();
    assert_ne!(repaired[0], 0, "the host table is on again: {repaired:?}");
    assert_ne!(
        repaired[1], written[1],
        "the header names the rewritten half"
    );
}
