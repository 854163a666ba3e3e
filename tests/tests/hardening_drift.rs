//! Allowlist entries inserted into or deleted from the pinned maps behind the agent's back
//! (with bpftool) are put back within seconds and counted in status (`allowlist_drift`, which
//! the metrics export as egress_allowlist_drift_total). So are the IPv4 destinations' host
//! table and the IPv6 source filter the programs read in front of the tries.
use std::net::Ipv4Addr;

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY, SUBSCRIBER,
    kernel::{bpftool_ok, has_key, host_table_header, lpm_v4_key, wipe_host_table},
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

/// A CLI change is diffed against what the agent applied, not against the maps read back: it
/// writes only its own entry, so a foreign entry it did not touch survives it, and the drift
/// check (not the change) finds it, counts it and removes it.
#[test]
fn a_cli_change_writes_only_its_entry_and_drift_repairs_the_rest() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    let agent = Agent::start(&lab, files);
    let map_path = agent.files.pin_dir.join("maps/EGRESS_SOURCES_V4");
    let map = map_path.to_str().expect("utf-8");
    let rogue_key = lpm_v4_key(SUBSCRIBER.parse::<Ipv4Addr>().expect("subscriber"), 32);
    let drift = |agent: &Agent| {
        agent.status()["allowlist_drift"]["exempt"]
            .as_u64()
            .expect("allowlist_drift.exempt in status")
    };
    let mut update = vec!["map", "update", "pinned", map, "key", "hex"];
    update.extend(rogue_key.iter().map(String::as_str));
    // Value 2: an exempt entry.
    update.extend(["value", "hex", "02", "00", "00", "00"]);
    // A drift check (every 2 s) may fall between the insert and the change; then the round
    // proves nothing and is tried again.
    let mut proven = false;
    for round in 0..5u8 {
        let before = drift(&agent);
        bpftool_ok(&update);
        let added = format!("198.51.100.{}/32", 10 + round);
        agent.cli_ok(&["relay", "add", &added]);
        let survived = has_key(map, &rogue_key);
        let checked_meanwhile = drift(&agent) != before;
        assert!(
            survived || checked_meanwhile,
            "round {round}: `relay add` removed a foreign entry it did not touch (a full re-read)"
        );
        wait_for("the drift check to remove the foreign entry", 10, || {
            !has_key(map, &rogue_key)
        });
        assert_eq!(drift(&agent), before + 1, "round {round}: counted once");
        if survived && !checked_meanwhile {
            proven = true;
            break;
        }
    }
    assert!(
        proven,
        "no round without a drift check between insert and change"
    );
    assert!(
        agent
            .cli_ok(&["relay", "list"])
            .contains("198.51.100.10/32")
    );
}

#[test]
fn a_wiped_destination_host_table_is_rewritten_and_counted() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "[allow]\ndestinations = [\"203.0.113.25/32\"]");
    let agent = Agent::start(&lab, files);
    let table = agent.files.pin_dir.join("maps/EGRESS_DEST_HOSTS_V4");
    let table = table.to_str().expect("utf-8");
    let drift = || agent.status()["allowlist_drift"]["destination"].as_u64();
    assert_eq!(drift(), Some(0));
    let written = wipe_host_table(table);
    wait_for("the wiped destination table to be rewritten", 15, || {
        drift() == Some(1)
    });
    let repaired = host_table_header(table);
    assert_ne!(repaired[0], 0, "the table is on again: {repaired:?}");
    assert_ne!(
        repaired[1], written[1],
        "the header names the rewritten half"
    );
}

#[test]
fn a_cleared_ipv6_source_filter_word_is_rewritten_and_counted() {
    use egress_common::source_filter;
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "[allow]\nrelays = [\"2001:db8:1::25/128\"]");
    let agent = Agent::start(&lab, files);
    let filter = agent.files.pin_dir.join("maps/EGRESS_SOURCE_FILTER_V6");
    let filter = filter.to_str().expect("utf-8");
    let relay: std::net::Ipv6Addr = "2001:db8:1::25".parse().expect("relay");
    let mut first = [0u8; 8];
    first.copy_from_slice(&relay.octets()[..8]);
    let (word, mask) =
        source_filter::position(source_filter::slash48_of_word(u64::from_ne_bytes(first)));
    let key: Vec<String> = word
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let read_word = || {
        let bytes = tests::agent::kernel::array_element(filter, word);
        u64::from_le_bytes(bytes.try_into().expect("an 8-byte word"))
    };
    assert_ne!(read_word() & mask, 0, "the relay's /48 bit is set");
    let drift = || agent.status()["allowlist_drift"]["exempt"].as_u64();
    assert_eq!(drift(), Some(0));
    let mut update = vec!["map", "update", "pinned", filter, "key", "hex"];
    update.extend(key.iter().map(String::as_str));
    update.extend([
        "value", "hex", "00", "00", "00", "00", "00", "00", "00", "00",
    ]);
    bpftool_ok(&update);
    wait_for("the cleared filter word to be rewritten", 15, || {
        read_word() & mask != 0
    });
    assert_eq!(drift(), Some(1), "one word differed");
}

#[test]
fn a_zeroed_ipv6_source_hosts_header_is_rewritten_and_counted() {
    let lab = Lab::new();
    let files = AgentFiles::new();
    files.write_config(&lab, "[allow]\nrelays = [\"2001:db8:1::25/128\"]");
    let agent = Agent::start(&lab, files);
    let table = agent.files.pin_dir.join("maps/EGRESS_SOURCE_HOSTS_V6");
    let table = table.to_str().expect("utf-8");
    let header = host_table_header(table);
    assert_ne!(
        header[0], 0,
        "the relay's /128 puts the table on: {header:?}"
    );
    let drift = || agent.status()["allowlist_drift"]["exempt"].as_u64();
    assert_eq!(drift(), Some(0));
    bpftool_ok(&[
        "map", "update", "pinned", table, "key", "hex", "00", "00", "00", "00", "value", "hex",
        "00", "00", "00", "00", "00", "00", "00", "00",
    ]);
    assert_eq!(host_table_header(table)[0], 0);
    wait_for("the zeroed header to be rewritten", 15, || {
        host_table_header(table)[0] != 0
    });
    assert_eq!(drift(), Some(1), "the header differed");
}
