//! The fleet scene: two more edge routers, A and B, take their allowlists from one etcd. The
//! operator adds a relay on A; B applies it (source `fleet`) and a real connect() from that
//! relay through B's XDP reaches the MX on port 25. Then etcd dies: B keeps enforcing what it
//! last applied and says it is disconnected; etcd returns and B reconnects.
//!
//! ```text
//!             etcd 192.0.2.100 (bridge)
//!              /                  \
//!   router A 192.0.2.11     router B 192.0.2.12
//!   (egress-agent, XDP)     (egress-agent, XDP towards the relay)
//!                      new relay 198.51.100.25 ─ XDP ─ B ─ MX 203.0.113.25
//! ```

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use egress_lab::etcd::EtcdMember;

use super::{agent::Agent, interrupt::wait_until, narrate::Narrator};
use crate::netns::{Netns, address, route, veth};

const ETCD: &str = "192.0.2.100";
const KEY_PREFIX: &str = "/egress/demo";
const NEW_RELAY: &str = "198.51.100.25";
const MX: &str = "203.0.113.25";
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// The scene's namespaces; field order is teardown order.
struct FleetLab {
    a: Netns,
    b: Netns,
    relay: Netns,
    mx: Netns,
    etcd: Netns,
    tag: u32,
}

impl FleetLab {
    fn build(tag: u32, narrator: Narrator) -> Result<FleetLab> {
        let ns = |role: &str| {
            Netns::create(
                format!("egress-demo-{tag}-fleet-{role}"),
                narrator.plumbing(),
            )
        };
        let lab = FleetLab {
            a: ns("a")?,
            b: ns("b")?,
            relay: ns("relay")?,
            mx: ns("mx")?,
            etcd: ns("etcd")?,
            tag,
        };
        // The management network: a bridge in etcd's namespace, one port per router.
        lab.etcd.ip(&["link", "add", "br0", "type", "bridge"])?;
        lab.etcd.ip(&["link", "set", "br0", "up"])?;
        address(&lab.etcd, "br0", &format!("{ETCD}/24"))?;
        for (router, name, last) in [(&lab.a, "a", 11), (&lab.b, "b", 12)] {
            let port = format!("eg{tag}f{name}");
            veth(&lab.etcd, &port, router, "mgmt0")?;
            lab.etcd.ip(&["link", "set", &port, "master", "br0"])?;
            address(router, "mgmt0", &format!("192.0.2.{last}/24"))?;
        }
        // Router A's subscriber port (nothing behind it in this scene).
        veth(&lab.a, &lab.a_port(), &lab.a, "sub0")?;
        // Router B: the new relay on its XDP side, the MX on its uplink.
        veth(&lab.b, &lab.b_port(), &lab.relay, "r0")?;
        address(&lab.b, &lab.b_port(), "198.51.100.1/24")?;
        address(&lab.relay, "r0", &format!("{NEW_RELAY}/24"))?;
        veth(&lab.b, &format!("eg{tag}fu"), &lab.mx, "u0")?;
        address(&lab.b, &format!("eg{tag}fu"), "203.0.113.1/24")?;
        address(&lab.mx, "u0", &format!("{MX}/24"))?;
        lab.b.enable_forwarding()?;
        route(&lab.relay, "default", "198.51.100.1")?;
        route(&lab.mx, "default", "203.0.113.1")?;
        Ok(lab)
    }

    fn a_port(&self) -> String {
        format!("eg{}fs", self.tag)
    }

    fn b_port(&self) -> String {
        format!("eg{}fr", self.tag)
    }

    /// Whether a real connect() from the new relay to the MX on port 25 through B succeeds.
    fn relay_connects(&self) -> Result<bool> {
        let mx: SocketAddr = format!("{MX}:25").parse()?;
        Ok(self
            .relay
            .within(|| TcpStream::connect_timeout(&mx, CONNECT_TIMEOUT).is_ok())?)
    }
}

