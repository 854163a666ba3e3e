//! Where entries come from with `[fleet]`: a config entry and a fleet entry for one prefix are
//! both listed, and removing either keeps the other in force; a local CLI entry from before
//! the fleet moves into it by `add` then `remove`, with the relay allowed throughout.

use tests::{
    agent::{RELAY, wait_for},
    etcd::{
        Etcd,
        fleet::{self, KEY_PREFIX, Router, relay_key},
    },
};

const RELAY_PREFIX: &str = "192.0.2.10/32";

fn wait_lists(router: &Router, source: &str, listed: bool) {
    wait_for(
        &format!("{RELAY_PREFIX} listed from {source}: {listed}"),
        20,
        || router.lists_relay(RELAY_PREFIX, source) == listed,
    );
}

fn wait_connected(router: &Router) {
    wait_for("router connected to etcd", 20, || {
        router.fleet_status()["connected"] == true
    });
}

#[test]
fn config_and_fleet_entries_for_one_prefix_are_listed_and_removed_separately() {
    let etcd = Etcd::start(1);
    let config_relay = format!("[allow]\nrelays = [\"{RELAY_PREFIX}\"]\n");
    let router = fleet::router(&etcd, 0, &config_relay);
    wait_connected(&router);
    assert!(
        router.lists_relay(RELAY_PREFIX, "config"),
        "{:?}",
        router.relays()
    );
    assert!(router.relay_connects(), "the config relay is blocked");

    router
        .agent
        .cli_ok(&["relay", "add", RELAY, "--comment", "fleet copy"]);
    wait_lists(&router, "fleet", true);
    assert!(
        router.lists_relay(RELAY_PREFIX, "config"),
        "{:?}",
        router.relays()
    );

    // Removing through the CLI takes the fleet's entry; the config's stays in force.
    let said = router.agent.cli_ok(&["relay", "remove", RELAY]);
    assert!(said.contains("config file's entry stays"), "{said}");
    wait_lists(&router, "fleet", false);
    assert!(
        router.lists_relay(RELAY_PREFIX, "config"),
        "{:?}",
        router.relays()
    );
    assert!(
        router.relay_connects(),
        "removing the fleet copy blocked the config relay"
    );
    let out = router.agent.cli(&["relay", "remove", RELAY]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "removing a config entry: {out:?}"
    );

    // Removing the config's entry (reload) keeps the fleet's in force.
    router.agent.cli_ok(&["relay", "add", RELAY]);
    wait_lists(&router, "fleet", true);
    router.agent.files.write_xdp_only_config(
        &router.lab,
        &fleet::fleet_config(&etcd, &router.address, ""),
    );
    router.agent.signal(libc::SIGHUP);
    wait_lists(&router, "config", false);
    assert!(
        router.lists_relay(RELAY_PREFIX, "fleet"),
        "{:?}",
        router.relays()
    );
    assert!(
        router.relay_connects(),
        "dropping the config relay blocked the fleet relay"
    );

    router.agent.cli_ok(&["relay", "remove", RELAY]);
    wait_for("the relay is blocked once no source allows it", 20, || {
        !router.relay_connects()
    });
}

#[test]
fn a_local_entry_from_before_the_fleet_moves_into_it() {
    let etcd = Etcd::start(1);
    let metrics = format!(
        "[metrics]\nlisten = \"{}:9725\"\n",
        fleet::router_address(0)
    );
    let mut router = fleet::router_configured(&etcd, 0, &metrics);
    router
        .agent
        .cli_ok(&["relay", "add", RELAY, "--comment", "local"]);
    assert!(
        router.lists_relay(RELAY_PREFIX, "cli"),
        "{:?}",
        router.relays()
    );

    router.agent.stop_with(libc::SIGTERM);
    let config = fleet::fleet_config(&etcd, &router.address, "");
    router
        .agent
        .files
        .write_xdp_only_config(&router.lab, &config);
    router.agent.restart(&router.lab);
    wait_connected(&router);
    assert!(
        router.lists_relay(RELAY_PREFIX, "cli"),
        "{:?}",
        router.relays()
    );
    assert!(
        router.relay_connects(),
        "the local relay is blocked under [fleet]"
    );

    // `add` writes it to etcd; `remove` then takes the local copy, the fleet's stays.
    router
        .agent
        .cli_ok(&["relay", "add", RELAY, "--comment", "moved"]);
    assert!(
        etcd.get_prefix(KEY_PREFIX)
            .iter()
            .any(|(k, _)| *k == relay_key(RELAY_PREFIX)),
        "not in etcd: {:?}",
        etcd.get_prefix(KEY_PREFIX)
    );
    wait_lists(&router, "fleet", true);
    router.agent.cli_ok(&["relay", "remove", RELAY]);
    assert!(
        !router.lists_relay(RELAY_PREFIX, "cli"),
        "{:?}",
        router.relays()
    );
    assert!(
        router.lists_relay(RELAY_PREFIX, "fleet"),
        "{:?}",
        router.relays()
    );
    assert!(
        router.relay_connects(),
        "moving the relay into the fleet blocked it"
    );

    // The applied set is persisted with its revision.
    let revision = etcd.revision();
    wait_for("applied revision reaches etcd's", 20, || {
        router.fleet_status()["applied_revision"] == revision
    });
    let path = router.agent.files.state_dir.join("fleet.json");
    let snapshot: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("fleet.json is JSON");
    assert_eq!(snapshot["revision"], revision, "{snapshot}");
    assert_eq!(snapshot["entries"][0]["prefix"], RELAY_PREFIX, "{snapshot}");
    assert_eq!(snapshot["entries"][0]["comment"], "moved", "{snapshot}");
}
