//! Fail-static with a three-member etcd cluster and three routers (one lab for the file):
//! members killed and the whole cluster stopped while traffic flows; a partitioned router
//! catching up (deletions and a compacted revision included); an agent restarted while etcd
//! is down; garbage under the key prefix.

use tests::{
    agent::{RELAY, wait_for},
    etcd::{
        Etcd,
        fleet::{self, KEY_PREFIX, Router, entry_value, relay_key},
    },
};

const RELAY_KEY_PREFIX: &str = "192.0.2.10/32";

fn wait_connected(routers: &[Router], connected: bool) {
    for (k, router) in routers.iter().enumerate() {
        wait_for(
            &format!("router {k} fleet connected = {connected}"),
            30,
            || router.fleet_status()["connected"] == connected,
        );
    }
}

fn wait_lists(router: &Router, k: usize, prefix: &str, listed: bool) {
    wait_for(
        &format!("router {k} lists {prefix} from the fleet: {listed}"),
        30,
        || router.lists_relay(prefix, "fleet") == listed,
    );
}

#[test]
fn fleet_fails_static_and_converges() {
    let mut etcd = Etcd::start(3);
    let mut routers = fleet::routers(&etcd, 3, "");
    wait_connected(&routers, true);
    routers[0].agent.cli_ok(&["relay", "add", RELAY]);
    for (k, router) in routers.iter().enumerate() {
        wait_for(&format!("router {k} lets the relay through"), 30, || {
            router.relay_connects()
        });
    }

    // One member killed, then the whole cluster: enforcement does not move.
    let etcd_ref = &mut etcd;
    fleet::assert_enforcement_holds(&routers, 8.0, || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        etcd_ref.kill(0);
        std::thread::sleep(std::time::Duration::from_secs(2));
        etcd_ref.stop_all();
    });
    wait_connected(&routers, false);
    let text = routers[0].agent.cli_ok(&["status"]);
    assert!(
        text.contains("DISCONNECTED, enforcing the last applied set"),
        "status with etcd down:\n{text}"
    );
    for (k, router) in routers.iter().enumerate() {
        assert_eq!(
            router.metric("egress_fleet_connected"),
            Some(0.0),
            "router {k}"
        );
        assert!(
            router.lists_relay(RELAY_KEY_PREFIX, "fleet"),
            "router {k} lost the relay"
        );
    }
    let out = routers[1].agent.cli(&["relay", "add", "192.0.2.50"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "relay add with etcd down: {out:?}"
    );

    etcd.start_all();
    wait_connected(&routers, true);

    // Changes made while router 2 is partitioned reach it on reconnect, deletions included.
    routers[2].partition();
    wait_for("partitioned router 2 reports disconnected", 60, || {
        routers[2].fleet_status()["connected"] == false
    });
    routers[0].agent.cli_ok(&["relay", "add", "192.0.2.30"]);
    routers[0].agent.cli_ok(&["relay", "remove", RELAY]);
    wait_lists(&routers[1], 1, "192.0.2.30/32", true);
    wait_lists(&routers[1], 1, RELAY_KEY_PREFIX, false);
    assert!(
        routers[2].relay_connects(),
        "partitioned router 2 dropped its applied relay"
    );
    routers[2].heal();
    wait_lists(&routers[2], 2, "192.0.2.30/32", true);
    wait_lists(&routers[2], 2, RELAY_KEY_PREFIX, false);
    wait_for(
        "router 2 blocks the relay deleted while it was away",
        30,
        || !routers[2].relay_connects(),
    );

    // A compacted revision during a partition forces the full resync.
    routers[2].partition();
    wait_for("partitioned router 2 reports disconnected", 60, || {
        routers[2].fleet_status()["connected"] == false
    });
    routers[0].agent.cli_ok(&["relay", "add", RELAY]);
    routers[0].agent.cli_ok(&["relay", "remove", "192.0.2.30"]);
    let compacted = etcd.compact_to_current();
    routers[2].heal();
    wait_lists(&routers[2], 2, RELAY_KEY_PREFIX, true);
    wait_lists(&routers[2], 2, "192.0.2.30/32", false);
    wait_for("router 2 lets the re-added relay through", 30, || {
        routers[2].relay_connects()
    });
    let applied = routers[2].fleet_status()["applied_revision"].as_i64();
    assert!(
        applied.is_some_and(|r| r >= compacted),
        "router 2 applied {applied:?}, compacted at {compacted}"
    );

    // An agent restarted while etcd is down enforces its snapshot, then converges.
    routers[1].agent.stop_with(libc::SIGTERM);
    etcd.put(&relay_key("192.0.2.31/32"), &entry_value("while away"));
    etcd.stop_all();
    let router = &mut routers[1];
    router.agent.restart(&router.lab);
    assert!(
        router.relay_connects(),
        "restarted agent does not enforce its snapshot"
    );
    assert!(
        !router.subscriber_connects(),
        "restarted agent lets a subscriber through"
    );
    assert!(
        router.lists_relay(RELAY_KEY_PREFIX, "fleet"),
        "{:?}",
        router.relays()
    );
    assert_eq!(router.fleet_status()["connected"], false);
    etcd.start_all();
    wait_lists(&routers[1], 1, "192.0.2.31/32", true);
    wait_connected(&routers, true);

    // Garbage under the prefix is counted and skipped; the next good entry still applies.
    let errors_before: Vec<f64> = routers
        .iter()
        .map(|r| r.metric("egress_fleet_sync_errors_total").unwrap_or(0.0))
        .collect();
    let garbage = [
        (relay_key("192.0.2.40/32"), "{not json".to_owned()),
        (relay_key("not-a-prefix"), entry_value("bad key")),
        (relay_key("0.0.0.0/0"), entry_value("catch-all")),
        (
            format!("{KEY_PREFIX}/bogus/192.0.2.41/32"),
            entry_value("bad kind"),
        ),
    ];
    for (key, value) in &garbage {
        etcd.put(key, value);
    }
    etcd.put(&relay_key("192.0.2.42/32"), &entry_value("good"));
    for (k, router) in routers.iter_mut().enumerate() {
        wait_lists(router, k, "192.0.2.42/32", true);
        let relays = router.relays();
        for bad in ["192.0.2.40/32", "0.0.0.0/0", "192.0.2.41/32"] {
            assert!(
                relays.iter().all(|e| e["prefix"] != bad),
                "router {k} applied garbage {bad}: {relays:?}"
            );
        }
        let errors = router
            .metric("egress_fleet_sync_errors_total")
            .unwrap_or(0.0);
        assert!(
            errors >= errors_before[k] + garbage.len() as f64,
            "router {k}: sync errors {} -> {errors} after {} garbage keys",
            errors_before[k],
            garbage.len()
        );
        assert!(
            router.agent.is_running(),
            "router {k}'s agent died on garbage"
        );
        assert!(
            !router.subscriber_connects(),
            "router {k} lets a subscriber through"
        );
    }
}