pub fn a_fleet_takes_one_change(
    dir: &Path,
    agent_bin: &Path,
    tag: u32,
    narrator: Narrator,
) -> Result<()> {
    narrator.chapter("7. A fleet: two more routers take their allowlists from one etcd");
    let dir = dir.join("fleet");
    let lab = FleetLab::build(tag, narrator).context("building the fleet lab")?;
    narrator.say(PICTURE);
    // The MX's port 25: the kernel completes handshakes from the backlog, nobody accepts.
    let _mx = lab
        .mx
        .within(|| TcpListener::bind(format!("{MX}:25")))?
        .with_context(|| format!("cannot listen on {MX}:25"))?;
    narrator.say("  Starting etcd (one member, the fleet's source of truth) ...");
    let mut etcd = EtcdMember::new(&lab.etcd, ETCD, &dir.join("etcd"));
    if narrator.runner().echoes() {
        println!("  $ {}", crate::cmd::describe(&etcd.command()));
    }
    etcd.start()?;
    etcd.wait_healthy(Duration::from_secs(30))?;
    narrator.say("  Starting egress-agent on routers A and B, both with this [fleet] table:");
    let fleet_toml = format!(
        "[fleet]\netcd_endpoints = [\"{}\"]\nkey_prefix = \"{KEY_PREFIX}\"\n",
        etcd.client_url()
    );
    narrator.show(&fleet_toml);
    let a = router_agent(
        agent_bin,
        &lab.a,
        &lab.a_port(),
        &dir.join("a"),
        tag,
        "a",
        &fleet_toml,
        narrator,
    )?;
    let b = router_agent(
        agent_bin,
        &lab.b,
        &lab.b_port(),
        &dir.join("b"),
        tag,
        "b",
        &fleet_toml,
        narrator,
    )?;
    for (name, agent) in [("A", &a), ("B", &b)] {
        wait_until(
            TIMEOUT,
            &format!("router {name} to connect to etcd"),
            || Ok(fleet_status(agent)?["connected"] == true),
        )?;
    }
    if lab.relay_connects()? {
        bail!("the new relay reaches the MX on port 25 through B before it is allowlisted");
    }
    narrator.ok("both routers are connected to etcd; B blocks the new relay's port 25 for now");

    narrator.say("  The operator allowlists the new relay, on router A only:");
    narrator.show(&a.cli(&[
        "relay",
        "add",
        &format!("{NEW_RELAY}/32"),
        "--comment",
        "new relay behind router B",
    ])?);
    narrator.say("  What etcd now holds (etcdctl get --prefix /egress/demo):");
    let stored = etcd.etcdctl(&["get", "--prefix", KEY_PREFIX])?;
    narrator.show(String::from_utf8_lossy(&stored.stdout).trim());
    wait_until(
        TIMEOUT,
        "router B to list the new relay from the fleet",
        || lists_from_fleet(&b),
    )?;
    wait_until(
        TIMEOUT,
        "router A to list the new relay from the fleet",
        || lists_from_fleet(&a),
    )?;
    narrator.say("  On router B:");
    narrator.show(&b.cli(&["relay", "list"])?);
    wait_until(TIMEOUT, "the new relay's connect() through B", || {
        lab.relay_connects()
    })?;
    narrator.ok(&format!(
        "both routers applied it (source fleet); {NEW_RELAY} connects to the MX on port 25 through B's XDP"
    ));

    narrator.say("  etcd goes down (its process is killed) ...");
    etcd.stop();
    wait_until(TIMEOUT, "router B to notice etcd is gone", || {
        Ok(fleet_status(&b)?["connected"] == false)
    })?;
    narrator.show(&fleet_lines(&b.cli(&["status"])?));
    if !lab.relay_connects()? {
        bail!("with etcd down, router B no longer lets the fleet's relay through");
    }
    narrator.ok("fail-static: B says it is disconnected and still enforces what it last applied");

    narrator.say("  etcd comes back ...");
    etcd.start()?;
    etcd.wait_healthy(Duration::from_secs(30))?;
    wait_until(TIMEOUT, "router B to reconnect to etcd", || {
        Ok(fleet_status(&b)?["connected"] == true)
    })?;
    narrator.show(&fleet_lines(&b.cli(&["status"])?));
    if !lab.relay_connects()? || !lists_from_fleet(&b)? {
        bail!("after etcd returned, router B lost the fleet's relay");
    }
    narrator.ok("B reconnected and resynced; the relay still goes through");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn router_agent(
    bin: &Path,
    ns: &Netns,
    port: &str,
    dir: &Path,
    tag: u32,
    name: &str,
    fleet_toml: &str,
    narrator: Narrator,
) -> Result<Agent> {
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/egress-demo-{tag}-fleet-{name}"));
    let text = format!(
        "# Fleet router {name} of the demo (generated by cargo xtask demo).\n\
         mode = \"enforce\"\nblocked_ports = [25]\npin_dir = \"{}\"\nstate_dir = \"{}\"\n\n\
         [[interface]]\nname = \"{port}\"\nhook = \"xdp\"\n\n\
         [control]\nsocket = \"{}\"\n\n{fleet_toml}",
        pin_dir.display(),
        dir.join("state").display(),
        Agent::socket_in(dir).display(),
    );
    Agent::start_in(bin, ns, dir, pin_dir, &text, narrator)
}

/// `status --json`'s "fleet" object, without echo: it is polled.
fn fleet_status(agent: &Agent) -> Result<serde_json::Value> {
    let text = agent.quiet_cli(&["status", "--json"])?;
    let status: serde_json::Value =
        serde_json::from_str(&text).context("egress-agent status --json")?;
    Ok(status["fleet"].clone())
}

fn lists_from_fleet(agent: &Agent) -> Result<bool> {
    let text = agent.quiet_cli(&["relay", "list", "--json"])?;
    let list: serde_json::Value =
        serde_json::from_str(&text).context("egress-agent relay list --json")?;
    Ok(list.as_array().is_some_and(|entries| {
        entries
            .iter()
            .any(|e| e["prefix"] == format!("{NEW_RELAY}/32") && e["source"] == "fleet")
    }))
}

/// The `fleet:` lines of `egress-agent status`, long error texts cut to a screen line.
fn fleet_lines(status: &str) -> String {
    const WIDTH: usize = 110;
    let lines: Vec<String> = status
        .lines()
        .skip_while(|line| !line.starts_with("fleet:"))
        .take_while(|line| line.starts_with("fleet:") || line.starts_with("  "))
        .map(|line| match line.char_indices().nth(WIDTH) {
            Some((cut, _)) => format!("{} …", &line[..cut]),
            None => line.to_owned(),
        })
        .collect();
    lines.join("\n")
}

const PICTURE: &str = "
              etcd 192.0.2.100
             /                \\
   router A 192.0.2.11     router B 192.0.2.12
                new relay 198.51.100.25 ── XDP ── B ── MX 203.0.113.25:25
";
