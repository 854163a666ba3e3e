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
