//! A real etcd (Debian's `/usr/bin/etcd`, driven with `etcdctl`) for the fleet tests.
//!
//! The hub: one namespace holding a bridge on `203.0.113.0/24` (`203.0.113.1`, where
//! `etcdctl` runs). Each etcd member lives in a namespace of its own, attached to the bridge by
//! a veth (`203.0.113.100 + i`), with a temporary data directory; routers (see [`fleet`])
//! attach the same way. Dropping an [`Etcd`] kills its members and removes their directories;
//! the namespaces go with it.
//!
//! ```no_run
//! let etcd = tests::etcd::Etcd::start(3);
//! etcd.put("/egress/x/relay/192.0.2.10/32", "{}");
//! assert_eq!(etcd.get_prefix("/egress/x/").len(), 1);
//! ```

pub mod fleet;
mod security;

pub use security::EtcdTls;

use std::{
    path::PathBuf,
    process::{Child, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::netns::{Netns, TestNetns as _, addr, exec_ok, veth};

/// The hub's own address on the bridge (where `etcdctl` runs).
pub const HUB: &str = "203.0.113.1";
const BRIDGE: &str = "br0";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace with a bridge that every member and router plugs into.
pub struct Hub {
    pub ns: Netns,
    next_port: AtomicU32,
}

impl Hub {
    pub fn new() -> Hub {
        let ns = Netns::new("eh");
        exec_ok(&ns, &["ip", "link", "add", BRIDGE, "type", "bridge"]);
        exec_ok(&ns, &["ip", "link", "set", BRIDGE, "up"]);
        addr(&ns, BRIDGE, &format!("{HUB}/24"));
        Hub {
            ns,
            next_port: AtomicU32::new(0),
        }
    }

    /// Plugs `other` into the bridge: a veth `other_if` in `other` with `cidr`; returns the
    /// hub-side interface name (for partitions seen from the hub).
    pub fn attach(&self, other: &Netns, other_if: &str, cidr: &str) -> String {
        let hub_if = format!("hp{}", self.next_port.fetch_add(1, Ordering::Relaxed));
        veth(&self.ns, &hub_if, other, other_if);
        exec_ok(&self.ns, &["ip", "link", "set", &hub_if, "master", BRIDGE]);
        addr(other, other_if, cidr);
        hub_if
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

/// One etcd member: its namespace, address, data directory and process.
pub struct Member {
    pub name: String,
    pub address: String,
    pub ns: Netns,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// `https` when the cluster serves clients over TLS.
    scheme: &'static str,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("{}://{}:2379", self.scheme, self.address)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:2380", self.address)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The member's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An etcd cluster of one or three members on its own hub.
pub struct Etcd {
    pub hub: Hub,
    pub members: Vec<Member>,
    token: String,
    dir: PathBuf,
    /// Client TLS with certificates required, when started with [`Etcd::start_tls`].
    pub tls: Option<EtcdTls>,
    /// `root:<password>` for etcdctl once authentication is enabled.
    root: Option<String>,
}

impl Etcd {
    /// `size` members (1 or 3), all started and healthy.
    pub fn start(size: usize) -> Etcd {
        Etcd::start_on(Hub::new(), size)
    }

    /// Like `start`, on an existing hub.
    pub fn start_on(hub: Hub, size: usize) -> Etcd {
        Etcd::start_secured(hub, size, false)
    }

    /// `size` members serving clients over TLS only, with client certificates required
    /// (`--client-cert-auth`), from a test CA of their own (`tls`).
    pub fn start_tls(size: usize) -> Etcd {
        Etcd::start_secured(Hub::new(), size, true)
    }

    fn start_secured(hub: Hub, size: usize, tls: bool) -> Etcd {
        assert!(size >= 1, "an etcd cluster needs a member");
        assert!(
            std::path::Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd missing: `cargo xtask setup` installs Debian's etcd-server"
        );
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("egress-test-etcd-{id}"));
        std::fs::create_dir_all(&dir).expect("create etcd test dir");
        let members = (0..size)
            .map(|i| {
                let ns = Netns::new(&format!("em{i}"));
                let address = format!("203.0.113.{}", 100 + i);
                hub.attach(&ns, "e0", &format!("{address}/24"));
                Member {
                    name: format!("m{i}"),
                    address,
                    ns,
                    data_dir: dir.join(format!("m{i}.etcd")),
                    log: dir.join(format!("m{i}.log")),
                    child: None,
                    scheme: if tls { "https" } else { "http" },
                }
            })
            .collect::<Vec<_>>();
        let tls = tls.then(|| {
            let addresses: Vec<&str> = members.iter().map(|m| m.address.as_str()).collect();
            EtcdTls::new(&dir.join("tls"), &addresses)
        });
        let mut etcd = Etcd {
            hub,
            members,
            token: format!("egress-test-{id}"),
            dir,
            tls,
            root: None,
        };
        etcd.start_all();
        etcd
    }

    /// The client URLs of every member, for `[fleet] etcd_endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// `etcd_endpoints = [...]` as TOML.
    pub fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        format!("[{}]", quoted.join(", "))
    }

    /// Starts member `i` (a restart keeps its data directory) without waiting for health.
    pub fn start_member(&mut self, i: usize) {
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        let tls_args = self
            .tls
            .as_ref()
            .map(EtcdTls::server_args)
            .unwrap_or_default();
        let member = &mut self.members[i];
        assert!(member.child.is_none(), "etcd {} is running", member.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("etcd log");
        let child = member
            .ns
            .command("/usr/bin/etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url()])
            .args(["--advertise-client-urls", &member.client_url()])
            .args(["--listen-peer-urls", &member.peer_url()])
            .args(["--initial-advertise-peer-urls", &member.peer_url()])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(&tls_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start nsenter etcd");
        member.child = Some(child);
    }

    /// Starts every stopped member and waits until the cluster answers a linearizable read.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                self.start_member(i);
            }
        }
        self.wait_healthy();
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes member `i` (SIGSTOP): its connections stay open and nothing is answered, as
    /// a member stuck on its disk behaves.
    pub fn pause(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    /// Thaws member `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    fn signal(&self, i: usize, signal: libc::c_int) {
        let member = &self.members[i];
        let child = member.child.as_ref().expect("etcd member is running");
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal {signal} to etcd {}", member.name);
    }

    /// Kills every member: etcd is down.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Waits up to 30 s until a read through the running members succeeds.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30 * crate::agent::time_scale());
        loop {
            let out = self.etcdctl(&["get", "--prefix", "/egress-health"]);
            if out.status.success() {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.members.iter().map(Member::log_text).collect();
                panic!(
                    "etcd not healthy in 30 s: {}\nmember logs:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    logs.join("\n----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl ARGS` from the hub against the running members (v3 API).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let running: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(Member::client_url)
            .collect();
        let endpoints = if running.is_empty() {
            self.endpoints()
        } else {
            running
        };
        self.hub
            .ns
            .command("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["--dial-timeout=2s", "--command-timeout=5s"])
            .args(
                self.tls
                    .as_ref()
                    .map(EtcdTls::client_args)
                    .unwrap_or_default(),
            )
            .args(self.root.iter().map(|root| format!("--user={root}")))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run etcdctl (Debian package etcd-client)")
    }

    /// Like `etcdctl`, asserting success; returns stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a raw key (any bytes the test wants, garbage included).
    pub fn put(&self, key: &str, value: &str) {
        // `--` so values and keys starting with '-' are not taken for flags.
        self.etcdctl_ok(&["put", "--", key, value]);
    }

    /// Deletes a raw key; returns how many keys were deleted.
    pub fn delete(&self, key: &str) -> u64 {
        let out = self.etcdctl_ok(&["del", "--", key]);
        out.trim().parse().unwrap_or(0)
    }

    /// Every key under `prefix` with its value.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.etcdctl_ok(&["get", "--prefix", "-w", "json", "--", prefix]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("etcdctl get -w json");
        json["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (base64(&kv["key"]), base64(&kv["value"])))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cluster's current revision.
    pub fn revision(&self) -> i64 {
        let out = self.etcdctl_ok(&["get", "-w", "json", "--", "/egress-revision-probe"]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("etcdctl get -w json");
        json["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no revision in {json}"))
    }

    /// Turns authentication on: a root user for etcdctl, and `user` (password `password`)
    /// allowed to read and write `prefix` and nothing else.
    pub fn enable_auth(&mut self, user: &str, password: &str, prefix: &str) {
        let root_password = "egress-test-root";
        self.etcdctl_ok(&["user", "add", &format!("root:{root_password}")]);
        self.etcdctl_ok(&["user", "grant-role", "root", "root"]);
        let role = format!("{user}-fleet");
        self.etcdctl_ok(&["role", "add", &role]);
        self.etcdctl_ok(&[
            "role",
            "grant-permission",
            &role,
            "readwrite",
            prefix,
            "--prefix=true",
        ]);
        self.etcdctl_ok(&["user", "add", &format!("{user}:{password}")]);
        self.etcdctl_ok(&["user", "grant-role", user, &role]);
        self.etcdctl_ok(&["auth", "enable"]);
        self.root = Some(format!("root:{root_password}"));
    }

    /// Compacts the history up to the current revision (a watcher behind it must relist).
    pub fn compact_to_current(&self) -> i64 {
        let revision = self.revision();
        self.etcdctl_ok(&["compact", &revision.to_string(), "--physical"]);
        revision
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// etcdctl's JSON output encodes keys and values in base64.
fn base64(value: &serde_json::Value) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap_or_default())
        .unwrap_or_else(|err| panic!("etcdctl printed bad base64 {value}: {err}"));
    String::from_utf8_lossy(&bytes).into_owned()
}
