//! Network namespaces for xtask labs (demo, bench), deleted when dropped (also on errors and
//! panics).
//!
//! Everything is done from outside the namespaces (`ip -n`, `nsenter --net=`) so the demo
//! process itself never leaves the host's namespace, and no host interface is ever touched:
//! veth pairs are created with both ends directly inside lab namespaces.

use std::{fs::File, os::fd::AsRawFd, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::cmd::Runner;

#[derive(Debug)]
pub struct Netns {
    name: String,
    runner: Runner,
}

impl Netns {
    pub fn create(name: String, runner: Runner) -> Result<Netns> {
        runner.run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name, runner };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `nsenter --net=` and `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        self.runner
            .run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command that runs inside this namespace's network stack but keeps the host's mounts
    /// (bpffs pins), unlike `ip netns exec`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg(program);
        cmd
    }

    pub fn enable_forwarding(&self) -> Result<()> {
        self.runner.run(
            self.command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        )
    }

    /// Runs `f` on a thread that joined this namespace's network stack (std sockets inside).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = self.path();
        let shown = path.display().to_string();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let file = File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    // SAFETY: setns on an open namespace fd changes only this thread's netns.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        bail!(
                            "cannot enter {}: {}",
                            path.display(),
                            std::io::Error::last_os_error()
                        );
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow!("a thread inside {shown} panicked"))?
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(err) = self
            .runner
            .run(Command::new("ip").args(["netns", "del", &self.name]))
        {
            eprintln!("warning: cleaning up: {err:#}");
        }
    }
}

/// A veth pair with one end in each namespace, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    if a_if.len() > 15 || b_if.len() > 15 {
        bail!("interface names must be at most 15 bytes: {a_if:?}, {b_if:?}");
    }
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])
}

/// `ip addr add CIDR dev IF` inside `ns`.
pub fn address(ns: &Netns, interface: &str, cidr: &str) -> Result<()> {
    ns.ip(&["addr", "add", cidr, "dev", interface])
}

/// `ip route add DEST via GATEWAY` inside `ns`.
pub fn route(ns: &Netns, dest: &str, gateway: &str) -> Result<()> {
    ns.ip(&["route", "add", dest, "via", gateway])
}
