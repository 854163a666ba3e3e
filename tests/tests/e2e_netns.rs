//! End-to-end: the dataplane attached in a router namespace judges real TCP connections.
use std::{net::TcpListener, time::Duration};
use tests::netns::{Netns, addr, in_netns, route, veth};

#[test]
fn netns_lab_routes_between_namespaces() {
    let sub = Netns::new("s");
    let rtr = Netns::new("r");
    let net = Netns::new("i");
    let id = std::process::id() % 10000;
    let (s0, r0, r1, i0) = (
        format!("s{id}a"),
        format!("r{id}a"),
        format!("r{id}b"),
        format!("i{id}a"),
    );
    veth(&sub, &s0, &rtr, &r0);
    veth(&rtr, &r1, &net, &i0);
    addr(&sub, &s0, "192.0.2.2/24");
    addr(&rtr, &r0, "192.0.2.1/24");
    addr(&rtr, &r1, "198.51.100.1/24");
    addr(&net, &i0, "198.51.100.2/24");
    rtr.enable_forwarding();
    route(&sub, "default", "192.0.2.1");
    route(&net, "default", "198.51.100.1");
    let listener = in_netns(&net, || TcpListener::bind("198.51.100.2:80").expect("bind"));
    let ok = in_netns(&sub, || {
        std::net::TcpStream::connect_timeout(
            &"198.51.100.2:80".parse().expect("addr"),
            Duration::from_secs(2),
        )
        .is_ok()
    });
    drop(listener);
    assert!(ok);
}
