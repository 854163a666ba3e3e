//! The demo's small ISP, in network namespaces, with documentation addresses only:
//!
//! ```text
//!  clean subscriber  100.64.1.10 ─┐ XDP
//!  infected          100.64.2.20 ─┤ XDP   edge router ── TC egress ── Internet 198.51.100.2
//!  mail relay        192.0.2.25  ─┘     (egress-agent)    uplink      MX 203.0.113.25
//! ```

use anyhow::Result;

use crate::cmd::Runner;
use crate::netns::{Netns, address, route, veth};

pub const CLEAN: &str = "100.64.1.10";
pub const INFECTED: &str = "100.64.2.20";
pub const RELAY: &str = "192.0.2.25";
pub const MX: &str = "203.0.113.25";
/// Subscribers' address space: the relay accepts submission from here.
pub const SUBSCRIBERS: &str = "100.64.0.0/10";
/// Where the infected subscriber sprays: ten Internet addresses next to the MX.
pub const SPRAY_TARGETS: std::ops::RangeInclusive<u8> = 100..=109;
pub const INTERNET: &str = "203.0.113.0/24";

/// Interface names on the router, the ones the agent attaches to.
#[derive(Debug)]
pub struct RouterInterfaces {
    pub to_clean: String,
    pub to_infected: String,
    pub uplink: String,
}

/// Field order is teardown order: the router goes first, so nothing is left attached.
#[derive(Debug)]
pub struct Lab {
    pub router: Netns,
    pub clean: Netns,
    pub infected: Netns,
    pub relay: Netns,
    pub internet: Netns,
    pub interfaces: RouterInterfaces,
}

impl Lab {
    /// Builds the lab; `tag` makes names unique (e.g. the process id).
    pub fn build(tag: u32, runner: Runner) -> Result<Lab> {
        let ns = |role: &str| Netns::create(format!("egress-demo-{tag}-{role}"), runner);
        let lab = Lab {
            router: ns("router")?,
            clean: ns("clean")?,
            infected: ns("infected")?,
            relay: ns("relay")?,
            internet: ns("internet")?,
            interfaces: RouterInterfaces {
                to_clean: format!("eg{tag}rc"),
                to_infected: format!("eg{tag}ri"),
                uplink: format!("eg{tag}ru"),
            },
        };
        lab.wire(tag)?;
        Ok(lab)
    }

    fn wire(&self, tag: u32) -> Result<()> {
        let (router, ifs) = (&self.router, &self.interfaces);
        let relay_if = format!("eg{tag}rr");
        // (peer, router's end, peer's end, router's address, peer's address)
        let links = [
            (
                &self.clean,
                &ifs.to_clean,
                "c",
                "100.64.1.1/24",
                "100.64.1.10/24",
            ),
            (
                &self.infected,
                &ifs.to_infected,
                "i",
                "100.64.2.1/24",
                "100.64.2.20/24",
            ),
            (&self.relay, &relay_if, "r", "192.0.2.1/24", "192.0.2.25/24"),
            (
                &self.internet,
                &ifs.uplink,
                "u",
                "198.51.100.1/24",
                "198.51.100.2/24",
            ),
        ];
        for (peer, router_if, peer_role, router_addr, peer_addr) in links {
            let peer_if = format!("eg{tag}{peer_role}");
            veth(router, router_if, peer, &peer_if)?;
            address(router, router_if, router_addr)?;
            address(peer, &peer_if, peer_addr)?;
        }
        router.enable_forwarding()?;
        route(&self.clean, "default", "100.64.1.1")?;
        route(&self.infected, "default", "100.64.2.1")?;
        route(&self.relay, "default", "192.0.2.1")?;
        route(router, INTERNET, "198.51.100.2")?;
        // The Internet side: the MX lives on loopback; replies go back through the router.
        address(&self.internet, "lo", &format!("{MX}/32"))?;
        route(&self.internet, SUBSCRIBERS, "198.51.100.1")?;
        Ok(route(&self.internet, "192.0.2.0/24", "198.51.100.1")?)
    }
}
