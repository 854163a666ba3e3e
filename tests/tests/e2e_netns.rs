//! End to end: the dataplane attached in a router namespace judges real TCP connections.
//!
//! ```text
//!  subscriber ns              router ns                          internet ns
//!  sub0 192.0.2.2  ───── rsub0 192.0.2.1   rup0 198.51.100.1 ───── net0 198.51.100.2
//!       192.0.2.10 (relay)   [XDP ingress]  [TC egress, tcx]        listeners :25 :587 :80
//!  (and 2001:db8:1::/64, 2001:db8:2::/64 alike)
//! ```

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    time::Duration,
};

use aya::programs::{
    LinkOrder, TcAttachType,
    tc::{self, NlOptions, TcAttachOptions},
    xdp::XdpMode,
};
use egress_common::Counter;
use socket2::{Domain, Socket, Type};
use tests::{
    dataplane::{Dataplane, Policy},
    netns::{Netns, TestNetns as _, addr, enter, in_netns, route, veth},
};

const SUBSCRIBER: [&str; 2] = ["192.0.2.2", "2001:db8:1::2"];
const RELAY: [&str; 2] = ["192.0.2.10", "2001:db8:1::25"];
const SERVER: [&str; 2] = ["198.51.100.2", "2001:db8:2::2"];
/// A port that is never blocked, to show the lab itself works while 25 is blocked.
const OPEN_PORTS: [u16; 2] = [587, 80];

/// Three namespaces wired as in the module diagram, with listeners in the internet namespace.
struct Lab {
    sub: Netns,
    rtr: Netns,
    _net: Netns,
    _listeners: Vec<TcpListener>,
}

impl Lab {
    fn new() -> Lab {
        let (sub, rtr, net) = (Netns::new("sub"), Netns::new("rtr"), Netns::new("net"));
        veth(&sub, "sub0", &rtr, "rsub0");
        veth(&rtr, "rup0", &net, "net0");
        for (ns, ifname, cidr) in [
            (&sub, "sub0", "192.0.2.2/24"),
            (&sub, "sub0", "192.0.2.10/24"),
            (&sub, "sub0", "2001:db8:1::2/64"),
            (&sub, "sub0", "2001:db8:1::25/64"),
            (&rtr, "rsub0", "192.0.2.1/24"),
            (&rtr, "rsub0", "2001:db8:1::1/64"),
            (&rtr, "rup0", "198.51.100.1/24"),
            (&rtr, "rup0", "2001:db8:2::1/64"),
            (&net, "net0", "198.51.100.2/24"),
            (&net, "net0", "2001:db8:2::2/64"),
        ] {
            addr(ns, ifname, cidr);
        }
        rtr.forward();
        route(&sub, "default", "192.0.2.1");
        route(&sub, "default", "2001:db8:1::1");
        route(&net, "default", "198.51.100.1");
        route(&net, "default", "2001:db8:2::1");
        let listeners = in_netns(&net, || {
            let mut all = Vec::new();
            for server in SERVER {
                for port in [25, 587, 80] {
                    let at = SocketAddr::new(parse(server), port);
                    all.push(
                        TcpListener::bind(at).unwrap_or_else(|e| panic!("listen on {at}: {e}")),
                    );
                }
            }
            all
        });
        Lab {
            sub,
            rtr,
            _net: net,
            _listeners: listeners,
        }
    }

    /// Whether a TCP handshake from `source` in the subscriber namespace to the server completes.
    fn connects(&self, source: &str, port: u16) -> bool {
        let source = parse(source);
        let server = SERVER[usize::from(source.is_ipv6())];
        let to = SocketAddr::new(parse(server), port);
        in_netns(&self.sub, move || {
            let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)
                .expect("create a TCP socket");
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .unwrap_or_else(|e| panic!("bind {source}: {e}"));
            socket
                .connect_timeout(&to.into(), Duration::from_millis(1500))
                .is_ok()
        })
    }

    /// Every family: port 25 from the subscriber is blocked iff `enforced`; relays and open
    /// ports always get through.
    fn assert_policy(&self, enforced: bool) {
        for family in 0..2 {
            let (subscriber, relay) = (SUBSCRIBER[family], RELAY[family]);
            assert_eq!(
                self.connects(subscriber, 25),
                !enforced,
                "{subscriber} -> port 25 (enforced: {enforced})"
            );
            assert!(self.connects(relay, 25), "relay {relay} -> port 25");
            for port in OPEN_PORTS {
                assert!(self.connects(subscriber, port), "{subscriber} -> {port}");
            }
        }
    }
}

fn parse(address: &str) -> IpAddr {
    address.parse().expect("a literal address")
}

fn relays() -> Policy {
    RELAY
        .iter()
        .fold(Policy::default(), |policy, relay| policy.relay(relay))
}

fn assert_counted(dataplane: &Dataplane) {
    let counters = dataplane.counters();
    for counter in [
        Counter::DroppedV4,
        Counter::DroppedV6,
        Counter::AllowedRelayV4,
        Counter::AllowedRelayV6,
    ] {
        assert!(counters.get(counter) > 0, "{} not counted", counter.name());
    }
}

#[test]
fn xdp_on_the_subscriber_interface_blocks_port_25_except_relays() {
    enforced_while_attached(|dataplane| {
        dataplane
            .xdp()
            .attach("rsub0", XdpMode::Driver)
            .expect("attach XDP (native veth mode) to rsub0");
    });
}

#[test]
fn tc_on_the_uplink_blocks_port_25_except_relays() {
    enforced_while_attached(|dataplane| {
        dataplane
            .tc()
            .attach_with_options(
                "rup0",
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .expect("attach TC (tcx egress) to rup0");
    });
}

/// Kernels without tcx (Debian 12's 6.1): a direct-action cls_bpf filter on a clsact qdisc;
/// dropping the dataplane deletes the filter.
#[test]
fn tc_legacy_filter_on_the_uplink_blocks_port_25_except_relays() {
    enforced_while_attached(|dataplane| {
        tc::qdisc_add_clsact("rup0").expect("add clsact to rup0");
        dataplane
            .tc()
            .attach_with_options(
                "rup0",
                TcAttachType::Egress,
                TcAttachOptions::Netlink(NlOptions {
                    priority: 1,
                    ..NlOptions::default()
                }),
            )
            .expect("attach TC (cls_bpf egress filter) to rup0");
    });
}

/// Port 25 is open before `attach` (run inside the router) and after the dataplane is
/// dropped, and blocked except for relays, with counters, in between.
fn enforced_while_attached(attach: impl FnOnce(&mut Dataplane)) {
    let lab = Lab::new();
    lab.assert_policy(false);
    let mut dataplane = Dataplane::load(&[25]);
    dataplane.apply(&relays());
    {
        let _inside = enter(&lab.rtr);
        attach(&mut dataplane);
    }
    lab.assert_policy(true);
    assert_counted(&dataplane);
    {
        // A netlink filter is deleted by ifindex, in the namespace of the caller.
        let _inside = enter(&lab.rtr);
        drop(dataplane);
    }
    lab.assert_policy(false);
}