/// A member that takes a write and never confirms it (frozen, as one stuck on its disk): the
/// CLI is told the outcome is unknown, not that nothing changed; the agent answers other
/// requests meanwhile; once the member thaws, the next change goes through.
#[test]
fn a_write_etcd_never_confirms_is_reported_as_unknown() {
    let etcd = Etcd::start(1);
    let routers = fleet::routers(&etcd, 1, "");
    wait_connected(&routers, true);
    let router = &routers[0];

    etcd.pause(0);
    let add = std::thread::scope(|scope| {
        let add = scope.spawn(|| router.agent.cli(&["relay", "add", "192.0.2.50"]));
        wait_for(
            "the agent answers `status` while etcd is frozen",
            10,
            || router.agent.cli(&["status"]).status.success(),
        );
        assert!(
            !add.is_finished(),
            "`relay add` was answered before etcd could have confirmed it"
        );
        add.join().expect("the relay add thread")
    });
    etcd.resume(0);
    let stderr = String::from_utf8_lossy(&add.stderr);
    assert_eq!(
        add.status.code(),
        Some(1),
        "relay add to a frozen etcd: {add:?}"
    );
    assert!(
        stderr.contains("etcd did not answer within")
            && stderr.contains("the change may or may not have been made"),
        "relay add to a frozen etcd: {stderr}"
    );
    assert!(!stderr.contains("nothing changed"), "{stderr}");

    wait_connected(&routers, true);
    router.agent.cli_ok(&["relay", "add", "192.0.2.51"]);
    wait_lists(router, 0, "192.0.2.51/32", true);
}
