//! The namespace lab of [`egress_lab`] for integration tests: the same namespaces, veth pairs,
//! addresses and routes as the demo and the bench, but every failure panics with the command
//! and its stderr, which is what a test wants.
//!
//! ```no_run
//! use tests::netns::{Netns, TestNetns as _, addr, veth, exec_ok, in_netns};
//! let sub = Netns::new("sub");
//! let rtr = Netns::new("rtr");
//! veth(&sub, "s0", &rtr, "r0");
//! addr(&sub, "s0", "192.0.2.2/24");
//! addr(&rtr, "r0", "192.0.2.1/24");
//! rtr.forward();
//! exec_ok(&sub, &["ip", "-br", "addr"]);
//! in_netns(&rtr, || { /* std sockets and ifindex lookups see the router's stack */ });
//! ```
//!
//! Names are unique per process and call (`egr-<prefix>-<pid>-<n>`), so tests run in
//! parallel; a namespace is deleted on drop, also when the test panics. Only documentation
//! address ranges belong in it. A process that must keep the host's bpffs pins is started with
//! `ns.command(PROGRAM)` (`nsenter --net=`), never `ip netns exec`, which remounts /sys.

use std::process::Output;

use egress_lab::{Echo, LabError};
pub use egress_lab::{EnteredNetns, Netns};

/// Panicking constructors and helpers on [`Netns`].
pub trait TestNetns {
    /// A unique namespace `egr-<prefix>-<pid>-<n>` with its loopback up.
    fn new(prefix: &str) -> Self;
    /// Turns the namespace into a router for IPv4 and IPv6.
    fn forward(&self);
}

impl TestNetns for Netns {
    fn new(prefix: &str) -> Self {
        Netns::unique(prefix, Echo::Quiet).unwrap_or_else(fail)
    }

    fn forward(&self) {
        self.enable_forwarding().unwrap_or_else(fail);
    }
}

/// A veth pair with `a_if` in `a` and `b_if` in `b`, both up, IPv6 DAD off.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    egress_lab::veth(a, a_if, b, b_if).unwrap_or_else(fail);
}

/// Adds an address (`"192.0.2.1/24"` or `"2001:db8::1/64"`) to an interface.
pub fn addr(ns: &Netns, interface: &str, cidr: &str) {
    egress_lab::address(ns, interface, cidr).unwrap_or_else(fail);
}

/// Adds a route: `route(&ns, "default", "192.0.2.1")`.
pub fn route(ns: &Netns, dest: &str, via: &str) {
    egress_lab::route(ns, dest, via).unwrap_or_else(fail);
}

/// Runs `argv` inside the namespace; panics with its stderr when it fails.
pub fn exec_ok(ns: &Netns, argv: &[&str]) -> Output {
    let (program, args) = argv
        .split_first()
        .unwrap_or_else(|| panic!("exec_ok in {} needs a command", ns.name()));
    ns.exec(program, args).unwrap_or_else(fail)
}

/// Runs `f` on a thread inside the namespace's network stack; panics in `f` propagate.
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.within(f).unwrap_or_else(fail)
}

/// Moves the calling thread into the namespace until the guard drops. Prefer [`in_netns`].
pub fn enter(ns: &Netns) -> EnteredNetns {
    ns.enter().unwrap_or_else(fail)
}

fn fail<T>(err: LabError) -> T {
    panic!("namespace lab: {err}")
}
