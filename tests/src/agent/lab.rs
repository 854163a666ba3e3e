//! The namespaces of the agent lab: subscriber — router — internet.

use std::sync::atomic::Ordering;

use super::{EXEMPT, NEXT, RELAY, SERVER, SUBSCRIBER};
use crate::netns::{Netns, TestNetns as _, addr, route, veth};

/// Three namespaces wired as subscriber — router — internet.
pub struct Lab {
    pub sub: Netns,
    pub rtr: Netns,
    pub net: Netns,
    /// Subscriber's interface, router's subscriber-facing interface (XDP) and uplink (tcx
    /// egress).
    pub sub_if: String,
    pub rtr_sub_if: String,
    pub rtr_up_if: String,
    pub net_if: String,
}

impl Lab {
    pub fn new() -> Lab {
        let (sub, rtr, net) = (Netns::new("as"), Netns::new("ar"), Netns::new("ai"));
        let id = unique_id();
        let names = [
            format!("as{id}"),
            format!("ar{id}"),
            format!("au{id}"),
            format!("ai{id}"),
        ];
        rtr.forward();
        let [sub_if, rtr_sub_if, rtr_up_if, net_if] = names;
        let lab = Lab {
            sub,
            rtr,
            net,
            sub_if,
            rtr_sub_if,
            rtr_up_if,
            net_if,
        };
        lab.connect_internet_side();
        lab.connect_subscriber_side();
        lab
    }

    /// (Re)creates the router — internet veth pair (the uplink) with the server's address and
    /// the internet side's route (after `ip link del` of the uplink). Other addresses the test
    /// gave the internet side went with the old pair.
    pub fn connect_internet_side(&self) {
        veth(&self.rtr, &self.rtr_up_if, &self.net, &self.net_if);
        addr(&self.rtr, &self.rtr_up_if, "198.51.100.1/24");
        addr(&self.net, &self.net_if, &format!("{SERVER}/24"));
        route(&self.net, "default", "198.51.100.1");
    }

    /// (Re)creates the subscriber — router veth pair with its addresses and routes (after
    /// `ip link del` of the router's subscriber-facing interface).
    pub fn connect_subscriber_side(&self) {
        veth(&self.sub, &self.sub_if, &self.rtr, &self.rtr_sub_if);
        for host in [SUBSCRIBER, RELAY, EXEMPT] {
            addr(&self.sub, &self.sub_if, &format!("{host}/24"));
        }
        addr(&self.rtr, &self.rtr_sub_if, "192.0.2.1/24");
        route(&self.sub, "default", "192.0.2.1");
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

fn unique_id() -> u32 {
    (std::process::id() % 10_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}
