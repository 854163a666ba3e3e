//! Three routers on one etcd: a `relay add` on one router lets that relay's real connect()
//! through on all three; a `relay remove` on another blocks it again everywhere.

use tests::{
    agent::{RELAY, wait_for},
    etcd::{
        Etcd,
        fleet::{self, KEY_PREFIX, relay_key},
    },
};

#[test]
fn relay_add_on_one_router_reaches_every_router_and_remove_blocks_everywhere() {
    let etcd = Etcd::start(1);
    let routers = fleet::routers(&etcd, 3, "");
    for (k, router) in routers.iter().enumerate() {
        wait_for(&format!("router {k} connected to etcd"), 20, || {
            router.fleet_status()["connected"] == true
        });
        assert!(
            !router.relay_connects(),
            "router {k} lets the relay through before the add"
        );
        let fleet = router.fleet_status();
        let endpoint = fleet["endpoint"].as_str().unwrap_or_default().to_owned();
        assert!(
            etcd.endpoints_toml().contains(&format!("\"{endpoint}\"")),
            "router {k} endpoint {endpoint:?} is not one of {}",
            etcd.endpoints_toml()
        );
        assert!(
            fleet["last_sync"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "router {k} status has no last sync: {fleet}"
        );
        let text = router.agent.cli_ok(&["status"]);
        assert!(
            text.contains(&format!("fleet: {KEY_PREFIX} at {endpoint}: connected")),
            "router {k} status:\n{text}"
        );
    }

    routers[0]
        .agent
        .cli_ok(&["relay", "add", RELAY, "--comment", "fleet relay"]);
    let key = relay_key("192.0.2.10/32");
    let stored = etcd.get_prefix(KEY_PREFIX);
    let (_, value) = stored
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap_or_else(|| panic!("{key} not in etcd after relay add: {stored:?}"));
    let value: serde_json::Value = serde_json::from_str(value).expect("entry value is JSON");
    assert_eq!(value["comment"], "fleet relay", "{value}");
    for field in ["added", "added_by"] {
        assert!(
            value.get(field).is_some(),
            "entry value lacks {field}: {value}"
        );
    }

    for (k, router) in routers.iter().enumerate() {
        wait_for(
            &format!("router {k} lets the fleet relay through"),
            20,
            || router.relay_connects(),
        );
        assert!(
            router.lists_relay("192.0.2.10/32", "fleet"),
            "router {k}: {:?}",
            router.relays()
        );
        assert!(
            !router.subscriber_connects(),
            "router {k} lets a plain subscriber through"
        );
        let revision = etcd.revision();
        wait_for(
            &format!("router {k} applied revision {revision}"),
            20,
            || router.fleet_status()["applied_revision"] == revision,
        );
    }

    routers[2].agent.cli_ok(&["relay", "remove", RELAY]);
    assert!(
        etcd.get_prefix(KEY_PREFIX).iter().all(|(k, _)| *k != key),
        "{key} still in etcd after relay remove"
    );
    for (k, router) in routers.iter().enumerate() {
        wait_for(&format!("router {k} blocks the removed relay"), 20, || {
            !router.relay_connects()
        });
        assert!(
            !router.lists_relay("192.0.2.10/32", "fleet"),
            "router {k}: {:?}",
            router.relays()
        );
        assert_eq!(
            router.metric("egress_fleet_connected"),
            Some(1.0),
            "router {k}"
        );
    }
}

#[test]
fn bad_fleet_input_is_refused_with_exit_2() {
    let etcd = Etcd::start(1);
    let router = fleet::router(&etcd, 0, "");
    for bad in ["0.0.0.0/0", "not-an-address", "192.0.2.10/33"] {
        let out = router.agent.cli(&["relay", "add", bad]);
        assert_eq!(out.status.code(), Some(2), "relay add {bad}: {out:?}");
    }
    assert!(
        etcd.get_prefix(KEY_PREFIX).is_empty(),
        "refused input reached etcd: {:?}",
        etcd.get_prefix(KEY_PREFIX)
    );
}
