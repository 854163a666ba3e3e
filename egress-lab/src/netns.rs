//! Named network namespaces deleted on drop, and the plumbing between them.
//!
//! Everything is done from outside the namespaces (`ip -n`, `nsenter --net=`), so the calling
//! process never leaves the host's namespace except on purpose ([`Netns::within`],
//! [`Netns::enter`]). Commands started with [`Netns::command`] keep the host's mounts (bpffs
//! pins), unlike `ip netns exec`, which remounts /sys.

use std::{
    ffi::OsStr,
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{
    LabError,
    command::{self, Echo},
};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A named network namespace that is deleted when dropped, which also removes its veth ends
/// and whatever is attached to them.
#[derive(Debug)]
pub struct Netns {
    name: String,
    echo: Echo,
}

impl Netns {
    /// Creates the namespace `name` with its loopback up.
    pub fn create(name: impl Into<String>, echo: impl Into<Echo>) -> Result<Netns, LabError> {
        let (name, echo) = (name.into(), echo.into());
        command::run(Command::new("ip").args(["netns", "add", &name]), echo)?;
        let ns = Netns { name, echo };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates `egr-<prefix>-<pid>-<n>`: unique across parallel tests and processes.
    pub fn unique(prefix: &str, echo: impl Into<Echo>) -> Result<Netns, LabError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Netns::create(format!("egr-{prefix}-{}-{id}", std::process::id()), echo)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `nsenter --net=` and `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        command::checked(
            Command::new("ip").args(["-n", &self.name]).args(args),
            self.echo,
        )
        .map(drop)
    }

    /// A command that runs inside this namespace's network stack but keeps the host's mounts.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg(program);
        cmd
    }

    /// Runs `program args...` inside the namespace; fails with its stderr on a non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        command::checked(self.command(program).args(args), self.echo)
    }

    /// Turns the namespace into a router for IPv4 and IPv6.
    pub fn enable_forwarding(&self) -> Result<(), LabError> {
        self.sysctl("net.ipv4.ip_forward=1")?;
        self.sysctl("net.ipv6.conf.all.forwarding=1")
    }

    fn sysctl(&self, setting: &str) -> Result<(), LabError> {
        self.exec("sysctl", &["-qw", setting]).map(drop)
    }

    /// Runs `f` on a thread that joined this namespace's network stack, so std sockets,
    /// interface-index lookups and netlink act inside it. A panic in `f` propagates.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        within(&self.path(), f)
    }

    /// Moves the calling thread into the namespace until the guard drops, for work that cannot
    /// move to another thread (attaching a program of a loaded aya object). Prefer
    /// [`Netns::within`].
    pub fn enter(&self) -> Result<EnteredNetns, LabError> {
        let own = Path::new("/proc/thread-self/ns/net");
        let original = open(own)?;
        set_thread_netns(&open(&self.path())?, &self.path())?;
        Ok(EnteredNetns { original })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let del = command::checked(
            Command::new("ip").args(["netns", "del", &self.name]),
            self.echo,
        );
        if let Err(err) = del {
            eprintln!("warning: cleaning up the lab: {err}");
        }
    }
}

/// [`Netns::within`] for a namespace known by its path (`/run/netns/NAME`).
pub fn within<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            set_thread_netns(&open(netns)?, netns)?;
            Ok(f())
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Returns the thread to its original network namespace when dropped.
pub struct EnteredNetns {
    original: File,
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        if let Err(err) = set_thread_netns(&self.original, Path::new("(original)")) {
            eprintln!("warning: this thread stays in a lab namespace: {err}");
        }
    }
}

/// A veth pair with `a_if` in `a` and `b_if` in `b`, both up. IPv6 duplicate address
/// detection is off on both ends so addresses work at once.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), LabError> {
    for name in [a_if, b_if] {
        if name.len() > 15 {
            return Err(LabError::InterfaceName(name.to_owned()));
        }
    }
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    for (ns, name) in [(a, a_if), (b, b_if)] {
        ns.sysctl(&format!("net.ipv6.conf.{name}.accept_dad=0"))?;
        ns.ip(&["link", "set", name, "up"])?;
    }
    Ok(())
}

/// Adds an address (`"192.0.2.1/24"` or `"2001:db8::1/64"`, the latter without DAD).
pub fn address(ns: &Netns, interface: &str, cidr: &str) -> Result<(), LabError> {
    if cidr.contains(':') {
        ns.ip(&["-6", "addr", "add", cidr, "dev", interface, "nodad"])
    } else {
        ns.ip(&["addr", "add", cidr, "dev", interface])
    }
}

/// Adds a route: `route(&ns, "default", "192.0.2.1")`, `route(&ns, "2001:db8:2::/64",
/// "2001:db8:1::1")`.
pub fn route(ns: &Netns, dest: &str, gateway: &str) -> Result<(), LabError> {
    let family = if gateway.contains(':') { "-6" } else { "-4" };
    ns.ip(&[family, "route", "add", dest, "via", gateway])
}

fn open(path: &Path) -> Result<File, LabError> {
    File::open(path).map_err(|source| LabError::Open {
        path: path.to_owned(),
        source,
    })
}

fn set_thread_netns(netns: &File, path: &Path) -> Result<(), LabError> {
    // SAFETY: setns on an open namespace fd changes only this thread's network namespace.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::Enter {
            path: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
