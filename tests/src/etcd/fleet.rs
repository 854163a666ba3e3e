//! A fleet of routers on one etcd: each router is an agent [`Lab`] (subscriber — router —
//! internet, XDP on the subscriber side) whose router namespace is also plugged into the etcd
//! hub (`203.0.113.10 + k`), with its own agent configured with `[fleet]`, a relay host and a
//! port-25 listener, so a real `connect()` from the relay goes through that router's XDP.

use std::net::TcpListener;

use super::Etcd;
use crate::{
    agent::{Agent, AgentFiles, Lab, RELAY, SUBSCRIBER, traffic},
    netns::exec_ok,
};

/// The fleet's key space in the tests.
pub const KEY_PREFIX: &str = "/egress/x";
/// The router's interface towards the etcd hub.
const HUB_IF: &str = "fh0";

/// One router of the fleet.
pub struct Router {
    /// Dropped before the lab (field order): detach runs while the namespaces exist.
    pub agent: Agent,
    _listener: Acceptor,
    pub lab: Lab,
    /// The router's address on the hub; its metrics listen there on port 9725.
    pub address: String,
}

impl Router {
    /// Whether the relay's real `connect()` to port 25 through this router succeeds.
    pub fn relay_connects(&self) -> bool {
        traffic::connects(&self.lab, RELAY)
    }

    /// Whether the plain subscriber's connect() to port 25 succeeds (it must not).
    pub fn subscriber_connects(&self) -> bool {
        traffic::connects(&self.lab, SUBSCRIBER)
    }

    /// `status --json`'s "fleet" object.
    pub fn fleet_status(&self) -> serde_json::Value {
        self.agent.status()["fleet"].clone()
    }

    /// `relay list --json` parsed.
    pub fn relays(&self) -> Vec<serde_json::Value> {
        let text = self.agent.cli_ok(&["relay", "list", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&text).expect("relay list --json");
        json.as_array()
            .cloned()
            .unwrap_or_else(|| panic!("relay list --json is not an array: {text}"))
    }

    /// Whether `relay list` holds `prefix` from `source` ("config", "cli", "fleet").
    pub fn lists_relay(&self, prefix: &str, source: &str) -> bool {
        self.relays()
            .iter()
            .any(|entry| entry["prefix"] == prefix && entry["source"] == source)
    }

    /// The agent's `/metrics` text (scraped from inside the router namespace).
    pub fn metrics(&self) -> String {
        let addr = format!("{}:9725", self.address)
            .parse()
            .expect("metrics address");
        crate::netns::in_netns(&self.lab.rtr, || crate::metrics::http_get(addr, "/metrics")).1
    }

    /// The value of an unlabelled sample `name` in `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Cuts the router off the etcd hub (link down, its TCP connections to the hub reset).
    pub fn partition(&self) {
        exec_ok(&self.lab.rtr, &["ip", "link", "set", HUB_IF, "down"]);
        // Best effort: without INET_DIAG_DESTROY the client notices by its own timeouts.
        let _ = self
            .lab
            .rtr
            .command("ss")
            .args(["-K", "dst", "203.0.113.0/24"])
            .output();
    }

    /// Whether a TCP connection from the router namespace to `address:port` on the hub opens.
    pub fn reaches(&self, address: &str, port: u16) -> bool {
        let target: std::net::SocketAddr =
            format!("{address}:{port}").parse().expect("hub address");
        crate::netns::in_netns(&self.lab.rtr, || {
            std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(1)).is_ok()
        })
    }

    /// Reconnects the router to the hub.
    pub fn heal(&self) {
        exec_ok(&self.lab.rtr, &["ip", "link", "set", HUB_IF, "up"]);
    }
}

