//! The etcd harness itself: a three-member cluster in its namespaces starts, keys round-trip,
//! the cluster survives one member killed, compaction works, and it comes back after a full
//! stop with its data.

use tests::etcd::Etcd;

#[test]
fn three_member_cluster_round_trips_keys_and_survives_a_member() {
    let mut etcd = Etcd::start(3);
    assert_eq!(etcd.endpoints().len(), 3);
    etcd.put("/egress/x/relay/192.0.2.10/32", r#"{"comment":"a"}"#);
    etcd.put("/egress/x/exempt/192.0.2.20/32", "-not json-");
    let kvs = etcd.get_prefix("/egress/x/");
    assert_eq!(
        kvs,
        vec![
            (
                "/egress/x/exempt/192.0.2.20/32".to_owned(),
                "-not json-".to_owned()
            ),
            (
                "/egress/x/relay/192.0.2.10/32".to_owned(),
                r#"{"comment":"a"}"#.to_owned()
            ),
        ]
    );

    etcd.kill(0);
    assert!(!etcd.members[0].is_running());
    // The two left elect a leader when the killed one led; writes wait for that.
    etcd.wait_healthy();
    etcd.put("/egress/x/relay/192.0.2.11/32", "{}");
    assert_eq!(etcd.delete("/egress/x/exempt/192.0.2.20/32"), 1);
    assert_eq!(etcd.get_prefix("/egress/x/").len(), 2);

    let before = etcd.revision();
    let compacted = etcd.compact_to_current();
    assert!(compacted >= before);
    let old = etcd.etcdctl(&["get", "--rev", "1", "/egress/x/relay/192.0.2.10/32"]);
    assert!(!old.status.success(), "a compacted revision still readable");

    etcd.stop_all();
    let down = etcd.etcdctl(&["get", "/egress/x/relay/192.0.2.10/32"]);
    assert!(
        !down.status.success(),
        "etcd answered with every member killed"
    );
    etcd.start_all();
    assert_eq!(
        etcd.get_prefix("/egress/x/").len(),
        2,
        "data lost over a restart"
    );
}

/// The router lab without `[fleet]` (the agent's fleet side is not needed): a relay from the
/// config passes and the subscriber stays blocked while a member is killed, the router reaches
/// etcd over the hub, and a partition cuts it off until healed.
#[test]
fn router_lab_carries_traffic_and_partitions() {
    use tests::etcd::fleet;
    let mut etcd = Etcd::start(3);
    let config = format!(
        "[metrics]\nlisten = \"{}:9725\"\n\n[allow]\nrelays = [\"192.0.2.10/32\"]\n",
        fleet::router_address(0)
    );
    let router = fleet::router_configured(&etcd, 0, &config);
    let member = etcd.members[1].address.clone();
    assert!(
        router.reaches(&member, 2379),
        "router cannot reach etcd on the hub"
    );
    assert!(
        router.metrics().contains("egress_build_info"),
        "metrics not served on the hub address"
    );
    let routers = [router];
    fleet::assert_enforcement_holds(&routers, 3.0, || etcd.kill(0));
    let [router] = routers;
    router.partition();
    assert!(
        !router.reaches(&member, 2379),
        "partitioned router still reaches etcd"
    );
    router.heal();
    wait_for_reach(&router, &member);
}

fn wait_for_reach(router: &tests::etcd::fleet::Router, member: &str) {
    tests::agent::wait_for("healed router reaches etcd", 20, || {
        router.reaches(member, 2379)
    });
}
