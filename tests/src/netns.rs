//! A tiny network-namespace lab for integration tests.
//!
//! Every [`Netns`] gets a unique name (`egr-<prefix>-<pid>-<n>`) so tests can run in
//! parallel, and is deleted on drop (also when the test panics), which removes its veth ends
//! and anything attached to them. Only documentation address ranges belong in these
//! namespaces (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
//!
//! ```no_run
//! use tests::netns::{Netns, addr, veth, exec_ok, in_netns};
//! let sub = Netns::new("sub");
//! let rtr = Netns::new("rtr");
//! veth(&sub, "s0", &rtr, "r0");
//! addr(&sub, "s0", "192.0.2.2/24");
//! addr(&rtr, "r0", "192.0.2.1/24");
//! rtr.enable_forwarding();
//! exec_ok(&sub, &["ip", "-br", "addr"]);
//! in_netns(&rtr, || { /* std sockets and ifindex lookups see the router's stack */ });
//! ```
//!
//! [`enter`] moves the calling thread itself (until its guard drops) when the work cannot move
//! to another thread, such as attaching a program of a loaded aya object.
//!
//! Plain commands run through `ip netns exec`. A process that must keep the host's bpffs
//! (pins) should instead be started with `nsenter --net=<Netns::path()>`, because
//! `ip netns exec` remounts /sys.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A named network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `egr-<prefix>-<pid>-<n>` with its loopback up.
    pub fn new(prefix: &str) -> Netns {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("egr-{prefix}-{}-{id}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        exec_ok(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Turns the namespace into a router for IPv4 and IPv6.
    pub fn enable_forwarding(&self) {
        exec_ok(self, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        exec_ok(self, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let result = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => eprintln!("warning: ip netns del {}: {err}", self.name),
        }
    }
}

/// Creates a veth pair with `a_if` in `a` and `b_if` in `b`, both up. Names must be <= 15 bytes.
/// IPv6 duplicate address detection is disabled on both ends so addresses work immediately.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    assert!(
        a_if.len() <= 15 && b_if.len() <= 15,
        "interface names must be at most 15 bytes: {a_if:?}, {b_if:?}"
    );
    exec_ok(
        a,
        &[
            "ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
        ],
    );
    for (ns, ifname) in [(a, a_if), (b, b_if)] {
        let dad = format!("net.ipv6.conf.{ifname}.accept_dad=0");
        exec_ok(ns, &["sysctl", "-qw", &dad]);
        exec_ok(ns, &["ip", "link", "set", ifname, "up"]);
    }
}

/// Adds an address (`"192.0.2.1/24"` or `"2001:db8::1/64"`) to an interface.
pub fn addr(ns: &Netns, ifname: &str, cidr: &str) {
    let mut cmd = vec!["ip"];
    if cidr.contains(':') {
        cmd.push("-6");
    }
    cmd.extend(["addr", "add", cidr, "dev", ifname]);
    if cidr.contains(':') {
        cmd.push("nodad");
    }
    exec_ok(ns, &cmd);
}

/// Adds a route: `route(&ns, "default", "192.0.2.1")` or `route(&ns, "2001:db8:2::/64", "2001:db8:1::1")`.
pub fn route(ns: &Netns, dest: &str, via: &str) {
    let family = if via.contains(':') { "-6" } else { "-4" };
    exec_ok(ns, &["ip", family, "route", "add", dest, "via", via]);
}

/// Runs a command inside the namespace with `ip netns exec` and returns its output (whatever
/// the exit status).
pub fn exec(ns: &Netns, cmd: &[&str]) -> Output {
    assert!(!cmd.is_empty(), "exec in {} needs a command", ns.name);
    Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(cmd)
        .output()
        .unwrap_or_else(|err| panic!("cannot run `ip netns exec {} {cmd:?}`: {err}", ns.name))
}

/// Like [`exec`], but panics with the command's stderr when it fails.
pub fn exec_ok(ns: &Netns, cmd: &[&str]) -> Output {
    let out = exec(ns, cmd);
    assert!(
        out.status.success(),
        "`{}` in netns {} failed ({}): {}",
        cmd.join(" "),
        ns.name,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Runs `f` on a fresh thread that has joined the namespace's network stack, so std sockets,
/// interface-index lookups and netlink (aya attach) act inside it. Panics in `f` propagate.
pub fn in_netns<T, F>(ns: &Netns, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let path = ns.path();
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let file = File::open(&path)
                .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
            set_thread_netns(&file);
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Moves the calling thread into the namespace until the guard drops, for work that cannot
/// move to another thread (aya attach through a loaded object). Prefer [`in_netns`].
pub fn enter(ns: &Netns) -> EnteredNetns {
    let original = File::open("/proc/thread-self/ns/net")
        .unwrap_or_else(|err| panic!("cannot open this thread's network namespace: {err}"));
    set_thread_netns(
        &File::open(ns.path())
            .unwrap_or_else(|err| panic!("cannot open {}: {err}", ns.path().display())),
    );
    EnteredNetns { original }
}

/// Returns the thread to its original network namespace when dropped.
pub struct EnteredNetns {
    original: File,
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        set_thread_netns(&self.original);
    }
}

fn set_thread_netns(file: &File) {
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns failed: {}", std::io::Error::last_os_error());
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{}`: {err}", cmd.join(" ")));
    assert!(
        out.status.success(),
        "`{}` failed ({}): {}",
        cmd.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