/// Accepts and closes connections on the port-25 listener, so its backlog never fills during
/// long relay streams; stopped and joined on drop.
struct Acceptor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    fn start(listener: TcpListener) -> Acceptor {
        use std::sync::atomic::Ordering;
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => continue,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Acceptor {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `count` routers on `etcd`, each with a running agent configured with `[fleet]`
/// (`extra` TOML appended to each config, e.g. an `[allow]` table).
pub fn routers(etcd: &Etcd, count: usize, extra: &str) -> Vec<Router> {
    (0..count).map(|k| router(etcd, k, extra)).collect()
}

/// Router `k` of the fleet.
pub fn router(etcd: &Etcd, k: usize, extra: &str) -> Router {
    router_configured(etcd, k, &fleet_config(etcd, &router_address(k), extra))
}

/// Router `k`'s address on the hub.
pub fn router_address(k: usize) -> String {
    format!("203.0.113.{}", 10 + k)
}

/// Router `k` on the hub with `config` after its interfaces (no `[fleet]` added).
pub fn router_configured(etcd: &Etcd, k: usize, config: &str) -> Router {
    let lab = Lab::new();
    let address = router_address(k);
    etcd.hub.attach(&lab.rtr, HUB_IF, &format!("{address}/24"));
    let listener = Acceptor::start(traffic::smtp_listener(&lab));
    let files = AgentFiles::new();
    files.write_xdp_only_config(&lab, config);
    let agent = Agent::start(&lab, files);
    Router {
        agent,
        _listener: listener,
        lab,
        address,
    }
}

/// The `[metrics]` and `[fleet]` tables of a fleet router, then `extra`.
pub fn fleet_config(etcd: &Etcd, address: &str, extra: &str) -> String {
    format!(
        "[metrics]\nlisten = \"{address}:9725\"\n\n[fleet]\netcd_endpoints = {}\n\
         key_prefix = \"{KEY_PREFIX}\"\n\n{extra}",
        etcd.endpoints_toml()
    )
}

/// The etcd key of a relay entry.
pub fn relay_key(prefix: &str) -> String {
    format!("{KEY_PREFIX}/relay/{prefix}")
}

/// A well-formed entry value.
pub fn entry_value(comment: &str) -> String {
    serde_json::json!({"comment": comment, "added": "2026-12-02T00:00:00Z", "added_by": "test"})
        .to_string()
}

/// Runs `during` (etcd members killed, ...) while every router carries, for `seconds`, a
/// stream of port-25 SYNs from the plain subscriber and back-to-back relay connects; then
/// asserts that no subscriber SYN leaked through any router and no relay connect failed.
pub fn assert_enforcement_holds(routers: &[Router], seconds: f64, during: impl FnOnce()) {
    use std::time::{Duration, Instant};
    let counters: Vec<_> = routers
        .iter()
        .map(|r| traffic::SynCounter::start_from(&r.lab, seconds + 1.0, SUBSCRIBER))
        .collect();
    let streams: Vec<_> = routers
        .iter()
        .map(|r| traffic::SynStream::start(&r.lab, SUBSCRIBER, seconds))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let relay_results: Vec<(u32, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = routers
            .iter()
            .map(|router| {
                scope.spawn(move || {
                    let (mut ok, mut failed) = (0, 0);
                    while Instant::now() < deadline {
                        if router.relay_connects() {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        during();
        workers
            .into_iter()
            .map(|w| w.join().expect("relay stream thread"))
            .collect()
    });
    for (k, ((stream, counter), (ok, failed))) in streams
        .into_iter()
        .zip(counters)
        .zip(relay_results)
        .enumerate()
    {
        let started = stream.finish();
        let leaked = counter.finish();
        assert!(
            started > 0,
            "router {k}: the subscriber stream sent nothing"
        );
        assert_eq!(
            leaked, 0,
            "router {k}: {leaked} of {started} subscriber SYNs leaked"
        );
        assert!(ok > 0, "router {k}: no relay connect was attempted");
        assert_eq!(
            failed, 0,
            "router {k}: {failed} relay connects failed ({ok} passed)"
        );
    }
}
